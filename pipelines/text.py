"""Plain text for people: untrusted text made safe for a terminal, durations, length caps."""

from __future__ import annotations

import re
import unicodedata

MAX_TEXT = 300  # characters of outside text (an API's error message) in one line
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")


def clean(text: str) -> str:
    """Neutralise terminal escape sequences and control characters in untrusted text."""
    text = _ESCAPES.sub("", text)
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)


def shorten(text: str, limit: int = MAX_TEXT) -> str:
    """At most `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(seconds: float | None) -> str:
    """A duration for people: 0m 45s, 12m 05s, 3h 20m, 2d 04h."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d {seconds % 86_400 // 3600:02d}h"
