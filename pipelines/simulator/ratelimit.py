"""An hourly request budget per API key, on the simulated clock, as the API's X-RateLimit headers report."""

from __future__ import annotations

import math
import threading
from collections import Counter
from datetime import datetime, timedelta


class RateLimiter:
    """Fixed one-hour windows per key. Every call counts and the headers always say what is left;
    only with `enforce` is the call past `limit` in a window refused (429 + Retry-After)."""

    def __init__(self, limit: int = 5000, enforce: bool = False) -> None:
        self.limit = limit
        self.enforce = enforce
        self._counts: Counter[tuple[str, datetime]] = Counter()
        self._lock = threading.Lock()

    def peek_headers(self) -> dict[str, str]:
        """For answers outside the API (the control endpoints): the budget's size."""
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.limit)}

    def hit(self, key: str, now: datetime) -> dict[str, str]:
        """Count one call; returns the rate-limit headers, with Retry-After when it is refused."""
        window = now.replace(minute=0, second=0, microsecond=0)
        with self._lock:
            for old in [k for k in self._counts if k[1] < window]:
                del self._counts[old]
            self._counts[key, window] += 1
            used = self._counts[key, window]
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - used)),
        }
        if self.enforce and used > self.limit:
            reset = window + timedelta(hours=1)
            headers["Retry-After"] = str(max(1, math.ceil((reset - now).total_seconds())))
        return headers
