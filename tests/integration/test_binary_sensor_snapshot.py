"""The binary sensor entities of a camera that has seen nothing yet, in their snapshot file."""

from homeassistant.const import Platform

from tests.platform_snapshots import platform_test

test_binary_sensor_entities = platform_test(Platform.BINARY_SENSOR)
