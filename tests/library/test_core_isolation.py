"""The two layers stay apart: core/ never imports Home Assistant, the adapter never SQLAlchemy.

core/ is a plain library; the Home Assistant layer asks it for plain data (core/operations.py,
core/database_url.py) and never holds a session, a query or a parsed database URL itself.
"""

import ast
from pathlib import Path

INTEGRATION = Path(__file__).parent.parent.parent / "custom_components" / "ai_security"
CORE = INTEGRATION / "core"


def imports_of(source: str, package: str) -> list[int]:
    """Return the line numbers of imports of package (any form) in source."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == package or name.startswith(f"{package}.") for name in names):
            lines.append(node.lineno)
    return lines


def homeassistant_imports(source: str) -> list[int]:
    """Return the line numbers of imports of homeassistant (any form) in source."""
    return imports_of(source, "homeassistant")


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


def test_checker_finds_sqlalchemy_even_when_only_typed() -> None:
    """An import only for type checking counts too: a session type is a session in the layer."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import sqlalchemy as sa\n"
        "if TYPE_CHECKING:\n"
        "    from sqlalchemy.orm import Session\n"
        "from .core import sqlalchemy_like\n"
        "import sqlalchemyx\n"
    )
    assert imports_of(source, "sqlalchemy") == [2, 4]


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


def test_only_core_imports_sqlalchemy() -> None:
    """No module of the Home Assistant layer imports SQLAlchemy: the database stays in core/."""
    modules = sorted(path for path in INTEGRATION.rglob("*.py") if CORE not in path.parents)
    assert len(modules) > 10, "the integration's own modules were not found"
    offenders = {
        str(path.relative_to(INTEGRATION)): found
        for path in modules
        if (found := imports_of(path.read_text(), "sqlalchemy"))
    }
    assert offenders == {}
