"""The `backfills` command: a thin layer over the library."""

from __future__ import annotations

import logging
import signal
from datetime import datetime, timedelta

import click

from .simulator import DEFAULT_API_KEY, DEFAULT_TEAM_ID, FAULT_KINDS, Simulator, Workload, parse_fault


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Monitor Supermetrics backfills: poll the API into DuckDB history and report on it."""


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
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, help="Port; 0 picks a free one.")
@click.option(
    "--seed", default=0, show_default=True, help="Seeds the workload, run times, errors and faults."
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
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
@click.option("--transfers", default=12, show_default=True, help="Transfers per team.")
@click.option(
    "--backfills-per-day", default=16.0, show_default=True, help="New backfills per team per simulated day."
)
@click.option("--no-workload", is_flag=True, help="Start with empty teams; create backfills through the API.")
@click.option(
    "--warmup-hours", default=24.0, show_default=True, help="Simulated history run through before serving."
)
@click.option("--max-running", default=3, show_default=True, help="Backfills a team runs at once.")
@click.option("--rate-limit", type=int, help="Enforce this many requests per key per simulated hour.")
@click.option(
    "--retention-days", type=float, help="Forget finished backfills (404) this long after they end."
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
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
    sim.start()
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
