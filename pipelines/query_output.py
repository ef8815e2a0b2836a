"""`backfills query`: statements split, and results printed as a plain table, CSV or JSON.

Cells are whole (nothing cut with `...`), NULL is NULL in a table, empty in CSV and null in JSON,
and every text is made safe for a terminal (the values come from outside: error texts).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot.tokens import TokenType

from .text import clean

FORMATS = ("table", "csv", "json")


def statements(sql: str) -> list[str]:
    """The statements of `sql`, split at semicolons outside strings and comments."""
    try:
        tokens = sqlglot.tokenize(sql, read="duckdb")
    except sqlglot.errors.TokenError:
        return [sql.strip()] if sql.strip() else []  # the database's own error will say what is wrong
    parts, start = [], 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            parts.append(sql[start : token.start])
            start = token.end + 1
    parts.append(sql[start:])
    return [part.strip() for part in parts if part.strip()]


def render(columns: list[str], rows: list[tuple], fmt: str) -> str:
    """One result in `fmt` (table, csv or json), ending with a newline."""
    if fmt == "json":
        records = [dict(zip(columns, (_json(v) for v in row), strict=True)) for row in rows]
        return json.dumps(records, ensure_ascii=False) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else _text(v) for v in row] for row in rows])
        return out.getvalue()
    return _table(columns, rows)


def _table(columns: list[str], rows: list[tuple]) -> str:
    header = [clean(str(c)) for c in columns]
    cells = [["NULL" if v is None else clean(_text(v)) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in rows) and bool(rows)
        for i in range(len(columns))
    ]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]

    def line(values: list[str]) -> str:
        padded = [
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(padded).rstrip()

    lines = [line(header), *(line(r) for r in cells)]
    lines.append(f"{len(rows)} row" + ("" if len(rows) == 1 else "s"))
    return "\n".join(lines) + "\n"


def _text(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def _json(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return str(value)
