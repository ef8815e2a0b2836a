"""Run `backfills` and kill it at one exact moment inside dlt: the on-disk state of a kill there.

    python tests/kill_at.py MODULE:CLASS.METHOD [SIGNAL [N [TEXT]]] -- ingest --db ...

wraps dlt's (or deltalake's) METHOD, or a module's function (MODULE:FUNCTION), so that the
process sends itself SIGNAL (default SIGKILL) right after the N-th call (default 1) returns,
counting only calls whose first argument contains TEXT (a SQL statement's), then runs the
command as the `backfills` console script does.
With KILL_AT_STUCK_THREAD=1 it first starts a thread that never ends, as a load job stuck in
dlt's pool would be: a stop must end the process all the same.
Only the libraries' code is wrapped: the project's own runs unchanged.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading


def kill_after(target: str, signum: int, call: int = 1, text: str = "") -> None:
    module_name, _, attribute = target.partition(":")
    owner_name, _, method_name = attribute.rpartition(".")
    owner = importlib.import_module(module_name)
    for part in filter(None, owner_name.split(".")):  # none: a function of the module
        owner = getattr(owner, part)
    original = getattr(owner, method_name)
    calls = 0

    def wrapped(*args: object, **kwargs: object) -> object:
        nonlocal calls
        result = original(*args, **kwargs)
        calls += text in str(args[1:2])
        if calls == call:
            if os.environ.get("KILL_AT_STUCK_THREAD") == "1":  # not a daemon: exit waits for it
                threading.Thread(target=threading.Event().wait, name="stuck").start()
            os.kill(os.getpid(), signum)
        return result

    static = isinstance(owner.__dict__.get(method_name), staticmethod)
    setattr(owner, method_name, staticmethod(wrapped) if static else wrapped)


if __name__ == "__main__":
    separator = sys.argv.index("--")
    target, *rest = sys.argv[1:separator]
    signum = getattr(signal, rest[0]) if rest else signal.SIGKILL
    kill_after(target, signum, int(rest[1]) if len(rest) > 1 else 1, rest[2] if len(rest) > 2 else "")
    sys.argv = ["backfills", *sys.argv[separator + 1 :]]
    from pipelines.__main__ import main

    sys.exit(main())
