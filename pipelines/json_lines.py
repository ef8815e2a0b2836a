"""`--log-format json`: every line a command prints becomes one JSON object, for log shippers.

The content is that of the text lines: `{"time": ..., "level": ..., "stream": ..., "message": ...}`,
level `error` for the failure line (`backfills: <class>: ...`), `warning` for `WARNING: ...` and
`warning:` lines, else `info`. Standard output and error keep their roles.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TextIO


class JsonLines:
    """A text stream that writes each complete line as one JSON object to `target`."""

    def __init__(self, target: TextIO, stream: str) -> None:
        self.target, self.stream, self.pending = target, stream, ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.target.write(json.dumps(record(line, self.stream), ensure_ascii=False) + "\n")
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> object:  # encoding, fileno, ...: the target's
        return getattr(self.target, name)


def record(line: str, stream: str) -> dict[str, str]:
    level = "info"
    if line.startswith("backfills: "):
        level = "error"
    elif line.lower().startswith("warning"):
        level = "warning"
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "level": level,
        "stream": stream,
        "message": line,
    }


def install() -> None:
    """Route this process's standard output and error through JsonLines."""
    if not isinstance(sys.stdout, JsonLines):
        sys.stdout = JsonLines(sys.stdout, "stdout")
        sys.stderr = JsonLines(sys.stderr, "stderr")
