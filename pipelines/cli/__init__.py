"""The `backfills` command: a thin layer over the library, one module per group of commands.

- app: the group, and how any error ends (one line, a documented exit code)
- options: what the commands share
- run: ingest, watch, init; build: models; read: report, check, query;
  alerting: alerts; maintenance: compact; simulation: simulate, demo

dlt (about a second to import) is imported only inside the commands that load or build: ingest,
watch, models, demo. report, check, query and simulate start without it.
"""

from . import alerting, build, maintenance, read, run, simulation  # noqa: F401 - each adds its commands to `main`
from .app import main
from .options import closed_pipe

__all__ = ["closed_pipe", "main"]
