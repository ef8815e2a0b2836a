"""Stops from outside: Ctrl-C (SIGINT) and SIGTERM end any command at once, in one line, 130 or 143.

Both signals raise KeyboardInterrupt in the main thread, which every library here already takes as
"stop now": DuckDB interrupts its query, dlt leaves its step, a transaction is rolled back. Python
would otherwise die at SIGTERM without running a `finally` or a rollback, and exit silently.

On the way out, a library may turn the interrupt into an error of its own (DuckDB's "Query
interrupted", a model build's ModelError around it). `received()` tells that a stop was asked
for, so that such an error is reported as the stop it is, never as a failure: a build cut short
is not a failed build. `doing()` names the step a run is in, for the one line.

A stop always ends the process: if it has not ended `GRACE_SECONDS` after the signal (a library
waiting on a thread or a lock that the interrupt left behind), a watchdog prints the one line and
ends it as a kill would, which the next run recovers from like any other. A second signal ends it
at once, as a second Ctrl-C does elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from .supermetrics.errors import ConfigError, Interrupted

GRACE_SECONDS = 20.0  # BACKFILLS_STOP_GRACE_SECONDS overrides
_received: int | None = None
_step = ""
_exit_code: int | None = None  # the code of the line a command ends with, once it prints it
_said = False  # that line is out
_end_asked = False  # a stop came while it was printed
_stop_asked = threading.Event()
NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


def install() -> None:
    """Take both signals, also when the command was started with SIGINT ignored (the background
    job of a non-interactive shell), and start the watchdog that ends a stop taking too long."""
    global GRACE_SECONDS
    given = os.environ.get("BACKFILLS_STOP_GRACE_SECONDS", "").strip()
    if given:
        try:
            GRACE_SECONDS = float(given)
        except ValueError:
            print(
                f"backfills: config error: BACKFILLS_STOP_GRACE_SECONDS={given!r} is not a number of seconds",
                file=sys.stderr,
            )
            sys.exit(ConfigError.exit_code)
    for signum in NAMES:
        signal.signal(signum, stop_now)
    if not any(t.name == "stop-watchdog" for t in threading.enumerate()):
        threading.Thread(target=_end_a_stuck_stop, name="stop-watchdog", daemon=True).start()


def ignore() -> None:
    """For the last moments of a process whose work is done: a late signal no longer changes how
    it ends, unless it was stopped already and is stuck on the way out."""
    # SIG_IGN outlives Python's own shutdown, which puts a Python handler back to the default
    # (a late SIGTERM would then end a finished run as -15)
    handler = _after_the_work if _received is not None or _exit_code is not None else signal.SIG_IGN
    for signum in NAMES:
        signal.signal(signum, handler)


def _after_the_work(_signum: int, _frame: object = None) -> None:
    if _received is not None or _exit_code is not None:  # stopped or failed, and stuck on the way out
        _end_when_said()


def stop_now(signum: int, _frame: object = None) -> None:
    """The signal handler: remember which signal, and interrupt what the main thread is doing."""
    global _received
    if _received is not None or _exit_code is not None:  # asked twice, or already ending: no more waiting
        _end_when_said()
        return
    _received = signum
    _stop_asked.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def last_line(code: int) -> Iterator[None]:
    """Around printing the line a command ends with, before it exits with `code`: a stop that comes
    meanwhile lets the line out first, and one after it ends the process at once, with `code`."""
    global _exit_code, _said
    _exit_code = code
    yield
    _said = True
    if _end_asked:
        _end_now()


def _end_when_said() -> None:
    global _end_asked
    if _exit_code is None or _said:
        _end_now()
    _end_asked = True


def _end_a_stuck_stop() -> None:
    _stop_asked.wait()
    threading.Event().wait(GRACE_SECONDS)
    _end_now()


def _end_now() -> None:
    """End the process without waiting for anything: the one line unless it is out, then exit."""
    code = _exit_code
    if code is None:
        error = interrupted()
        code = error.exit_code
        with contextlib.suppress(Exception):
            sys.stderr.write(f"backfills: {error.failure_class}: {error}\n")
            sys.stderr.flush()
    os._exit(code)


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
