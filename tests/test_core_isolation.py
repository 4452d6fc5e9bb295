"""core/ is a plain library: no module under it may import Home Assistant."""

import ast
from pathlib import Path

CORE = Path(__file__).parent.parent / "custom_components" / "ai_security" / "core"


def homeassistant_imports(source: str) -> list[int]:
    """Return the line numbers of imports of homeassistant (any form) in source."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "homeassistant" or name.startswith("homeassistant.") for name in names):
            lines.append(node.lineno)
    return lines


def test_checker_finds_every_import_form() -> None:
    """The checker itself catches each way of importing homeassistant, and nothing else."""
    source = (
        "import os\n"
        "import homeassistant\n"
        "from homeassistant.core import HomeAssistant\n"
        "import homeassistant.helpers.event as ev\n"
        "def f():\n"
        "    from homeassistant import const\n"
        "from .homeassistant_like import x\n"
        "import homeassistantish\n"
    )
    assert homeassistant_imports(source) == [2, 3, 4, 6]


def test_core_never_imports_homeassistant() -> None:
    """Every module under core/ is free of Home Assistant imports."""
    modules = sorted(CORE.rglob("*.py"))
    assert modules, "core/ has no modules"
    offenders = {
        str(path.relative_to(CORE)): found
        for path in modules
        if (found := homeassistant_imports(path.read_text()))
    }
    assert offenders == {}
