"""`backfills report`: the state of things, read from the analytics tables.

The first line says how current the numbers are (`pipelines.freshness`): the age of each team's
newest successful poll, and whether the last poll or the last model build failed.

Sections: what is incomplete (progress, failure rate, ETA, stalls), what finished in the last
24 hours, the transfers that fail most, the most frequent error patterns, and the last poll of
each team. "Now" is the latest poll, so the report reads the same on a simulator's clock.

It reads the copy published for BI tools, so it never makes a scheduled ingest wait; on
PostgreSQL, the analytics schema itself (readers never block its writers). The SQL runs on both.

Error messages come from the API and are untrusted: in every text value, control characters
(and so terminal escape sequences) are shown as visible escapes before it is printed.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .freshness import Verdict, assess
from .publish import published_db
from .supermetrics.errors import ConfigError
from .text import clean, duration, transfer_label
from .warehouse import Connection, Warehouse, warehouse

SECTIONS = {
    "incomplete": """
        select transfer_backfill_id, transfer_id, transfer_name, status, progress_pct,
               transfer_runs_completed, transfer_runs_failed, transfer_runs_total, failure_rate,
               runs_per_hour, eta, is_stalled, created_time
        from analytics.backfills where is_incomplete
        order by is_stalled desc, created_time desc limit 50""",
    "finished": """
        select transfer_backfill_id, transfer_id, transfer_name, status, finished_at, queue_seconds,
               run_seconds, failure_rate, error_count
        from analytics.backfills
        where coalesce(finished_at, case when status = 'UNKNOWN' then vanished_at end)
            >= (select max(polled_at) from analytics.polls) - interval '24 hours'
        order by coalesce(finished_at, vanished_at) desc limit 20""",
    "transfers": """
        select transfer_id, transfer_name, backfills, backfills_incomplete, runs_completed, runs_failed,
               failure_rate, median_run_seconds, p95_run_seconds, last_error
        from analytics.transfer_failure_rates where runs_failed > 0
        order by failure_rate desc, runs_failed desc limit 10""",
    "errors": """
        select error_pattern, occurrences, backfills, transfers, last_seen_at
        from analytics.error_summary order by occurrences desc, last_seen_at desc limit 10""",
    "polls": """
        select distinct on (team_id) team_id, poll_id, polled_at, outcome, backfills_listed, error_message
        from analytics.polls order by team_id, poll_id desc""",
    "freshness": "select * from analytics.freshness order by team_id",
}
# The latest build, and when the last good one ended: whether the tables above are current.
_LAST_BUILD = """
    select outcome, started_at, finished_at, error,
        (select max(finished_at) from analytics.model_builds where outcome = 'ok') as last_ok_finished_at
    from analytics.model_builds order by finished_at desc limit 1"""
DEFAULT_MAX_AGE = timedelta(minutes=20)


def gather(db_path: Path, destination: str | None = None) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """Every section's rows (and `last_build`: the latest model build), and what they were read
    from.

    Reads the copy published for BI tools when there is one, so that a report never makes a
    scheduled ingest wait or fail; otherwise the database itself (always, on PostgreSQL).
    """
    target = readable(db_path, destination)
    with target.connect(read_only=True) as con:
        have = {
            t
            for (t,) in con.rows(
                "select table_name from information_schema.tables where table_schema = 'analytics'"
            )
        }
        if not {"backfills", "polls", "freshness", "model_builds"} <= have:
            raise ConfigError(f"{target.label} has no analytics tables yet: run backfills ingest first")
        sections = {name: _rows(con, sql) for name, sql in SECTIONS.items()}
        sections["last_build"] = _rows(con, _LAST_BUILD)
    now = datetime.now(UTC)
    for team in sections["freshness"]:  # as of this reading: it grows while nothing runs
        received = team["last_ok_received_at"]
        team["newest_ok_poll_age_seconds"] = None if received is None else (now - received).total_seconds()
    return sections, target.label


def readable(db_path: Path, destination: str | None = None) -> Warehouse:
    """The database a reader should open: on DuckDB the copy published for BI tools when there is
    one, else the file; on PostgreSQL the database itself. `ConfigError` when there is none yet."""
    target = warehouse(Path(db_path), destination)
    if not target.is_duckdb:
        return target
    source = published_db(target.db_path) if published_db(target.db_path).exists() else target.db_path
    if not source.exists():
        raise ConfigError(f"there is no database at {db_path}: run backfills ingest first")
    return Warehouse("duckdb", source)


def _rows(con: Connection, sql: str) -> list[dict[str, Any]]:
    return con.records(sql)


def verdict(
    sections: dict[str, list[dict[str, Any]]],
    now: datetime | None = None,
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> Verdict:
    """How current the gathered numbers are (see `pipelines.freshness`)."""
    last_build = sections["last_build"][0] if sections["last_build"] else None
    return assess(sections["freshness"], last_build, now or datetime.now(UTC), max_age)


# -- plain values --------------------------------------------------------------------------------


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.2f}"
    return clean(str(value))


def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def bar(pct: float | None, width: int = 20) -> str:
    filled = round((pct or 0) / 100 * width)
    return "█" * filled + "░" * (width - filled)


def headline(sections: dict[str, list[dict[str, Any]]]) -> str:
    incomplete = sections["incomplete"]
    counts = {
        s: sum(1 for b in incomplete if b["status"] == s)
        for s in ("RUNNING", "SCHEDULED", "CREATED", "FAILED")
    }
    stalled = sum(1 for b in incomplete if b["is_stalled"])
    parts = [f"{len(incomplete)} incomplete"] + [f"{n} {s.lower()}" for s, n in counts.items() if n]
    return ", ".join(parts) + f"; {stalled} stalled; {len(sections['finished'])} finished in the last 24 h"


# -- formats -------------------------------------------------------------------------------------

TABLES = {  # section -> (title, [(header, value function)])
    "incomplete": (
        "Incomplete backfills",
        [
            ("backfill", lambda r: text(r["transfer_backfill_id"])),
            ("transfer", lambda r: text(transfer_label(r["transfer_name"], r["transfer_id"]))),
            ("status", lambda r: text(r["status"]) + (" STALLED" if r["is_stalled"] else "")),
            ("progress", lambda r: f"{bar(r['progress_pct'])} {r['progress_pct'] or 0:5.1f}%"),
            (
                "runs done",
                lambda r: (
                    f"{r['transfer_runs_completed'] + r['transfer_runs_failed']}/{r['transfer_runs_total']}"
                ),
            ),
            ("failed", lambda r: percent(r["failure_rate"])),
            ("runs/h", lambda r: "" if r["runs_per_hour"] is None else f"{r['runs_per_hour']:.1f}"),
            ("ETA", lambda r: text(r["eta"])),
        ],
    ),
    "finished": (
        "Finished in the last 24 hours",
        [
            ("backfill", lambda r: text(r["transfer_backfill_id"])),
            ("transfer", lambda r: text(transfer_label(r["transfer_name"], r["transfer_id"]))),
            ("status", lambda r: text(r["status"])),
            ("finished", lambda r: text(r["finished_at"])),
            ("queued", lambda r: duration(r["queue_seconds"])),
            ("ran", lambda r: duration(r["run_seconds"])),
            ("failed", lambda r: percent(r["failure_rate"])),
            ("errors", lambda r: text(r["error_count"])),
        ],
    ),
    "transfers": (
        "Transfers with the worst failure rates",
        [
            ("transfer", lambda r: text(transfer_label(r["transfer_name"], r["transfer_id"]))),
            ("backfills", lambda r: text(r["backfills"])),
            ("runs failed", lambda r: f"{r['runs_failed']}/{r['runs_completed'] + r['runs_failed']}"),
            ("failure rate", lambda r: percent(r["failure_rate"])),
            ("median run", lambda r: duration(r["median_run_seconds"])),
            ("last error", lambda r: text(r["last_error"])[:70]),
        ],
    ),
    "errors": (
        "Top error patterns",
        [
            ("occurrences", lambda r: text(r["occurrences"])),
            ("backfills", lambda r: text(r["backfills"])),
            ("pattern", lambda r: text(r["error_pattern"])[:90]),
            ("last seen", lambda r: text(r["last_seen_at"])),
        ],
    ),
    "polls": (
        "Last poll",
        [
            ("team", lambda r: text(r["team_id"])),
            ("poll", lambda r: text(r["poll_id"])),
            ("at", lambda r: text(r["polled_at"])),
            ("outcome", lambda r: text(r["outcome"])),
            ("listed", lambda r: text(r["backfills_listed"])),
            ("error", lambda r: text(r["error_message"])[:80]),
        ],
    ),
}


def render_plain(sections: dict[str, list[dict[str, Any]]]) -> str:
    out = [str(verdict(sections)), headline(sections), ""]
    for name, (title, columns) in TABLES.items():
        rows = [[value(row) for _, value in columns] for row in sections[name]]
        out.append(f"{title} ({len(rows)})")
        if rows:
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, (h, _) in enumerate(columns)]
            out.append("  ".join(h.ljust(w) for (h, _), w in zip(columns, widths, strict=True)).rstrip())
            out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        out.append("")
    return "\n".join(out)


def render_rich(sections: dict[str, list[dict[str, Any]]], console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    status = verdict(sections)
    level_styles = {"OK": "bold green", "WARNING": "bold yellow"}
    console.print(Text(str(status), style=level_styles.get(status.level, "bold red")))
    console.print(Text(headline(sections), style="bold"))
    styles = {
        "FAILED": "red",
        "RUNNING": "green",
        "COMPLETED": "green",
        "CANCELLED": "yellow",
        "UNKNOWN": "magenta",
    }
    for name, (title, columns) in TABLES.items():
        table = Table(title=f"{title} ({len(sections[name])})", title_justify="left", show_edge=False)
        for header, _ in columns:
            table.add_column(header, overflow="fold")
        for row in sections[name]:
            cells = [Text(value(row)) for _, value in columns]  # Text: never parsed as markup
            if "status" in row:  # the third column of the sections that have one
                cells[2].stylize("bold red" if row.get("is_stalled") else styles.get(row["status"], ""))
            table.add_row(*cells)
        console.print()
        console.print(table)


def render_json(sections: dict[str, list[dict[str, Any]]]) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, timedelta):
            return value.total_seconds()
        return str(value)

    status = verdict(sections)
    cleaned = {
        name: [{k: clean(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]
        for name, rows in sections.items()
    }
    return json.dumps(
        {"status": {"level": status.level, "line": status.line}, **cleaned}, default=default, indent=2
    )


def render_csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return clean(value) if isinstance(value, str) else value
