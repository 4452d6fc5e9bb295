"""The demo's Home Assistant listens on 127.0.0.1 only: its login is published in the README.

config/configuration.yaml says so, and scripts/demo/run.py tells from Home Assistant's stored HTTP
configuration whether it listens on more (test_demo.py runs the demo moving it).
"""

from pathlib import Path
from typing import Any

from homeassistant.components.http import HTTP_SCHEMA
from homeassistant.util.yaml import load_yaml_dict
import pytest

from scripts.demo.run import active_http_config, listens_beyond_loopback
from tests.live_hass import REPO


def test_the_development_configuration_listens_on_loopback_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """config/configuration.yaml binds Home Assistant to 127.0.0.1."""
    monkeypatch.setenv("AI_SECURITY_CAMERA_ROOT", str(tmp_path))
    configuration = load_yaml_dict(str(REPO / "config" / "configuration.yaml"))
    http: dict[str, Any] = HTTP_SCHEMA(configuration["http"])
    assert http["server_host"] == ["127.0.0.1"]
    assert not listens_beyond_loopback(http)


@pytest.mark.parametrize(
    ("hosts", "beyond"),
    [
        (None, True),  # Home Assistant's default: every interface
        ([], True),
        (["0.0.0.0"], True),  # noqa: S104 - the case under test
        (["::"], True),
        (["127.0.0.1", "192.168.1.2"], True),
        (["127.0.0.1"], False),
        (["127.0.0.1", "::1"], False),
        (["localhost"], False),
    ],
)
def test_what_listens_beyond_loopback(hosts: list[str] | None, beyond: bool) -> None:
    config = {"server_port": 8123} if hosts is None else {"server_port": 8123, "server_host": hosts}
    assert listens_beyond_loopback(config) is beyond


def test_the_active_configuration_is_read_from_its_slot() -> None:
    """http/config names the slot Home Assistant runs with; the default has no server_host."""
    loopback = {"server_port": 8123, "server_host": ["127.0.0.1"]}
    everywhere = {"server_port": 8123}
    state = {"stable": everywhere, "pending": loopback, "default": everywhere}
    assert active_http_config({**state, "active_config_type": "pending"}) == loopback
    assert active_http_config({**state, "active_config_type": "stable"}) == everywhere
    assert active_http_config({**state, "active_config_type": "default"}) == everywhere
    assert active_http_config({**state, "active_config_type": "default_legacy_port"}) == everywhere
    assert active_http_config({}) == {}
