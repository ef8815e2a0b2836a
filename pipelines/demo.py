"""`backfills demo`: the whole pipeline on the local simulator, in about a minute.

The simulator serves over real HTTP on 127.0.0.1 with a manual clock that the demo moves: each
three hours of simulated time are one ingest run of 36 polls five minutes apart (see the source's
`rounds`), so three days of 5-minute polling take about half a minute instead of three days.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb

from .database import connect
from .ingest import ingest, rebuild_models, working_dir
from .publish import PublishResult, unpublish
from .simulator import DEFAULT_TEAM_ID, Simulator, Workload
from .supermetrics.errors import ConfigError, MonitorError

POLL_MINUTES = 5
POLLS_PER_RUN = 36  # three simulated hours per ingest run: a run's fixed cost is paid 8 times a day
EXAMPLE_QUERIES = (
    "select transfer_backfill_id, status, progress_pct, runs_per_hour, eta, is_stalled\n"
    "  from analytics.backfills where is_incomplete order by created_time desc;",
    "select transfer_name, backfills, failure_rate, run_duration_median_seconds, last_error\n"
    "  from analytics.transfer_failure_rates order by failure_rate desc nulls last limit 5;",
    "select transfer_backfill_id, data_date, attempt, status, duration_seconds, message\n"
    "  from analytics.backfill_runs where status = 'FAILED' order by created_time desc limit 5;",
    "select status, count(*), round(avg(duration_seconds) / 60) as avg_minutes\n"
    "  from analytics.backfill_status_history where valid_to is not null group by status;",
)


@dataclass
class DemoResult:
    db_path: Path
    published: PublishResult
    polls: int
    failed_polls: int


def marker(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".demo")


def fingerprint(db_path: Path) -> str:
    """What the demo leaves in its marker: the database's polls as the demo left them."""
    with connect(db_path, read_only=True) as con:
        try:
            count, last, received = con.execute(
                "select count(*), max(poll_id), max(received_at) from supermetrics.polls"
            ).fetchone()
        except duckdb.CatalogException:
            return "made by backfills demo: no polls yet\n"
    return f"made by backfills demo: {count} polls, the last {last} received at {received}\n"


def prepare(db_path: Path) -> None:
    """Start from nothing, but never delete a database that holds anything the demo did not make.

    The rule: the demo deletes `db_path` only when its marker file (`<db>.demo`) describes the
    database's polls exactly as they are. Any ingest into it afterwards adds polls, so the demo
    then refuses, and the history is kept.
    """
    if db_path.exists():
        if not marker(db_path).exists():
            raise ConfigError(f"{db_path} exists and was not made by backfills demo: choose another --db")
        if marker(db_path).read_text() != fingerprint(db_path):
            raise ConfigError(
                f"{db_path} holds polls that backfills demo did not make (an ingest wrote to it): "
                "it is kept; choose another --db"
            )
    for path in (db_path, db_path.with_name(db_path.name + ".wal"), marker(db_path)):
        path.unlink(missing_ok=True)
    shutil.rmtree(working_dir(db_path), ignore_errors=True)
    unpublish(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)


def run_demo(
    db_path: Path,
    days: float = 3.0,
    seed: int = 7,
    on_run: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Simulate `days` of a busy team polled every five minutes; returns where things are.

    `on_run(done, total)` is called after each ingest run (the CLI draws its progress bar there).
    """
    prepare(db_path)
    # a quick retry policy: the simulator answers at once, so there is nothing to wait for
    os.environ.setdefault("SOURCES__SUPERMETRICS__BACKOFF_FACTOR", "0")
    os.environ.setdefault("SOURCES__SUPERMETRICS__MAX_ATTEMPTS", "3")
    workload = Workload(transfers_per_team=12, backfills_per_day=16)
    with Simulator(seed=seed, speed=0, workload=workload, warmup=timedelta(hours=12)) as sim:
        os.environ["SOURCES__SUPERMETRICS__API_KEY"] = sim.api_key  # the simulator's key: not a secret
        total_polls = max(1, round(days * 24 * 60 / POLL_MINUTES))
        runs = -(-total_polls // POLLS_PER_RUN)  # the last run takes what is left

        def next_poll() -> None:
            sim.clock.advance(POLL_MINUTES * 60)

        for run in range(runs):
            if run == runs // 3:  # an outage: every attempt of one poll fails, and is recorded
                sim.faults.add(kind="503", endpoint="list", times=3)
            with contextlib.suppress(MonitorError):  # a failed poll is recorded; the demo goes on
                ingest(
                    db_path,
                    team_ids=[DEFAULT_TEAM_ID],
                    base_url=sim.base_url,
                    rounds=min(POLLS_PER_RUN, total_polls - run * POLLS_PER_RUN),
                    between_rounds=next_poll,
                    build_models=False,
                    destination="duckdb",  # the demo is always a DuckDB file, whatever is configured
                )
            marker(db_path).write_text(fingerprint(db_path))
            next_poll()
            if on_run:
                on_run(run + 1, runs)
    _, published = rebuild_models(db_path, destination="duckdb", alerts=False)  # made-up backfills
    with connect(db_path, read_only=True) as con:
        polls, failed = con.execute(
            "select count(*), count(*) filter (where outcome = 'failed') from analytics.polls"
        ).fetchall()[0]
    return DemoResult(db_path, published, polls, failed)
