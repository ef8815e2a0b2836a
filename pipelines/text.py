"""Plain text for people: untrusted text made safe for a terminal, durations, length caps."""

from __future__ import annotations

import unicodedata

MAX_TEXT = 300  # characters of outside text (an API's error message) in one line
_CONTROL = ("Cc", "Cf", "Zl", "Zp")  # Unicode categories: controls, format (bidi), separators
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def clean(text: str) -> str:
    r"""Untrusted text made safe for a terminal, on one line: control and format characters
    (ESC, BEL, CR/LF, bidi overrides, ...) are shown as visible escapes, so that no escape
    sequence can act and nothing is hidden.

    Example:
        >>> print(clean("\x1b[2Jhi\r\n"))
        \x1b[2Jhi\r\n
    """
    return "".join(_visible(c) if unicodedata.category(c) in _CONTROL else c for c in text)


def _visible(char: str) -> str:
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def one_line(text: str, limit: int = MAX_TEXT) -> str:
    """Untrusted text for one line of output: cleaned, then capped at `limit` characters."""
    return shorten(clean(text), limit)


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


def transfer_label(name: object, transfer_id: object) -> str:
    """A transfer for people: its name (untrusted, cleaned, cut to 40 characters) and id, or the
    id alone while the transfer list has not named it."""
    if isinstance(name, str) and name:
        label = one_line(name, 40)
        return label if str(transfer_id) in label else f"{label} ({transfer_id})"  # not said twice
    return str(transfer_id)
