"""The commands that poll and load: ingest (the scheduled job), watch, and init."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import stopping
from ..supermetrics.errors import MonitorError
from ..supermetrics.snapshot import RunReport
from ..text import clean
from ..watch import watch

if TYPE_CHECKING:
    from ..ingest import IngestResult

from .app import main
from .options import (
    WAIT_LOCK_OPTION,
    Duration,
    echo_build,
    source_options,
)


@main.command()
@source_options
@WAIT_LOCK_OPTION
def ingest(
    team_ids: tuple[int, ...], base_url: str | None, db_path: Path, destination: str | None, wait_lock: float
) -> None:
    """Poll each team once, load what changed, and print a summary. The scheduled job.

    The API key comes from SOURCES__SUPERMETRICS__API_KEY or .dlt/secrets.toml, never from the
    command line. Rebuilds the analytics models afterwards. Exit codes: 0 ok, 64 usage, 65
    invalid response, 69 API unavailable (or max_run_seconds passed), 70 model error, 73 locked,
    74 storage or publish error, 75 rate limited or quota, 77 auth, 78 config, 130 Ctrl-C.
    With several teams, a line per team, and the first failure's code.

    \b
    Example:
        */5 * * * * cd /srv/backfills && .venv/bin/backfills ingest --team-id 936506
    """
    from ..ingest import ingest as run_ingest

    echo_ingest(
        lambda: run_ingest(
            db_path,
            team_ids=list(team_ids) or None,
            base_url=base_url,
            wait_lock=wait_lock,
            destination=destination,
        )
    )


def echo_ingest(run: Callable[[], IngestResult]) -> None:
    """Run an ingest and print its summary: a line per team, ok or not, even when some failed
    (the first failure's line and exit code come last)."""
    try:
        result = run()
    except MonitorError as error:
        if error.result is not None:
            _echo_summary(error.result)
        raise
    _echo_summary(result)


def _echo_summary(result: IngestResult) -> None:
    report = result.report
    for warning in report.warnings:
        click.echo(f"warning: {clean(warning)}", err=True)
    for team in report.teams:
        if team.error is not None:
            click.echo(f"team {team.team_id}: poll {team.poll_id} failed: {team.error.failure_class}")
            continue
        click.echo(
            f"team {team.team_id}: poll {team.poll_id}, listed {team.listed}, changed {team.changed}, "
            f"left the list {team.left}, finished {team.finished}, new errors {team.new_errors}"
        )
    for team_id in report.not_polled:
        click.echo(f"team {team_id}: not polled, the run stopped at the failure on stderr")
    if result.built is not None:
        echo_build(result.built, result.published)
    if result.alerts is not None:
        click.echo(result.alerts.describe())
    summary = f"{report.requests} request(s){_sweep_summary(report)}"
    click.echo(f"{summary}, {result.seconds:.1f} s, database {result.database or result.db_path}")


def _duration_text(seconds: float) -> str:
    """5m for 300: the largest unit that divides it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _sweep_summary(report: RunReport) -> str:
    if not report.sweep_budget:
        return " (the sweep of transfers and runs is off)"
    swept = sum(team.sweep_requests for team in report.teams)
    runs = sum(team.runs_stored for team in report.teams)
    return f" ({swept} for transfers and runs, at most {report.sweep_budget} a team; {runs} run(s) stored)"


@main.command(name="init")
@click.option(
    "--team-id", "team_ids", multiple=True, type=int, required=True, help="Team to poll; repeat for several."
)
@click.option("--base-url", default=None, help="API root. Default: production.")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The folder the scheduled job runs in; .dlt/ is written inside it.",
)
def init_command(team_ids: tuple[int, ...], base_url: str | None, folder: Path) -> None:
    """Write .dlt/config.toml and a .dlt/secrets.toml template (0600, ignored by git).

    Nothing that exists is overwritten. Put the API key in secrets.toml (or set
    SOURCES__SUPERMETRICS__API_KEY), then run `backfills ingest` from that folder.

    \b
    Example:
        backfills init --team-id 936506 --dir /srv/backfills
    """
    from ..project_init import PRODUCTION_URL, init

    for path in init(folder, list(team_ids), base_url or PRODUCTION_URL):
        click.echo(f"wrote {path}")
    secrets = folder / ".dlt" / "secrets.toml"
    click.echo(f"next: put the API key in {secrets}, then run `backfills ingest` in {folder}")


@main.command(name="watch")
@click.option(
    "--every",
    "seconds",
    type=Duration(),
    default="5m",
    show_default=True,
    help="Interval between polls: 30s, 5m, 1h.",
)
@source_options
def watch_command(
    seconds: float, team_ids: tuple[int, ...], base_url: str | None, db_path: Path, destination: str | None
) -> None:
    """Ingest on an interval, for machines without cron.

    A failed poll is logged on stderr and the next one happens as planned. SIGINT (Ctrl+C) or
    SIGTERM stops it after the current run: a load is never left half-done. A second Ctrl+C
    stops it at once (exit 130; the next run finishes an interrupted load). Exit 78 on a config
    error, which no later poll would fix.

    \b
    Example:
        backfills watch --every 5m --team-id 936506
    """
    from ..ingest import ingest as run_ingest

    every = _duration_text(seconds)
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        if stop.is_set():
            stopping.stop_now(signum, frame)  # the second signal: stop at once (130 or 143)
        stop.set()  # before saying so: a second Ctrl-C may land while this handler still prints
        click.echo(
            f"{signal.Signals(signum).name}: stopping after the current run (a second signal stops at once)",
            err=True,
        )

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    click.echo(f"watching: one ingest every {every}; Ctrl+C stops")

    def run_once() -> None:
        click.echo(f"-- {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        echo_ingest(
            lambda: run_ingest(
                db_path,
                team_ids=list(team_ids) or None,
                base_url=base_url,
                wait_lock=seconds / 2,
                destination=destination,
            )
        )

    def on_failure(error: MonitorError) -> None:
        click.echo(f"backfills: {error.failure_class}: {clean(str(error))} (next try in {every})", err=True)

    watch(seconds, run_once, on_failure, stop)
