"""`backfills report --format html`: the report as one self-contained HTML file.

The same sections as the terminal report (what needs a person first), and the charts a person
would rather look at than read: burn-up of the running backfills, queue and run times per
transfer, failure rates with their n, error patterns over time, each team's freshness. It opens
offline, from disk or a mail: Chart.js 4 (MIT, about 210 KB, pipelines/report_assets/) is
inlined, and a Content-Security-Policy lets the page load nothing at all. Chart.js draws on a
canvas: small, no server, and maintained; a static SVG from matplotlib would need the notebook's
packages in every install.

Every text from the API is escaped for HTML, and the charts' data travels as JSON in a
`<script type="application/json">` block with `<`, `>` and `&` escaped, read by `JSON.parse`:
no text can become markup or code.
"""

from __future__ import annotations

import html
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from statistics import median
from typing import Any

from . import report
from .engines import Connection
from .publish import published_dir
from .text import clean, duration, transfer_label

ASSETS = Path(__file__).resolve().parent / "report_assets"
CHARTS = {
    # the newest 12 RUNNING backfills' progress, poll by poll
    "burnup": """
        select p.team_id, p.transfer_backfill_id, p.polled_at,
               p.transfer_runs_completed + p.transfer_runs_failed as done, p.transfer_runs_total as total
        from analytics.backfill_progress as p
        join (select team_id, transfer_backfill_id from analytics.backfills where status = 'RUNNING'
              order by created_time desc limit 12) as b
            on b.team_id = p.team_id and b.transfer_backfill_id = p.transfer_backfill_id
        order by p.polled_at""",
    "times": """
        select team_id, transfer_id, transfer_name, queue_seconds, run_seconds
        from analytics.backfills where status = 'COMPLETED' and run_seconds is not null""",
    "rates": """
        select team_id, transfer_id, transfer_name, runs_completed, runs_failed
        from analytics.transfer_failure_rates where runs_completed + runs_failed > 0""",
    "errors": """
        select cast(first_seen_at as date) as day, error_pattern, count(*) as errors
        from analytics.backfill_errors group by 1, 2 order by 1""",
}


def gather_charts(con: Connection) -> dict[str, list[dict[str, Any]]]:
    return {name: con.records(sql) for name, sql in CHARTS.items()}


def chart_data(sections: dict[str, list[dict[str, Any]]], rows: dict[str, list[dict]]) -> dict[str, Any]:
    """What each chart draws, in plain JSON values (labels are cleaned API text)."""
    burnup: dict[str, list] = {}
    for row in rows["burnup"]:
        key = f"{row['transfer_backfill_id']} (team {row['team_id']}, {row['total']} runs)"
        burnup.setdefault(key, []).append({"x": _iso(row["polled_at"]), "y": row["done"]})
    times: dict[str, dict[str, list[float]]] = {}
    for row in rows["times"]:
        label = clean(transfer_label(row["transfer_name"], row["transfer_id"]))
        entry = times.setdefault(label, {"queue": [], "run": []})
        entry["queue"].append((row["queue_seconds"] or 0) / 60)
        entry["run"].append(row["run_seconds"] / 60)
    rates = sorted(
        (
            {
                "label": clean(transfer_label(r["transfer_name"], r["transfer_id"])),
                "failed": int(r["runs_failed"]),
                "n": int(r["runs_completed"] + r["runs_failed"]),
            }
            for r in rows["rates"]
        ),
        key=lambda r: -r["failed"] / r["n"],
    )
    top = _top_patterns(rows["errors"])
    days = sorted({_iso(r["day"]) for r in rows["errors"]})
    patterns: dict[str, dict[str, int]] = {}
    for row in rows["errors"]:
        name = clean(row["error_pattern"]) if row["error_pattern"] in top else "other"
        counts = patterns.setdefault(name, {})
        counts[_iso(row["day"])] = counts.get(_iso(row["day"]), 0) + int(row["errors"])
    return {
        "burnup": burnup,
        "times": {
            "labels": list(times),
            "queue": [round(median(t["queue"]), 1) for t in times.values()],
            "run": [round(median(t["run"]), 1) for t in times.values()],
            "n": [len(t["run"]) for t in times.values()],
        },
        "rates": rates,
        "errors": {"days": days, "patterns": {p: [c.get(d, 0) for d in days] for p, c in patterns.items()}},
        "freshness": [
            {
                "team": f"team {f['team_id']}",
                "minutes": None
                if f.get("newest_ok_poll_age_seconds") is None
                else round(f["newest_ok_poll_age_seconds"] / 60, 1),
            }
            for f in sections["freshness"]
        ],
    }


def _top_patterns(errors: list[dict], count: int = 6) -> set[str]:
    totals: dict[str, int] = {}
    for row in errors:
        totals[row["error_pattern"]] = totals.get(row["error_pattern"], 0) + int(row["errors"])
    return set(sorted(totals, key=lambda p: -totals[p])[:count])


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _script_json(data: Any) -> str:
    """JSON that cannot end its <script> element nor open markup."""
    text = json.dumps(data, default=_json_default, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _e(value: Any) -> str:
    return html.escape(clean(report.text(value)) if not isinstance(value, str) else clean(value))


def _table(title: str, columns: list, rows: list[dict[str, Any]], section_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(value(row))}</td>" for _, value in columns) + "</tr>" for row in rows
    )
    empty = "" if rows else '<p class="empty">none</p>'
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if rows else ""
    return f'<section id="{section_id}"><h2>{html.escape(title)} ({len(rows)})</h2>{table}{empty}</section>'


def _attention(sections: dict[str, list[dict[str, Any]]]) -> str:
    cards = []
    for row in sections["attention"]:
        now = report.api_now(sections, row["team_id"])
        since = row["since"]
        ago = duration((now - since).total_seconds()) if now and since and now >= since else "?"
        days = ", ".join(row["failing_days"][:8]) + (
            f" and {len(row['failing_days']) - 8} more" if len(row["failing_days"]) > 8 else ""
        )
        error = ""
        if row["latest_error"]:
            error = (
                f'<p class="error-at">latest error, {_e(row["latest_error_at"])}:</p>'
                f'<pre class="error">{_e(row["latest_error"])}</pre>'
            )
        cards.append(
            f'<article class="card {html.escape(row["reason"].replace(" ", "-"))}">'
            f"<h3>{html.escape(report.REASONS[row['reason']])} for {html.escape(ago)}</h3>"
            f"<p>team {_e(row['team_id'])} · backfill {_e(row['transfer_backfill_id'])} · "
            f"{_e(transfer_label(row['transfer_name'], row['transfer_id']))}</p>"
            f"<p>{_e(row['transfer_runs_failed'])} of {_e(row['transfer_runs_total'])} runs failed, "
            f"{_e(row['transfer_runs_completed'])} completed"
            + (f"; failing days {html.escape(days)}" if days else "")
            + f"</p>{error}</article>"
        )
    body = "".join(cards) or '<p class="empty">nothing: no backfill is FAILED, stalled or running long</p>'
    return f'<section id="attention"><h2>Needs a person ({len(sections["attention"])})</h2>{body}</section>'


CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


def render_html(sections: dict[str, list[dict[str, Any]]], charts: dict[str, list[dict]], source: str) -> str:
    status = report.verdict(sections)
    tables = "".join(
        _table(title, columns, {**sections, "running": report.running(sections)}[name], name)
        for name, (title, columns, _, _) in report.TABLES.items()
    )
    canvases = "".join(
        f'<div class="chart"><canvas id="{name}"></canvas></div>'
        for name in ("burnup", "times", "rates", "errors", "freshness")
    )
    chart_js = (ASSETS / "chart.umd.min.js").read_text()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Backfill report</title><style>{(ASSETS / "report.css").read_text()}</style></head>
<body>
<h1>Supermetrics backfills</h1>
<p class="status {html.escape(status.level)}">{_e(str(status))}</p>
<p>{_e(report.headline(sections))} · read from {_e(source)}</p>
{_attention(sections)}
<h2>Charts</h2><div class="charts">{canvases}</div>
{tables}
<script type="application/json" id="report-data">{_script_json(chart_data(sections, charts))}</script>
<script>{chart_js}</script>
<script>{(ASSETS / "report.js").read_text()}</script>
</body></html>
"""


def gather(db_path: Path, destination: str | None = None) -> tuple[dict, dict, str]:
    """The report's sections, the charts' rows, and what they were read from."""
    target = report.readable(db_path, destination)
    with target.connect(read_only=True) as con:  # one opening of the file, as every run pays it
        return report.read_sections(con, target.label), gather_charts(con), target.label


def html_path(db_path: Path) -> Path:
    """Where each ingest writes the HTML report: beside the copy for BI tools."""
    return published_dir(db_path) / f"{db_path.stem}.html"


def write(db_path: Path, output: Path, destination: str | None = None) -> Path:
    """Write the HTML report of a database to `output` (replaced in one rename)."""
    sections, charts, label = gather(db_path, destination)
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(render_html(sections, charts, label))
    temporary.replace(output)
    return output
