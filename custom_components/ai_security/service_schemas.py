"""What each action takes: the actions' names, their fields, and the schemas that check them.

Only the shape is checked here; ranges, lengths and the order of dates are checked by the
library (EventQuery, AlertRule) or the handler, whose errors name the problem in words.
"""

from typing import Final

from homeassistant.const import ATTR_CONFIG_ENTRY_ID
from homeassistant.helpers import config_validation as cv
import probatio

from .core.models import RiskLevel
from .core.rules import DEFAULT_COOLDOWN_MINUTES

SERVICE_LIST_DEAD_JOBS: Final = "list_dead_jobs"
SERVICE_REQUEUE_DEAD_LETTERS: Final = "requeue_dead_letters"
SERVICE_SEARCH_EVENTS: Final = "search_events"
SERVICE_REVIEW_EVENT: Final = "review_event"
SERVICE_REPROCESS_FILE: Final = "reprocess_file"
SERVICE_PROCESS_OLD_UPLOADS: Final = "process_old_uploads"
SERVICE_ANALYZE_NOW: Final = "analyze_now"
SERVICE_TEST_ALERT_RULE: Final = "test_alert_rule"
SERVICE_GET_AUDIT_LOG: Final = "get_audit_log"
SERVICE_SNOOZE_CAMERA: Final = "snooze_camera"
SERVICE_RESET_LEARNING: Final = "reset_learning"
SERVICE_LEARNED_SPOTS: Final = "learned_spots"

ATTR_JOB_IDS: Final = "job_ids"
ATTR_TEXT: Final = "text"
ATTR_CAMERAS: Final = "cameras"
ATTR_CAMERA: Final = "camera"
ATTR_MIN_LEVEL: Final = "min_level"
ATTR_START: Final = "start"
ATTR_END: Final = "end"
ATTR_REVIEWED: Final = "reviewed"
ATTR_DISMISSED: Final = "dismissed"
ATTR_MISSED: Final = "missed"
ATTR_FORGET: Final = "forget"
ATTR_PAGE: Final = "page"
ATTR_PAGE_SIZE: Final = "page_size"
ATTR_EVENT_ID: Final = "event_id"
ATTR_NOTE: Final = "note"
ATTR_PATH: Final = "path"
ATTR_OBJECT_TYPES: Final = "object_types"
ATTR_ZONES: Final = "zones"
ATTR_ACTIVE_FROM: Final = "active_from"
ATTR_ACTIVE_TO: Final = "active_to"
ATTR_WEEKDAYS: Final = "weekdays"
ATTR_COOLDOWN: Final = "cooldown"
ATTR_ACTION: Final = "action"
ATTR_KEEP: Final = "keep"
ATTR_SINCE: Final = "since"
ATTR_DURATION: Final = "duration"

MAX_SNOOZE_MINUTES: Final = 7 * 24 * 60
"""The longest snooze (a week); for longer, the Alerts switch is turned off until turned on."""

ENTRY_SCHEMA = probatio.Schema({probatio.Required(ATTR_CONFIG_ENTRY_ID): cv.string})
AUDIT_LOG_SCHEMA = ENTRY_SCHEMA.extend(
    {
        # Ranges are checked by the library, so they come back as readable messages.
        probatio.Optional(ATTR_PAGE, default=1): probatio.Coerce(int),
        probatio.Optional(ATTR_PAGE_SIZE, default=50): probatio.Coerce(int),
        probatio.Optional(ATTR_ACTION): cv.string,
        probatio.Optional(ATTR_SINCE): cv.datetime,
    }
)
REQUEUE_SCHEMA = ENTRY_SCHEMA.extend(
    {probatio.Optional(ATTR_JOB_IDS): probatio.All(cv.ensure_list, [cv.positive_int])}
)
# Lengths, page numbers and date order are checked by EventQuery, not here: its errors name
# the problem in words (translated), where a schema error only says "invalid value".
SEARCH_SCHEMA = ENTRY_SCHEMA.extend(
    {
        probatio.Optional(ATTR_TEXT, default=""): cv.string,
        probatio.Optional(ATTR_CAMERAS, default=list): probatio.All(cv.ensure_list, [cv.string]),
        probatio.Optional(ATTR_MIN_LEVEL): probatio.Coerce(RiskLevel),
        probatio.Optional(ATTR_START): cv.datetime,
        probatio.Optional(ATTR_END): cv.datetime,
        probatio.Optional(ATTR_REVIEWED): cv.boolean,
        probatio.Optional(ATTR_DISMISSED): cv.boolean,
        probatio.Optional(ATTR_PAGE, default=1): probatio.Coerce(int),
        probatio.Optional(ATTR_PAGE_SIZE, default=50): probatio.Coerce(int),
    }
)
REVIEW_SCHEMA = ENTRY_SCHEMA.extend(
    {
        probatio.Required(ATTR_EVENT_ID): cv.string,
        probatio.Optional(ATTR_REVIEWED, default=True): cv.boolean,
        probatio.Optional(ATTR_DISMISSED, default=False): cv.boolean,
        probatio.Optional(ATTR_MISSED, default=False): cv.boolean,
        probatio.Optional(ATTR_NOTE): cv.string,
        probatio.Optional(ATTR_KEEP): cv.boolean,
    }
)
REPROCESS_SCHEMA = ENTRY_SCHEMA.extend({probatio.Required(ATTR_PATH): cv.string})
PROCESS_OLD_SCHEMA = ENTRY_SCHEMA.extend(
    {probatio.Optional(ATTR_CAMERA): cv.string, probatio.Optional(ATTR_SINCE): cv.datetime}
)
ANALYZE_NOW_SCHEMA = ENTRY_SCHEMA.extend({probatio.Required(ATTR_CAMERA): cv.string})
LEARNED_SPOTS_SCHEMA = ENTRY_SCHEMA.extend(
    {
        probatio.Optional(ATTR_CAMERA): cv.string,
        probatio.Optional(ATTR_FORGET, default=False): cv.boolean,
    }
)
# The duration's range is checked by the handler, whose error says what is allowed.
SNOOZE_SCHEMA = ANALYZE_NOW_SCHEMA.extend(
    {probatio.Required(ATTR_DURATION): probatio.Coerce(float)}
)
# The cooldown's range and the time range's order are checked by AlertRule and EventQuery,
# whose errors say what is wrong.
TEST_ALERT_RULE_SCHEMA = ENTRY_SCHEMA.extend(
    {
        probatio.Required(ATTR_START): cv.datetime,
        probatio.Optional(ATTR_END): cv.datetime,
        probatio.Optional(ATTR_MIN_LEVEL, default=RiskLevel.LOW): probatio.Coerce(RiskLevel),
        probatio.Optional(ATTR_OBJECT_TYPES, default=list): probatio.All(
            cv.ensure_list, [cv.string]
        ),
        probatio.Optional(ATTR_CAMERAS, default=list): probatio.All(cv.ensure_list, [cv.string]),
        probatio.Optional(ATTR_ZONES, default=list): probatio.All(cv.ensure_list, [cv.string]),
        probatio.Optional(ATTR_ACTIVE_FROM): cv.time,
        probatio.Optional(ATTR_ACTIVE_TO): cv.time,
        probatio.Optional(ATTR_WEEKDAYS, default=list): cv.weekdays,
        probatio.Optional(ATTR_COOLDOWN, default=DEFAULT_COOLDOWN_MINUTES): probatio.Coerce(float),
    }
)
