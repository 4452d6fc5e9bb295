"""The integration's folder and its English strings, for tests that check a message or a name.

Every layer's tests read them, so they live beside the other shared helpers rather than in a test
module (importing a test module from another layer would tie the layers together).
"""

import json
from pathlib import Path

from custom_components.ai_security.const import DOMAIN

ROOT = Path(__file__).parent.parent
INTEGRATION = ROOT / "custom_components" / DOMAIN
STRINGS = json.loads((INTEGRATION / "translations" / "en.json").read_text())
