"""The options flow: every tuning of the pipeline, each refused with its reason, and its database.

Defaults and ranges come from core.settings (PipelineOptions, LIMITS); the form only shows them.
A PostgreSQL database URL is checked by connecting, with its driver installed only then.
"""

from typing import Any, override

from homeassistant.config_entries import ConfigFlowResult, OptionsFlowWithReload
from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
    TimeSelector,
)
from homeassistant.requirements import RequirementsNotFound, async_process_requirements
from homeassistant.util import dt as dt_util
import probatio

from .audit import async_record_change
from .const import CONF_DATABASE_URL, CONF_HISTORY_BEFORE, DOMAIN, LOGGER, POSTGRESQL_REQUIREMENT
from .core import settings as opt
from .core.database_url import InvalidDatabaseUrlError, describe_database_url
from .core.health import redact_url
from .core.settings import COMMON_OBJECT_TYPES, LIMITS, PipelineOptions
from .core.storage import Database, DatabaseError


class _FlowCheckedNumberSelector(NumberSelector):
    """A number field whose min and max guide the UI, while the flow step checks the range.

    NumberSelector itself rejects an out-of-range value with an untranslated schema error; checking
    in the step instead puts a translated message on the field, as for every other error.
    """

    @override
    def __call__(self, data: Any) -> float:
        """Only coerce to a number; PipelineOptions.problems() checks the range."""
        value: float = probatio.Coerce(float)(data)
        return value


def _number(key: str, unit: str | None = None, *, slider: bool = False) -> NumberSelector:
    """Return the field for the numeric option key, bounded by its limits."""
    limit = LIMITS[key]
    config = NumberSelectorConfig(
        min=limit.minimum,
        max=limit.maximum,
        step=limit.step,
        mode=NumberSelectorMode.SLIDER if slider else NumberSelectorMode.BOX,
    )
    if unit is not None:
        config["unit_of_measurement"] = unit
    return _FlowCheckedNumberSelector(config)


def _options_schema() -> probatio.Schema:
    """Return the options form; defaults come from PipelineOptions via suggested values."""
    return probatio.Schema(
        {
            probatio.Required(opt.CONFIDENCE_THRESHOLD): _number(
                opt.CONFIDENCE_THRESHOLD, slider=True
            ),
            probatio.Required(opt.BATCH_WINDOW): _number(opt.BATCH_WINDOW, "s"),
            probatio.Required(opt.BATCH_IDLE_TIMEOUT): _number(opt.BATCH_IDLE_TIMEOUT, "s"),
            probatio.Required(opt.INCIDENT_MAX_MINUTES): _number(opt.INCIDENT_MAX_MINUTES, "min"),
            probatio.Required(opt.FAST_PATH_CONFIDENCE): _number(
                opt.FAST_PATH_CONFIDENCE, slider=True
            ),
            probatio.Required(opt.FAST_PATH_OBJECTS): SelectSelector(
                SelectSelectorConfig(
                    options=list(COMMON_OBJECT_TYPES),
                    multiple=True,
                    custom_value=True,
                    mode=SelectSelectorMode.DROPDOWN,
                    translation_key="object_type",
                )
            ),
            probatio.Required(opt.DEBOUNCE): _number(opt.DEBOUNCE, "s"),
            probatio.Required(opt.POLLING_OBSERVER): BooleanSelector(),
            probatio.Required(opt.RETENTION_DAYS): _number(opt.RETENTION_DAYS, "d"),
            probatio.Required(opt.RETENTION_TIME): TimeSelector(),
            probatio.Required(opt.DELETE_UPLOADS): BooleanSelector(),
            probatio.Required(opt.THRESHOLD_MEDIUM): _number(opt.THRESHOLD_MEDIUM),
            probatio.Required(opt.THRESHOLD_HIGH): _number(opt.THRESHOLD_HIGH),
            probatio.Required(opt.THRESHOLD_CRITICAL): _number(opt.THRESHOLD_CRITICAL),
            probatio.Required(opt.DETECTOR_CONCURRENCY): _number(opt.DETECTOR_CONCURRENCY),
            probatio.Required(opt.LLM_CONCURRENCY): _number(opt.LLM_CONCURRENCY),
            probatio.Required(opt.RESCORE_MINUTES): _number(opt.RESCORE_MINUTES, "min"),
            probatio.Required(opt.LLM_FRAMES): _number(opt.LLM_FRAMES),
            probatio.Required(opt.LLM_FRAME_SIZE): _number(opt.LLM_FRAME_SIZE, "px"),
            probatio.Required(opt.HEALTH_INTERVAL): _number(opt.HEALTH_INTERVAL, "s"),
            probatio.Required(opt.DETECTION_EVENTS): BooleanSelector(),
            probatio.Optional(CONF_DATABASE_URL): TextSelector(
                TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="off")
            ),
        }
    )


async def _check_database(hass: HomeAssistant, url: str) -> str | None:
    """Return an error key when url is not a usable PostgreSQL database, None when it is.

    The PostgreSQL driver is installed only now, for the users who choose PostgreSQL.
    """
    try:
        dialect = describe_database_url(url).dialect
    except InvalidDatabaseUrlError:
        return "invalid_database_url"
    if dialect != "postgresql":
        return "invalid_database_url"
    try:
        await async_process_requirements(hass, DOMAIN, [POSTGRESQL_REQUIREMENT])
        database = Database(url, run_blocking=hass.async_add_executor_job)
        await database.start()
        await database.close()
    except (RequirementsNotFound, DatabaseError) as err:
        LOGGER.warning("Cannot use the database %s: %s", redact_url(url), err)
        return "cannot_connect_database"
    return None


class AiSecurityOptionsFlow(OptionsFlowWithReload):
    """Tune detection, batching, the watcher, retention and severity; the entry reloads on save."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the options, reject out-of-range or inconsistent values with a reason per field."""
        errors: dict[str, str] = {}
        if user_input is not None:
            options = PipelineOptions.from_mapping(user_input)
            errors = options.problems()
            database_url = str(user_input.get(CONF_DATABASE_URL) or "").strip()
            if database_url and (problem := await _check_database(self.hass, database_url)):
                errors[CONF_DATABASE_URL] = problem
            if not errors:
                saved = {**options.as_mapping(), CONF_DATABASE_URL: database_url}
                if database_url != str(self.config_entry.options.get(CONF_DATABASE_URL) or ""):
                    # A new, empty database knows no upload: those in the folder are history.
                    self.hass.config_entries.async_update_entry(
                        self.config_entry,
                        data={
                            **self.config_entry.data,
                            CONF_HISTORY_BEFORE: dt_util.utcnow().isoformat(),
                        },
                    )
                await async_record_change(
                    self.hass,
                    self.config_entry,
                    action="options_changed",
                    before=self.config_entry.options,
                    after=saved,
                )
                return self.async_create_entry(data=saved)
        current = user_input or {
            **PipelineOptions.from_mapping(dict(self.config_entry.options)).as_mapping(),
            CONF_DATABASE_URL: self.config_entry.options.get(CONF_DATABASE_URL, ""),
        }
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(_options_schema(), current),
            errors=errors,
        )
