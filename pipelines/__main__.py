"""The `backfills` command's entry point (also `python -m pipelines`).

Ctrl-C and SIGTERM are taken before the command's modules are imported (a second or so with
dlt): a stop that early ends in the same one line, 130 or 143, as one during the run.

dlt starts without its plugins unless DLT_DISABLE_PLUGINS says otherwise: looking for them reads
the entry points of every installed distribution, 0.1-0.3 s of each run, and this CLI uses none.
"""

from __future__ import annotations

import os
import sys

from . import stopping


def main() -> object:
    stopping.install()
    os.environ.setdefault("DLT_DISABLE_PLUGINS", "true")
    try:
        from .cli import closed_pipe
        from .cli import main as cli

        try:
            return cli()
        finally:
            try:
                sys.stdout.flush()  # the last lines, while a closed pipe can still be told apart
            except BrokenPipeError:
                closed_pipe()
    except KeyboardInterrupt:  # a stop before the command took over, or after it ended
        error = stopping.interrupted()
        with stopping.last_line(error.exit_code):
            print(f"backfills: {error.failure_class}: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    finally:  # the work is done: a stop while Python shuts down must not end it by the signal
        stopping.ignore()


if __name__ == "__main__":
    sys.exit(main())
