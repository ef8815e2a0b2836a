"""`backfills watch`: ingest on an interval, for users without a scheduler."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from .supermetrics.errors import ConfigError, MonitorError

_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """A duration with its unit: `30s`, `5m`, `1h`, `2d`; in seconds. A bare number is refused:
    `20` could mean seconds or minutes.

    Example:
        >>> parse_interval("5m")
        300.0
    """
    match = _INTERVAL.match(text)
    if not match or float(match[1]) <= 0:
        raise ValueError(f"{text!r} is not a duration with its unit, such as 30s, 5m, 1h or 2d")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def watch(
    every: float,
    run_once: Callable[[], None],
    on_failure: Callable[[MonitorError], None],
    stop: threading.Event,
) -> None:
    """Call `run_once` every `every` seconds until `stop` is set.

    A failed run is reported through `on_failure` and the next one happens as planned; a config
    error is raised, since no later run can succeed. `stop` is only looked at between runs, so
    a run always finishes (no half-done load); the wait between runs ends within a second of it.
    """
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            run_once()
        except ConfigError:
            raise
        except MonitorError as error:
            on_failure(error)
        next_at = max(next_at + every, time.monotonic())  # an overrun delays, never piles up
        # in slices: Python runs a signal handler only when the main thread runs Python code, and
        # a SIGTERM the kernel hands to another thread (DuckDB's) does not end a long wait
        while not stop.is_set() and time.monotonic() < next_at:
            stop.wait(min(1.0, next_at - time.monotonic()))
