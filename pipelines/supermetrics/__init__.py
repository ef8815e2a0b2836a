"""The Supermetrics side: the dlt source (`source`), its HTTP client, settings, validation, errors.

`supermetrics`, the dlt source, is imported on first use: the CLI's commands that never touch
dlt (report, check, query, simulate) then start without importing it (about a second).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "supermetrics":
        from .source import supermetrics

        return supermetrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
