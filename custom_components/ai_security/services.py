"""Actions: registers each one with its schema, its handler, who may call it and whether audited.

What each action takes is in service_schemas.py, what it does in service_handlers.py (its errors
translated by the one decorator of helpers.py).
"""

from homeassistant.core import HomeAssistant, SupportsResponse, callback
from homeassistant.helpers.service import async_register_admin_service

from .audit import audited
from .const import DOMAIN
from .digest_action import async_register_digest
from .service_handlers import (
    handle_analyze_now,
    handle_get_audit_log,
    handle_learned_spots,
    handle_list_dead_jobs,
    handle_process_old_uploads,
    handle_reprocess_file,
    handle_requeue_dead_letters,
    handle_reset_learning,
    handle_review_event,
    handle_search_events,
    handle_snooze_camera,
    handle_test_alert_rule,
)
from .service_schemas import (
    ANALYZE_NOW_SCHEMA,
    AUDIT_LOG_SCHEMA,
    ENTRY_SCHEMA,
    LEARNED_SPOTS_SCHEMA,
    PROCESS_OLD_SCHEMA,
    REPROCESS_SCHEMA,
    REQUEUE_SCHEMA,
    REVIEW_SCHEMA,
    SEARCH_SCHEMA,
    SERVICE_ANALYZE_NOW,
    SERVICE_GET_AUDIT_LOG,
    SERVICE_LEARNED_SPOTS,
    SERVICE_LIST_DEAD_JOBS,
    SERVICE_PROCESS_OLD_UPLOADS,
    SERVICE_REPROCESS_FILE,
    SERVICE_REQUEUE_DEAD_LETTERS,
    SERVICE_RESET_LEARNING,
    SERVICE_REVIEW_EVENT,
    SERVICE_SEARCH_EVENTS,
    SERVICE_SNOOZE_CAMERA,
    SERVICE_TEST_ALERT_RULE,
    SNOOZE_SCHEMA,
    TEST_ALERT_RULE_SCHEMA,
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions (once, for every entry).

    Actions that change something are audited; those that only read (search_events,
    test_alert_rule, list_dead_jobs, get_audit_log) are not: a dashboard reads every minute,
    and the trail is for who changed what, not for who looked.
    """
    async_register_digest(hass)
    hass.services.async_register(
        DOMAIN,
        SERVICE_SEARCH_EVENTS,
        handle_search_events,
        schema=SEARCH_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_REVIEW_EVENT,
        audited(SERVICE_REVIEW_EVENT, handle_review_event),
        schema=REVIEW_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_ANALYZE_NOW,
        audited(SERVICE_ANALYZE_NOW, handle_analyze_now),
        schema=ANALYZE_NOW_SCHEMA,
    )
    # Not for administrators only: like turning the camera's Alerts switch off, which any
    # user may do.
    hass.services.async_register(
        DOMAIN,
        SERVICE_SNOOZE_CAMERA,
        audited(SERVICE_SNOOZE_CAMERA, handle_snooze_camera),
        schema=SNOOZE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_TEST_ALERT_RULE,
        handle_test_alert_rule,
        schema=TEST_ALERT_RULE_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    # Listing is for anyone; forgetting (forget: true) is checked by the handler: admins only.
    hass.services.async_register(
        DOMAIN,
        SERVICE_LEARNED_SPOTS,
        audited(SERVICE_LEARNED_SPOTS, handle_learned_spots),
        schema=LEARNED_SPOTS_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    # Administrators only: it changes how every later verdict of the camera is scored.
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_RESET_LEARNING,
        audited(SERVICE_RESET_LEARNING, handle_reset_learning),
        schema=ANALYZE_NOW_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_REPROCESS_FILE,
        audited(SERVICE_REPROCESS_FILE, handle_reprocess_file),
        schema=REPROCESS_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_PROCESS_OLD_UPLOADS,
        audited(SERVICE_PROCESS_OLD_UPLOADS, handle_process_old_uploads),
        schema=PROCESS_OLD_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_LIST_DEAD_JOBS,
        handle_list_dead_jobs,
        schema=ENTRY_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_GET_AUDIT_LOG,
        handle_get_audit_log,
        schema=AUDIT_LOG_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_REQUEUE_DEAD_LETTERS,
        audited(SERVICE_REQUEUE_DEAD_LETTERS, handle_requeue_dead_letters),
        schema=REQUEUE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
