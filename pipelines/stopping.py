"""Stops from outside: Ctrl-C (SIGINT) and SIGTERM end any command at once, in one line, 130 or 143.

Both signals raise KeyboardInterrupt in the main thread, which every library here already takes as
"stop now": DuckDB interrupts its query, dlt leaves its step, a transaction is rolled back. Python
would otherwise die at SIGTERM without running a `finally` or a rollback, and exit silently.

On the way out, a library may turn the interrupt into an error of its own (DuckDB's "Query
interrupted", a model build's ModelError around it). `received()` tells that a stop was asked
for, so that such an error is reported as the stop it is, never as a failure: a build cut short
is not a failed build. `doing()` names the step a run is in, for the one line.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from .supermetrics.errors import Interrupted

_received: int | None = None
_step = ""
NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


def install() -> None:
    """Take both signals, also when the command was started with SIGINT ignored (the background
    job of a non-interactive shell)."""
    for signum in NAMES:
        signal.signal(signum, stop_now)


def ignore() -> None:
    """Ignore both signals from now on: for the last moments of a process whose work is done."""
    for signum in NAMES:
        signal.signal(signum, signal.SIG_IGN)


def stop_now(signum: int, _frame: object = None) -> None:
    """The signal handler: remember which signal, and interrupt what the main thread is doing."""
    global _received
    _received = signum
    raise KeyboardInterrupt


def received() -> int | None:
    """The stop signal this process received, if any."""
    return _received


@contextlib.contextmanager
def doing(step: str) -> Iterator[None]:
    """Name the step in progress (`polling and loading`), for the line a stop prints."""
    global _step
    outer, _step = _step, step
    try:
        yield
    finally:
        _step = outer if _received is None else _step  # a stop keeps the step it stopped


def interrupted() -> Interrupted:
    """The error that ends a stopped command: what was stopped, and that the next run goes on."""
    signum = _received or signal.SIGINT
    where = f" while {_step}" if _step else ""
    return Interrupted(
        f"stopped by {NAMES[signum]}{where}; nothing is half-stored: the next run finishes or "
        "discards what this one left",
        signum,
    )
