"""Repository-root pytest configuration.

pytest-homeassistant-custom-component ships a `custom_components` package of its own
(testing_config/custom_components) and Home Assistant puts that folder on the import path.
Importing this repository's package first binds the name `custom_components` to it, so Home
Assistant's loader finds ai_security instead of reporting "Integration not found".
"""

import custom_components.ai_security  # noqa: F401
