"""`backfills report`: the state of things, read from the analytics tables.

The first line says how current the numbers are (`pipelines.freshness`): the age of each team's
newest successful poll, and whether the last poll or the last model build failed.

It leads with what needs a person (FAILED, stalled, running far longer than the transfer's usual:
since when, the failing days, the latest error whole), then what is in progress, what finished in
the last 24 hours, the transfers that fail most, the most frequent error patterns, and the last
poll of each team. Every row names its team. "Now" is the API's clock at the newest successful
poll (a failed poll carries this machine's), so the report reads the same on a simulator's clock.
Lines fit the given width: names are cut and the least needed columns left out, never wrapped.

It reads the copy published for BI tools, so it never makes a scheduled ingest wait; on
PostgreSQL, the analytics schema itself (readers never block its writers). The SQL runs on both.

Error messages come from the API and are untrusted: in every text value, control characters
(and so terminal escape sequences) are shown as visible escapes before it is printed.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .engines import Connection, Warehouse, warehouse
from .freshness import Verdict, assess
from .supermetrics.errors import ConfigError
from .text import clean, duration, transfer_label

# "Now" is the API's clock at the newest successful poll: a failed poll carries this machine's time.
_NOW = "(select max(polled_at) from analytics.polls where outcome = 'ok')"
RUNNING_LONG_FACTOR = 3  # "far longer than usual": three times the transfer's median run, as alerts
SECTIONS = {
    # what needs a person: FAILED, stalled, or running far longer than its transfer's usual
    "attention": f"""
        select b.team_id, b.transfer_backfill_id, b.transfer_id, b.transfer_name, b.status,
               case when b.status = 'FAILED' then 'failed' when b.is_stalled then 'stalled'
                    else 'running long' end as reason,
               case when b.status = 'FAILED' then h.valid_from when b.is_stalled then b.last_progress_at
                    else b.start_time end as since,
               b.transfer_runs_completed, b.transfer_runs_failed, b.transfer_runs_total,
               b.run_seconds, t.median_run_seconds
        from analytics.backfills as b
        left join analytics.transfer_failure_rates as t
            on t.team_id = b.team_id and t.transfer_id = b.transfer_id
        left join analytics.backfill_status_history as h  -- the current stretch: since when
            on h.team_id = b.team_id and h.transfer_backfill_id = b.transfer_backfill_id
            and h.valid_to is null
        where b.is_incomplete and (
            b.status = 'FAILED' or b.is_stalled
            or (b.status = 'RUNNING' and t.median_run_seconds > 0
                and b.run_seconds > {RUNNING_LONG_FACTOR} * t.median_run_seconds))
        order by since, b.team_id, b.transfer_backfill_id limit 50""",
    "incomplete": """
        select team_id, transfer_backfill_id, transfer_id, transfer_name, status, progress_pct,
               transfer_runs_completed, transfer_runs_failed, transfer_runs_total, failure_rate,
               runs_per_hour, eta, is_stalled, created_time
        from analytics.backfills where is_incomplete
        order by is_stalled desc, created_time desc limit 50""",
    "finished": f"""
        select team_id, transfer_backfill_id, transfer_id, transfer_name, status, finished_at,
               queue_seconds, run_seconds, failure_rate, error_count
        from analytics.backfills
        where coalesce(finished_at, case when status = 'UNKNOWN' then vanished_at end)
            >= {_NOW} - interval '24 hours'
        order by coalesce(finished_at, vanished_at) desc limit 20""",
    "transfers": """
        select team_id, transfer_id, transfer_name, backfills, backfills_incomplete, runs_completed,
               runs_failed, failure_rate, median_run_seconds, p95_run_seconds, last_error
        from analytics.transfer_failure_rates where runs_failed > 0
        order by failure_rate desc, runs_failed desc limit 10""",
    "errors": """
        select team_id, error_pattern, count(*) as occurrences,
               count(distinct transfer_backfill_id) as backfills, count(distinct transfer_id) as transfers,
               max(last_seen_at) as last_seen_at
        from analytics.backfill_errors group by team_id, error_pattern
        order by occurrences desc, last_seen_at desc limit 10""",
    "polls": """
        select distinct on (team_id) team_id, poll_id, polled_at, outcome, backfills_listed, error_message
        from analytics.polls order by team_id, poll_id desc""",
    "freshness": "select * from analytics.freshness order by team_id",
}
# The errors of the backfills that need a person: the latest one, and the days that failed.
_ATTENTION_ERRORS = """
    select e.team_id, e.transfer_backfill_id, e.transfer_run_date, e.error, e.last_seen_at
    from analytics.backfill_errors as e
    join analytics.backfills as b on b.team_id = e.team_id and b.transfer_backfill_id = e.transfer_backfill_id
    where b.is_incomplete and (b.status = 'FAILED' or b.is_stalled)
    order by e.last_seen_at desc, e.transfer_run_date desc"""
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
        return read_sections(con, target.label), target.label


def read_sections(con: Connection, label: str) -> dict[str, list[dict[str, Any]]]:
    """Every section's rows through an open connection to the analytics tables (`label` names
    the database in the message when it has none yet)."""
    tables = "select table_name from information_schema.tables where table_schema = 'analytics'"
    have = {t for (t,) in con.rows(tables)}
    if not {"backfills", "polls", "freshness", "model_builds"} <= have:
        raise ConfigError(f"{label} has no analytics tables yet: run backfills ingest first")
    sections = {name: _rows(con, sql) for name, sql in SECTIONS.items()}
    sections["last_build"] = _rows(con, _LAST_BUILD)
    _attach_errors(sections["attention"], _rows(con, _ATTENTION_ERRORS))
    now = datetime.now(UTC)
    for team in sections["freshness"]:  # as of this reading: it grows while nothing runs
        received = team["last_ok_received_at"]
        team["newest_ok_poll_age_seconds"] = None if received is None else (now - received).total_seconds()
    return sections


def readable(db_path: Path, destination: str | None = None) -> Warehouse:
    """The database a reader should open (on DuckDB the copy published for BI tools when there is
    one); `ConfigError` when there is none yet."""
    return warehouse(Path(db_path), destination).reader()


def _rows(con: Connection, sql: str) -> list[dict[str, Any]]:
    return con.records(sql)


def _attach_errors(attention: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:
    """Each backfill that needs a person gets its latest error (whole) and its failing days."""
    by_backfill: dict[tuple, list[dict[str, Any]]] = {}
    for error in errors:  # newest first
        by_backfill.setdefault((error["team_id"], error["transfer_backfill_id"]), []).append(error)
    for row in attention:
        mine = by_backfill.get((row["team_id"], row["transfer_backfill_id"]), [])
        row["latest_error"] = mine[0]["error"] if mine else None
        row["latest_error_at"] = mine[0]["last_seen_at"] if mine else None
        row["failing_days"] = sorted({str(e["transfer_run_date"]) for e in mine})


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


REASONS = {"failed": "FAILED", "stalled": "STALLED", "running long": "RUNNING LONG"}


def headline(sections: dict[str, list[dict[str, Any]]]) -> str:
    attention = sections["attention"]
    reasons = [
        (r, sum(1 for a in attention if a["reason"] == r)) for r in ("failed", "stalled", "running long")
    ]
    parts = ", ".join(f"{n} {reason}" for reason, n in reasons if n)
    need = f"{len(attention)} need a person" + (f" ({parts})" if parts else "")
    in_progress, finished = len(running(sections)), len(sections["finished"])
    return f"{need}; {in_progress} in progress; {finished} finished in the last 24 h"


def running(sections: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The incomplete backfills that need nobody: queued or running as usual."""
    needs = {(a["team_id"], a["transfer_backfill_id"]) for a in sections["attention"]}
    return [b for b in sections["incomplete"] if (b["team_id"], b["transfer_backfill_id"]) not in needs]


def api_now(sections: dict[str, list[dict[str, Any]]], team_id: object = None) -> datetime | None:
    """The API's clock at the newest successful poll (of `team_id`, else of any team)."""
    times = [
        f["last_ok_polled_at"]
        for f in sections["freshness"]
        if f.get("last_ok_polled_at") is not None and (team_id is None or f["team_id"] == team_id)
    ]
    return max(times, default=None)


# -- formats -------------------------------------------------------------------------------------


def attention_block(row: dict[str, Any], now: datetime | None, width: int) -> list[str]:
    """One backfill that needs a person: what, since when, the counts, the failing days and the
    latest error, whole and wrapped."""
    since = row["since"]
    ago = duration((now - since).total_seconds()) if now and since and now >= since else "?"
    what = f"{REASONS[row['reason']]} for {ago}"
    head = f"{what}  team {row['team_id']}  backfill {row['transfer_backfill_id']}  "
    label = clean(transfer_label(row["transfer_name"], row["transfer_id"]))
    room = max(12, width - len(head))  # one line: a name is cut, never split
    title = head + (label if len(label) <= room else label[: room - 1] + "…")
    done, failed = row["transfer_runs_completed"], row["transfer_runs_failed"]
    facts = f"{failed} of {row['transfer_runs_total']} runs failed, {done} completed"
    if row["reason"] == "running long":
        facts += (
            f"; running {duration(row['run_seconds'])}, the transfer's median run is "
            f"{duration(row['median_run_seconds'])}"
        )
    if row["failing_days"]:
        days = row["failing_days"]
        facts += f"; failing days {', '.join(days[:8])}" + (
            f" and {len(days) - 8} more" if len(days) > 8 else ""
        )
    lines = [title]
    lines += textwrap.wrap(facts, width, initial_indent="  ", subsequent_indent="  ")
    if row["latest_error"]:
        lines.append(f"  latest error, {text(row['latest_error_at'])}:")
        error = clean(row["latest_error"])
        lines += textwrap.wrap(
            error, width, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False
        )
    return lines


def _done(row: dict[str, Any]) -> str:
    return f"{row['transfer_runs_completed'] + row['transfer_runs_failed']}/{row['transfer_runs_total']}"


def _progress(row: dict[str, Any]) -> str:
    return f"{bar(row['progress_pct'], 10)} {row['progress_pct'] or 0:5.1f}%"


# section -> (title, [(header, value function)], columns to narrow first, columns to leave out next)
TABLES = {
    "running": (
        "In progress",
        [
            ("team", lambda r: text(r["team_id"])),
            ("backfill", lambda r: text(r["transfer_backfill_id"])),
            ("transfer", lambda r: transfer_label(r["transfer_name"], r["transfer_id"])),
            ("status", lambda r: text(r["status"])),
            ("progress", _progress),
            (
                "done",
                lambda r: (
                    f"{r['transfer_runs_completed'] + r['transfer_runs_failed']}/{r['transfer_runs_total']}"
                ),
            ),
            ("runs/h", lambda r: "" if r["runs_per_hour"] is None else f"{r['runs_per_hour']:.1f}"),
            ("ETA", lambda r: text(r["eta"])),
        ],
        ["transfer"],
        ["runs/h", "status"],
    ),
    "finished": (
        "Finished in the last 24 hours",
        [
            ("team", lambda r: text(r["team_id"])),
            ("backfill", lambda r: text(r["transfer_backfill_id"])),
            ("transfer", lambda r: transfer_label(r["transfer_name"], r["transfer_id"])),
            ("status", lambda r: text(r["status"])),
            ("finished", lambda r: text(r["finished_at"])),
            ("queued", lambda r: duration(r["queue_seconds"])),
            ("ran", lambda r: duration(r["run_seconds"])),
            ("failed", lambda r: percent(r["failure_rate"])),
        ],
        ["transfer"],
        ["queued", "failed"],
    ),
    "transfers": (
        "Transfers with the worst failure rates",
        [
            ("team", lambda r: text(r["team_id"])),
            ("transfer", lambda r: transfer_label(r["transfer_name"], r["transfer_id"])),
            ("runs failed", lambda r: f"{r['runs_failed']}/{r['runs_completed'] + r['runs_failed']}"),
            ("rate", lambda r: percent(r["failure_rate"])),
            ("median run", lambda r: duration(r["median_run_seconds"])),
            ("last error", lambda r: text(r["last_error"])),
        ],
        ["last error", "transfer"],
        ["median run"],
    ),
    "errors": (
        "Top error patterns",
        [
            ("team", lambda r: text(r["team_id"])),
            ("count", lambda r: text(r["occurrences"])),
            ("backfills", lambda r: text(r["backfills"])),
            ("pattern", lambda r: text(r["error_pattern"])),
            ("last seen", lambda r: text(r["last_seen_at"])),
        ],
        ["pattern"],
        ["backfills"],
    ),
    "polls": (
        "Last poll",
        [
            ("team", lambda r: text(r["team_id"])),
            ("poll", lambda r: text(r["poll_id"])),
            ("at", lambda r: text(r["polled_at"])),
            ("outcome", lambda r: text(r["outcome"])),
            ("listed", lambda r: text(r["backfills_listed"])),
            ("error", lambda r: text(r["error_message"])),
        ],
        ["error"],
        ["listed"],
    ),
}
_MIN_FLEX = 12  # a narrowed column keeps this many characters


def table_lines(
    columns: list, rows: list[dict[str, Any]], flex: list[str], width: int, droppable: list[str] = ()
) -> list[str]:
    """Rows as aligned columns within `width`: the `flex` columns are narrowed first (cut with …),
    then the `droppable` ones left out, in that order."""
    cells = [[clean(value(row)) for _, value in columns] for row in rows]
    headers = [h for h, _ in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def excess() -> int:
        return sum(widths) + 2 * (len(widths) - 1) - width

    for name in flex:
        i = headers.index(name)
        if excess() > 0:
            widths[i] = max(_MIN_FLEX, len(headers[i]), widths[i] - excess())
    for name in droppable:
        if excess() > 0:
            i = headers.index(name)
            del headers[i], widths[i]
            for row in cells:
                del row[i]

    def fit(value: str, w: int) -> str:
        return value if len(value) <= w else value[: w - 1] + "…"

    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(fit(c, w).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return lines


def report_lines(sections: dict[str, list[dict[str, Any]]], width: int = 100) -> list[str]:
    """The report as lines of at most `width` characters (a narrowed column is cut with …)."""
    now = api_now(sections)
    out = [str(verdict(sections)), headline(sections), ""]
    attention = sections["attention"]
    out.append(f"Needs a person ({len(attention)})")
    for row in attention:
        out += attention_block(row, api_now(sections, row["team_id"]) or now, width)
    out.append("")
    shown = {**sections, "running": running(sections)}
    for name, (title, columns, flex, droppable) in TABLES.items():
        rows = shown[name]
        out.append(f"{title} ({len(rows)})")
        if rows:
            out += table_lines(columns, rows, flex, width, droppable)
        out.append("")
    return out


def render_plain(sections: dict[str, list[dict[str, Any]]], width: int = 100) -> str:
    return "\n".join(report_lines(sections, width))


def render_rich(sections: dict[str, list[dict[str, Any]]], console: Any) -> None:
    """The same lines on a terminal of the console's width, the status and reasons in colour."""
    from rich.text import Text

    status_styles = {"OK": "bold green", "WARNING": "bold yellow"}
    for number, line in enumerate(report_lines(sections, console.width)):
        style = ""
        if number == 0:
            style = status_styles.get(verdict(sections).level, "bold red")
        elif number == 1 or line.endswith(")") and " (" in line and not line.startswith(" "):
            style = "bold"
        if line.startswith(tuple(REASONS.values())):
            style = "bold red"
        console.print(Text(line, style=style), soft_wrap=True)  # Text: never parsed as markup


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
