"""The model servers' status changes, announced: in the log, and on the bus for automations.

A server that stops answering is logged once (at start too), and once more when it is back; every
change of a server's status after the first check fires `ai_security_service_status`, so an
automation can restart the server through whatever runs it.

It listens to the hub's coordinator's health checks (async_add_health_listener) instead of
being called from its fetch: the coordinator only fetches. It is told as soon as the checks are
done, before the rest of the refresh, so the event is on the bus before the hub's entities show
the new status, and a refresh that then fails (the database down) still tells the change.
"""

from homeassistant.core import HomeAssistant, callback

from .bus_events import EVENT_SERVICE_STATUS
from .const import LOGGER
from .core.monitor import EndpointHealth, HealthReport, ServiceKind, ServiceStatus


class ServiceStatusAnnouncer:
    """One entry's model servers' last statuses, and what announces their changes."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Know no status yet: the first refresh only logs the servers that are down."""
        self._hass = hass
        self._entry_id = entry_id
        self._statuses: dict[str, ServiceStatus] = {}

    @callback
    def announce(self, health: HealthReport) -> None:
        """Fire ai_security_service_status for every endpoint whose status changed."""
        for endpoint in health.endpoints:
            previous = self._statuses.get(endpoint.key)
            self._statuses[endpoint.key] = endpoint.status
            _log_change(endpoint, previous)
            if previous is None or previous is endpoint.status:
                continue
            LOGGER.debug("%s %s: %s -> %s", endpoint.kind, endpoint.url, previous, endpoint.status)
            self._hass.bus.async_fire(
                EVENT_SERVICE_STATUS,
                {
                    "entry_id": self._entry_id,
                    "service": endpoint.kind.value,
                    "url": endpoint.url,
                    "status": endpoint.status.value,
                    "previous_status": previous.value,
                    "error": endpoint.last_error
                    if endpoint.status is not ServiceStatus.HEALTHY
                    else None,
                },
            )


def _log_change(endpoint: EndpointHealth, previous: ServiceStatus | None) -> None:
    """Log once when a server stops answering (at start too) and once when it is back."""
    down = endpoint.status is ServiceStatus.UNHEALTHY
    was_down = previous is ServiceStatus.UNHEALTHY
    if down and not was_down:
        LOGGER.warning(
            "The %s server at %s is not reachable (%s); %s",
            endpoint.kind.value,
            endpoint.url,
            endpoint.last_error,
            "uploads wait in the queue until a detector answers"
            if endpoint.kind is ServiceKind.DETECTOR
            else "events are scored by the heuristic until it answers",
        )
    elif was_down and not down:
        LOGGER.info("The %s server at %s answers again", endpoint.kind.value, endpoint.url)
