"""Recently seen upload contents, so a burst of copies of one image costs one database look-up.

The persistent index is the database's unique content hash on media files (see schema.py); this
is the cheap first check in front of it, which also catches copies whose first one is still being
registered.
"""

from collections import OrderedDict
from collections.abc import Callable
import time


class RecentHashes:
    """Content hashes seen within the last ttl seconds."""

    def __init__(self, ttl: float = 300.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Remember hashes for ttl seconds; clock is injectable for tests."""
        self.ttl = ttl
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        """Return how many hashes are remembered (expired ones may linger until the next check)."""
        return len(self._seen)

    def seen(self, sha256: str) -> bool:
        """Return True when sha256 was seen within the TTL; else remember it and return False."""
        now = self._clock()
        while self._seen:
            oldest, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[oldest]
        if sha256 in self._seen:
            return True
        self._seen[sha256] = now + self.ttl
        return False

    def forget(self, sha256: str) -> None:
        """Forget sha256, so a copy is looked at again (its first registration failed)."""
        self._seen.pop(sha256, None)
