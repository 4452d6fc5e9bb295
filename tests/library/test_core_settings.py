"""core.settings: options read from a config entry, their ranges, the clean-up time."""

import pytest

from custom_components.ai_security.core.settings import PipelineOptions


def test_defaults_round_trip() -> None:
    """Stored options come back as they were; missing ones take the defaults."""
    options = PipelineOptions()
    assert PipelineOptions.from_mapping(options.as_mapping()) == options
    assert PipelineOptions.from_mapping({}) == options
    assert options.problems() == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("03:00", (3, 0)), ("23:59:00", (23, 59)), ("00:00:00", (0, 0))],
)
def test_retention_clock(text: str, expected: tuple[int, int]) -> None:
    """The clean-up time reads as HH:MM or HH:MM:SS (the time selector's form)."""
    assert PipelineOptions(retention_time=text).retention_clock() == expected


@pytest.mark.parametrize("text", ["25:00", "12:60", "3", "noon", "", "-1:00", "12:00:00:00"])
def test_bad_retention_time_is_a_problem(text: str) -> None:
    """A time that is not one is refused, under its own field."""
    options = PipelineOptions(retention_time=text)
    assert options.problems() == {"retention_time": "invalid_time"}
    with pytest.raises(ValueError, match="not a time of day"):
        options.retention_clock()


def test_delete_uploads_option() -> None:
    """Deleting uploads is off unless asked for, and stored as given."""
    assert PipelineOptions().delete_uploads is False
    stored = PipelineOptions.from_mapping({"delete_uploads": True, "retention_time": "04:15:00"})
    assert stored.delete_uploads is True
    assert stored.retention_clock() == (4, 15)
