"""One place where the library's errors become Home Assistant's translated ones.

An action's handler calls the library and lets its errors through; the decorator below turns a
refusal (AiSecurityError: its translation key names a text of "exceptions") into a
ServiceValidationError, the caller's mistake, and anything else the library raises (a database or
queue that cannot answer) into a HomeAssistantError naming what failed. Errors the handler raised
itself are Home Assistant's already and pass through as they are.
"""

from collections.abc import Callable, Coroutine
import functools
from typing import Any

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .const import DOMAIN
from .core.errors import AiSecurityError


def ai_security_exception_handler[**P, R](
    *, failure: str
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate an action's handler so the library's errors reach the user translated.

    failure is the key of the text shown when the library fails for another reason than the
    request ("database_failed" for reads, "database_write_failed" for changes, "queue_unavailable"
    for the job queue); the error's own words fill its {error} placeholder.
    """

    def decorate(
        func: Callable[P, Coroutine[Any, Any, R]],
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(func)
        async def handler(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await func(*args, **kwargs)
            except HomeAssistantError:
                raise
            except AiSecurityError as err:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key=err.translation_key,
                    translation_placeholders=dict(err.placeholders),
                ) from err
            except Exception as err:
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key=failure,
                    translation_placeholders={"error": str(err) or type(err).__name__},
                ) from err

        return handler

    return decorate
