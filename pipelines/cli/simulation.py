"""The simulator of the API, and the demo that runs the whole pipeline on it."""

from __future__ import annotations

import logging
import shutil
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path

import click

from .. import report as report_module
from ..simulator import DEFAULT_API_KEY, DEFAULT_TEAM_ID, FAULT_KINDS, Simulator, Workload, parse_fault
from ..supermetrics.client import is_loopback
from ..supermetrics.errors import ConfigError, UsageError
from .app import main
from .options import (
    plural,
)


def _parse_start(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        start = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2026-01-05T08:00:00Z") from exc
    if start.tzinfo is None:
        raise click.BadParameter("give a timezone, e.g. 2026-01-05T08:00:00Z")
    return start


def _parse_faults(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list:
    try:
        return [parse_fault(v) for v in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on. Other than loopback only with --allow-remote.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Listen on a non-loopback --host although /_sim (clock, faults) has no authentication.",
)
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks a free one."
)
@click.option(
    "--seed", default=0, show_default=True, help="Seeds the workload, run times, errors and faults."
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Simulated seconds per real second: 1 real time, 600 ten minutes a second, 0 manual.",
)
@click.option(
    "--start", callback=_parse_start, help="Simulated start time (ISO 8601, UTC). Default 2026-01-05T08:00Z."
)
@click.option(
    "--api-key",
    default=DEFAULT_API_KEY,
    show_default=True,
    envvar="BACKFILLS_SIM_API_KEY",
    help="Bearer key the simulator accepts (a test key, not a secret).",
)
@click.option(
    "--team-id",
    "team_ids",
    multiple=True,
    type=int,
    default=(DEFAULT_TEAM_ID,),
    show_default=True,
    help="Team to simulate; repeat for several.",
)
@click.option(
    "--transfers", default=12, show_default=True, type=click.IntRange(min=1), help="Transfers per team."
)
@click.option(
    "--backfills-per-day",
    default=16.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="New backfills per team per simulated day.",
)
@click.option("--no-workload", is_flag=True, help="Start with empty teams; create backfills through the API.")
@click.option(
    "--warmup-hours",
    default=24.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Simulated history run through before serving.",
)
@click.option(
    "--max-running",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Backfills a team runs at once.",
)
@click.option(
    "--rate-limit", type=click.IntRange(min=1), help="Enforce this many requests per key per simulated hour."
)
@click.option(
    "--retention-days",
    type=click.FloatRange(min=0, min_open=True),
    help="Forget finished backfills (404) this long after they end.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    callback=_parse_faults,
    metavar="ENDPOINT:KIND[:N|@P]",
    help="Inject a fault, e.g. list:503:2 (next 2 list calls) or any:429@0.05. Repeatable. "
    f"Endpoints: list, get, latest, create, cancel, any. Kinds: {', '.join(FAULT_KINDS)}.",
)
@click.option("--retry-after", default=30, show_default=True, help="Retry-After seconds of injected 429s.")
@click.option("--slow-seconds", default=2.0, show_default=True, help="Delay of injected slow answers.")
def simulate(
    host: str,
    allow_remote: bool,
    port: int,
    seed: int,
    speed: float,
    start: datetime | None,
    api_key: str,
    team_ids: tuple[int, ...],
    transfers: int,
    backfills_per_day: float,
    no_workload: bool,
    warmup_hours: float,
    max_running: int,
    rate_limit: int | None,
    retention_days: float | None,
    faults: list,
    retry_after: int,
    slow_seconds: float,
) -> None:
    """Serve the local simulator of the Supermetrics backfill API.

    \b
    Example:
        backfills simulate --port 8765 --speed 600
        curl -H 'Authorization: Bearer sim-key' http://127.0.0.1:8765/v1/teams/936506/backfills
    """
    if not allow_remote and not is_loopback(host):
        raise UsageError(
            f"--host {host} is not loopback, and /_sim (the clock, faults) has no authentication: "
            "add --allow-remote if every machine that can reach it may control it"
        )
    logging.getLogger("pipelines.simulator").setLevel(logging.INFO)
    workload = (
        None if no_workload else Workload(transfers_per_team=transfers, backfills_per_day=backfills_per_day)
    )
    sim = Simulator(
        seed=seed,
        speed=speed,
        start=start,
        teams=team_ids,
        api_key=api_key,
        workload=workload,
        warmup=timedelta(hours=warmup_hours),
        max_running=max_running,
        rate_limit=rate_limit,
        retention=timedelta(days=retention_days) if retention_days else None,
        host=host,
        port=port,
    )
    for fault in faults:
        fault.retry_after, fault.slow_seconds = retry_after, slow_seconds
        sim.faults.add(fault)
    signal.signal(signal.SIGTERM, lambda *_: sim.stopping.set())
    try:
        sim.start()
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port, or 0 for a free one"
        ) from None
    click.echo(
        f"Simulator serving {sim.base_url} (teams {', '.join(map(str, team_ids))}, "
        f"speed {speed:g}x, simulated now {sim.clock.now():%Y-%m-%d %H:%M}Z). Ctrl+C stops it."
    )
    click.echo(f"  curl -H 'Authorization: Bearer {api_key}' {sim.base_url}/teams/{team_ids[0]}/backfills")
    try:
        sim.stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


@main.command()
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("data/demo.duckdb"),
    show_default=True,
    help="Where to build the demo database (only ever one the demo made).",
)
@click.option(
    "--days",
    default=3.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Simulated days of 5-minute polls.",
)
@click.option("--seed", default=7, show_default=True, help="Seeds the simulated workload.")
def demo(db_path: Path, days: float, seed: int) -> None:
    """Run the whole pipeline on the local simulator and print the report.

    Starts the simulator on 127.0.0.1 with a busy team (a dozen transfers; backfills queueing,
    running, failing, retried and cancelled), polls it every 5 simulated minutes for a few
    simulated days, builds the models, and prints the report and some queries to try.

    \b
    Example:
        backfills demo --days 1
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..demo import EXAMPLE_QUERIES, run_demo

    # the demo injects an outage on purpose: its summary line says so, not a warning per retry
    logging.getLogger("pipelines.supermetrics.client").setLevel(logging.ERROR)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=not sys.stdout.isatty()) as progress:
        task = progress.add_task(f"polling {days:g} simulated {plural(days, 'day')}", total=None)
        result = run_demo(
            db_path,
            days=days,
            seed=seed,
            on_run=lambda done, total: progress.update(task, completed=done, total=total),
        )
    click.echo(
        f"{result.polls} polls over {days:g} simulated {plural(days, 'day')}, {result.failed_polls} failed "
        "(an injected outage: see analytics.polls)\n"
    )
    sections, _ = report_module.gather(db_path, "duckdb")
    if sys.stdout.isatty():
        from rich.console import Console

        report_module.render_rich(sections, Console())
    else:
        click.echo(report_module.render_plain(sections, shutil.get_terminal_size((100, 24)).columns))
    click.echo(f"\nThe database: {db_path} (raw history in schema supermetrics, models in schema analytics)")
    click.echo(
        f"For BI tools: {result.published.duckdb_path}, {result.published.parquet_dir}/ (Parquet), "
        f"{result.published.live_path} (views, for tools that pool connections)"
    )
    click.echo("\nQueries to try, e.g. backfills query --db " + str(db_path) + ' "select ...":')
    for query in EXAMPLE_QUERIES:
        click.echo(f"\n  {query}")
