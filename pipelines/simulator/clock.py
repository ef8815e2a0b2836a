"""The simulator's clock: real time, real time scaled by a speed factor, or manual."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class SimClock:
    """Simulated UTC time.

    `speed` is simulated seconds per real second: 1 is real time, 600 runs ten simulated
    minutes per second, 0 stops the clock so that only `advance()` moves it (tests).

    Example:
        >>> clock = SimClock(datetime(2026, 1, 5, tzinfo=UTC), speed=0)
        >>> clock.advance(90)
        >>> clock.now().isoformat()
        '2026-01-05T00:01:30+00:00'
    """

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        start = start or datetime.now(UTC).replace(microsecond=0)
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._lock = threading.Lock()
        self._anchor_sim = start.astimezone(UTC)
        self._anchor_real = time.monotonic()
        self._speed = float(speed)

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def is_manual(self) -> bool:
        return self._speed == 0

    def now(self) -> datetime:
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> datetime:
        elapsed = (time.monotonic() - self._anchor_real) * self._speed
        return self._anchor_sim + timedelta(seconds=elapsed)

    def advance(self, seconds: float | timedelta) -> datetime:
        """Jump forward by `seconds` of simulated time (in any mode); returns the new time."""
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._anchor_sim = self._now_locked() + delta
            self._anchor_real = time.monotonic()
            return self._anchor_sim

    def set_speed(self, speed: float) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        with self._lock:
            self._anchor_sim = self._now_locked()
            self._anchor_real = time.monotonic()
            self._speed = float(speed)
