"""What HACS and Home Assistant read besides the code: manifest, hacs.json, translations."""

import json
import re

from awesomeversion import AwesomeVersion
from homeassistant.const import __version__ as ha_version
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
import yaml

from custom_components.ai_security import config_flow, options_flow
from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.core.settings import COMMON_OBJECT_TYPES, LlmApi
from tests.translations import INTEGRATION, ROOT, STRINGS


def test_manifest() -> None:
    """The manifest carries what hassfest and HACS require, keys in hassfest's order."""
    manifest = json.loads((INTEGRATION / "manifest.json").read_text())
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert manifest["domain"] == DOMAIN
    assert manifest["config_flow"] is True
    assert manifest["integration_type"] == "hub"
    assert manifest["iot_class"] == "local_push"
    assert AwesomeVersion(manifest["version"]).valid
    for key in ("documentation", "issue_tracker", "codeowners"):
        assert manifest[key]


def test_hacs_json_matches_the_tested_home_assistant() -> None:
    """HACS offers the integration only to Home Assistant versions it was tested against."""
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert hacs["name"] == "AI Security"
    assert AwesomeVersion(hacs["homeassistant"]) == "2026.10.0"
    assert AwesomeVersion(ha_version) >= AwesomeVersion(hacs["homeassistant"])


def _fields(schema: object) -> set[str]:
    return {str(key) for key in schema.schema}  # type: ignore[attr-defined]


def test_every_form_field_is_named_and_described() -> None:
    """Each field of each step has a label and a description in en.json."""
    steps = {
        ("config", "user"): _fields(config_flow._connection_schema()),
        ("config", "reconfigure"): _fields(config_flow._connection_schema()),
        ("options", "init"): _fields(options_flow._options_schema()),
    }
    for (section, step), fields in steps.items():
        texts = STRINGS[section]["step"][step]
        assert set(texts["data"]) == fields, (section, step)
        assert set(texts["data_description"]) == fields, (section, step)


def test_every_error_and_abort_is_translated() -> None:
    """Every error key the flows and setup can produce has a text."""
    source = (INTEGRATION / "config_flow.py").read_text()
    config_errors = set(re.findall(r'errors(?:\[[^]]+\])? = "(\w+)"', source))
    config_errors |= set(re.findall(r'\{"base": "(\w+)"\}', source))
    assert config_errors == {
        "not_a_directory",
        "overlapping_root",
        "path_not_allowed",
        "invalid_url",
        "cannot_connect",
        "unknown",
        "ai_task_unusable",
    }
    assert config_errors <= set(STRINGS["config"]["error"])
    assert {"already_configured", "reconfigure_successful"} <= set(STRINGS["config"]["abort"])

    settings_source = (INTEGRATION / "core" / "settings.py").read_text()
    option_errors = set(re.findall(r'errors\[\w+\] = "(\w+)"', settings_source))
    option_errors |= set(re.findall(r'return "(\w+)"', settings_source))
    assert option_errors == {
        "out_of_range",
        "idle_longer_than_window",
        "incident_shorter_than_window",
        "thresholds_not_increasing",
        "no_object_types",
        "invalid_time",
    }
    assert option_errors <= set(STRINGS["options"]["error"])

    raised = {
        key
        for module in ("__init__.py", "service_handlers.py")
        for key in re.findall(r'translation_key="(\w+)"', (INTEGRATION / module).read_text())
    }
    assert raised
    assert raised <= set(STRINGS["exceptions"])


def test_selector_options_are_translated() -> None:
    """Drop-down choices show words, not keys."""
    assert set(STRINGS["selector"]["llm_api"]["options"]) == {api.value for api in LlmApi}
    assert set(STRINGS["selector"]["object_type"]["options"]) == set(COMMON_OBJECT_TYPES)


async def test_brand_icon_is_served(
    hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    """The integration's own icon shows in Add integration and on its card, with no CDN."""
    assert await async_setup_component(hass, "brands", {})
    client = await hass_client()
    for image in ("icon.png", "icon@2x.png"):
        response = await client.get(f"/api/brands/integration/{DOMAIN}/{image}")
        assert response.status == 200
        assert await response.read() == (INTEGRATION / "brand" / image).read_bytes()


def test_every_action_is_described() -> None:
    """Each action in services.yaml has a name, a description, translated fields and an icon."""
    services = yaml.safe_load((INTEGRATION / "services.yaml").read_text())
    icons = json.loads((INTEGRATION / "icons.json").read_text())["services"]
    assert set(services) == set(STRINGS["services"]) == set(icons)
    for name, spec in services.items():
        texts = STRINGS["services"][name]
        assert texts["name"]
        assert texts["description"]
        assert set(spec["fields"]) == set(texts["fields"])
