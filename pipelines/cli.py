"""The `backfills` command: a thin layer over the library."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from . import report as report_module
from . import stopping
from .engines import ENGINES
from .simulator import DEFAULT_API_KEY, DEFAULT_TEAM_ID, FAULT_KINDS, Simulator, Workload, parse_fault
from .supermetrics.client import is_loopback
from .supermetrics.errors import ConfigError, MonitorError, UsageError, causes
from .supermetrics.settings import DEFAULT_DB_PATH
from .supermetrics.snapshot import RunReport
from .text import clean, one_line
from .watch import parse_interval, watch

if TYPE_CHECKING:
    from .alerts.settings import AlertSettings
    from .ingest import IngestResult
    from .models import BuildResult
    from .publish import PublishResult

# dlt (about a second to import) is imported only by the commands that load or build: ingest,
# watch, models, demo. report, check, query and simulate start without it.


class Cli(click.Group):
    """Any error ends in one line on stderr and a documented exit code (docs/ingest.md "Exit codes");
    -v shows the traceback of an unexpected one."""

    def main(self, *args: object, **kwargs: object) -> object:
        stopping.install()  # Ctrl-C and SIGTERM stop any command at once: 130 and 143
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except KeyboardInterrupt:  # a stop outside a command's own work (parsing, printing)
            fail(stopping.interrupted())
        except click.UsageError as error:  # click says 2; sysexits says 64
            error.show()
            sys.exit(UsageError.exit_code)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.exceptions.Abort:  # Ctrl-C at a click prompt
            fail(stopping.interrupted())

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MonitorError as error:
            fail(stopping.interrupted() if stopping.received() else error)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (KeyboardInterrupt, Exception) as exc:  # not SystemExit: a command's own exit code
            if stopping.received():  # whatever a library made of the stop on its way out
                fail(stopping.interrupted())
            if any(isinstance(cause, BrokenPipeError) for cause in causes(exc)):
                closed_pipe()
            known = known_error(exc)
            if known is not None:
                fail(known)
            if not isinstance(exc, Exception) or (ctx.obj and ctx.obj.get("verbose")):
                raise
            click.echo(
                f"backfills: unexpected error: {type(exc).__name__}: {one_line(str(exc))} "
                "(-v shows the traceback)",
                err=True,
            )
            sys.exit(1)


def known_error(exc: BaseException) -> MonitorError | None:
    """The monitor's error for a failure raised from inside a library: Ctrl-C anywhere (also
    wrapped by dlt), an unreadable config file."""
    for cause in causes(exc):
        if isinstance(cause, KeyboardInterrupt):
            return stopping.interrupted()
        toml = sys.modules.get("dlt.common.configuration.providers.toml")  # loaded if dlt raised
        if toml is not None and isinstance(cause, toml.TomlProviderReadException):
            problem = str(cause).splitlines()[-1]  # the TOML parser's words, with line and column
            if cause.file_name == "secrets.toml":  # not even one character of a secret
                problem = re.sub(r"'[^']*'", "'…'", problem)
            return ConfigError(f"cannot read .dlt/{cause.file_name}: {problem}")
        if isinstance(cause, MonitorError):
            return cause
    return None


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="supermetrics-backfill-monitor", prog_name="backfills")
@click.option("-v", "--verbose", is_flag=True, help="Log more, and show tracebacks of unexpected errors.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="BACKFILLS_LOG_FORMAT",
    help="json: every line printed becomes one JSON object (time, level, stream, message), for log "
    "shippers (env BACKFILLS_LOG_FORMAT).",
)
@click.pass_context
def main(ctx: click.Context, verbose: bool, log_format: str) -> None:
    """Monitor Supermetrics backfills: poll the API into DuckDB history and report on it."""
    ctx.obj = {"verbose": verbose}
    if log_format == "json":
        from .json_lines import install

        install()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s: %(message)s"
    )
    # dlt's own logging prints tracebacks of failures this command reports in one line; config
    # files and env vars still win. Telemetry stays off even when .dlt/ is not in the working dir.
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


class Duration(click.ParamType):
    """A duration with its unit (30s, 5m, 1h, 2d), in seconds; anything else is a usage error."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_interval(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def plural(count: float, word: str) -> str:
    return word if count == 1 else word + "s"


def echo_in_chunks(text: str, size: int = 1 << 16) -> None:
    """Print a long text in pieces: Python takes one big write cut short by a reader that went
    away (`| head`) as done, and the run would end 0 instead of telling the closed pipe."""
    out = click.get_text_stream("stdout")
    for start in range(0, len(text), size):
        out.write(text[start : start + size])
        out.flush()


def closed_pipe() -> NoReturn:
    """The reader of the output went away (`backfills demo | head -2`): end quietly, with the
    status of a process that SIGPIPE ended (141), as the shell's own tools do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # nothing more to flush at exit, and no second error
    with stopping.last_line(128 + signal.SIGPIPE):
        pass
    sys.exit(128 + signal.SIGPIPE)


def fail(error: MonitorError) -> NoReturn:
    """The one line on stderr and the exit code of a failed command."""
    with stopping.last_line(error.exit_code):
        click.echo(f"backfills: {error.failure_class}: {clean(str(error))}", err=True)
    sys.exit(error.exit_code)


def _db_option(help_text: str) -> Callable:
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_DB_PATH,
        show_default=True,
        envvar="BACKFILLS_DB",
        help=help_text,
    )


_DB = _db_option(
    "DuckDB file (env BACKFILLS_DB). Folders are created. With PostgreSQL or filesystem, dlt's "
    "working folder goes in its folder."
)
_DB_READ = _db_option("The DuckDB file ingest writes (env BACKFILLS_DB); read only, never created.")
_DESTINATION = click.option(
    "--destination",
    type=click.Choice(ENGINES),
    envvar="BACKFILLS_DESTINATION",
    help="Where the history lives (env BACKFILLS_DESTINATION). Default: [backfills] destination in "
    ".dlt/config.toml, else duckdb. postgres reads [destination.postgres] credentials from "
    ".dlt/secrets.toml; filesystem (Parquet, models on Spark) [destination.filesystem] bucket_url.",
)


def DB_OPTION(command: Callable) -> Callable:  # noqa: N802 - used as a decorator, like click's
    """--db and --destination: which database a command writes."""
    return _DB(_DESTINATION(command))


def DB_READ_OPTION(command: Callable) -> Callable:  # noqa: N802 - used as a decorator, like click's
    """--db and --destination: which database a command reads."""
    return _DB_READ(_DESTINATION(command))


def format_option(help_text: str) -> Callable:
    """--format table|csv|json, for the commands that print results."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["table", "csv", "json"]),
        default="table",
        show_default=True,
        help=help_text,
    )


WAIT_LOCK_OPTION = click.option(
    "--wait-lock",
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    type=click.FloatRange(min=0),
    help="If another ingest, or another process (a DuckDB shell), holds the database, wait this "
    "long for it instead of exiting with 73.",
)


def source_options(command: Callable) -> Callable:
    """--team-id, --base-url and --db, shared by ingest and watch."""
    team = click.option(
        "--team-id",
        "team_ids",
        multiple=True,
        type=int,
        help="Team to poll; repeat for several. Default: team_ids in [sources.supermetrics].",
    )
    base_url = click.option(
        "--base-url", help="API root. Default: base_url in [sources.supermetrics], else production."
    )
    return team(base_url(DB_OPTION(command)))


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
    from .ingest import ingest as run_ingest

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
    from .project_init import PRODUCTION_URL, init

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
    from .ingest import ingest as run_ingest

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


def echo_build(built: BuildResult, published: PublishResult | None) -> None:
    for warning in built.warnings:
        click.echo(f"warning: data check: {clean(warning)}", err=True)
    click.echo(
        f"models: {len(built.models)} built ({built.mode}), "
        f"{built.tests} data tests run in {built.seconds:.1f} s"
    )
    if published is None:  # PostgreSQL: BI tools read the analytics schema itself
        return
    click.echo(
        f"published for BI tools: {published.duckdb_path}, {published.parquet_dir}/ (Parquet), "
        f"{published.live_path} (views that pooled connections keep seeing fresh)"
    )


@main.command()
@DB_OPTION
@WAIT_LOCK_OPTION
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Rebuild every table from the raw history and run every data test on all rows.",
)
@click.option(
    "--engine",
    type=click.Choice(["database", "spark"]),
    help="Where the models run: in the database itself (duckdb, postgres), or on Spark from the "
    "Parquet files of destination filesystem. Default: spark for filesystem, else database.",
)
def models(
    db_path: Path, destination: str | None, wait_lock: float, full_refresh: bool, engine: str | None
) -> None:
    """Build the analytics schema from the raw history and run the data tests.

    Ingest does this after every run, incrementally: only the polls and backfills that changed
    since the last build. A change of sql/ or of a model variable rebuilds everything by itself;
    --full-refresh does it on demand. Exit 70 when a model fails to build or a data test fails
    (the previous tables stay).

    With destination filesystem the models are built by Spark (always in full) into Parquet
    under [spark] models_url, default <bucket_url>/models; `_current.json` there names the
    build to read. [spark] master: default local[*], or what spark-submit passes.

    \b
    Example:
        MODELS__STALL_AFTER_HOURS=4 backfills models --db data/backfills.duckdb
        backfills models --full-refresh --db data/backfills.duckdb
        BACKFILLS_DESTINATION=filesystem backfills models --engine spark
    """
    from .engines import warehouse

    target = warehouse(db_path, destination)
    if engine == "spark" or (engine is None and not target.builds_in_run):
        from .spark import build_from_config

        built = build_from_config(target)
        echo_build(built, None)
        click.echo(f"models on Spark: {built.build_url} (named by _current.json beside it)")
        return
    from .ingest import rebuild_models

    echo_build(*rebuild_models(db_path, wait_lock, full_refresh, destination))


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
@DB_READ_OPTION
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json", "html"]),
    default="table",
    show_default=True,
    help="table: fitted to the terminal's width (COLUMNS when piped); json: every section; csv: one; "
    "html: one self-contained page with charts (to --output, else stdout).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --format html: the file to write (replaced whole).",
)
@click.option(
    "--section",
    type=click.Choice(list(report_module.SECTIONS)),
    default="incomplete",
    show_default=True,
    help="With --format csv: the section to print.",
)
def report(
    db_path: Path, destination: str | None, output_format: str, output: Path | None, section: str
) -> None:
    """What needs a person, what is running, what finished, what fails: the 9 o'clock view.

    Reads the copy published for BI tools (refreshed by every ingest), so it never gets in the
    way of a scheduled ingest.

    \b
    Example:
        backfills report
        backfills report --format csv --section transfers > transfers.csv
        backfills report --format html --output report.html
    """
    if output_format == "html":
        from . import report_html

        if output is not None:
            click.echo(f"wrote {report_html.write(db_path, output, destination)}")
            return
        sections, charts, label = report_html.gather(db_path, destination)
        echo_in_chunks(report_html.render_html(sections, charts, label))
        return
    sections, _ = report_module.gather(db_path, destination)
    if output_format == "json":
        click.echo(report_module.render_json(sections))
    elif output_format == "csv":
        click.echo(str(report_module.verdict(sections)), err=True)  # the CSV itself stays parseable
        click.echo(report_module.render_csv(sections[section]), nl=False)
    elif sys.stdout.isatty():
        from rich.console import Console

        report_module.render_rich(sections, Console())
    else:
        click.echo(report_module.render_plain(sections, shutil.get_terminal_size((100, 24)).columns))


@main.command()
@DB_READ_OPTION
@click.option(
    "--max-age",
    type=Duration(),
    default="20m",
    show_default=True,
    help="Critical when a team's newest successful poll is older than this: 90s, 20m, 2h (a unit is "
    "required; anything else is a usage error, 64).",
)
def check(db_path: Path, destination: str | None, max_age: float) -> None:
    """Say in one line whether the numbers are current; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

    CRITICAL when the last model build failed or a team's newest successful poll is older than
    --max-age; WARNING when a team's latest poll failed but its data is still within --max-age.
    Reads the copy published for BI tools, so it never gets in the way of a scheduled ingest.
    The exit codes are those of Nagios plugins; for cron wrappers, anything but 0 is a problem.

    \b
    Example:
        backfills check --max-age 20m || notify-team "backfill monitor: $(backfills check)"
    """
    limit = timedelta(seconds=max_age)
    try:
        sections, _ = report_module.gather(db_path, destination)
    except MonitorError as error:
        click.echo(f"UNKNOWN: {error}")
        sys.exit(3)
    status = report_module.verdict(sections, max_age=limit)
    click.echo(str(status))
    sys.exit(status.exit_code)


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

    from .demo import EXAMPLE_QUERIES, run_demo

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


@main.command()
@DB_OPTION
@WAIT_LOCK_OPTION
@click.option(
    "--dry-run", is_flag=True, help="Print the pending alerts and what each would say; send nothing."
)
@click.option("--test", "send_test", is_flag=True, help="Send one test message to each configured channel.")
def alerts(db_path: Path, destination: str | None, wait_lock: float, dry_run: bool, send_test: bool) -> None:
    """Deliver the pending alerts now (ingest does it after every run), or check the channels.

    Channels: [alerts] webhook_url and slack_webhook_url in .dlt/secrets.toml. Exit 0 when every
    pending alert was delivered (or --test reached every channel), 69 when a receiver failed
    (the alerts stay pending), 78 when no channel is configured (--dry-run then shows the events
    true now, as alerts would word them).

    \b
    Example:
        backfills alerts --test
        backfills alerts --dry-run
    """
    from .alerts import delivery
    from .alerts import settings as alert_settings
    from .supermetrics.errors import ApiUnavailableError

    settings = alert_settings.load()
    if not settings.enabled and dry_run:
        preview_alerts(db_path, destination, settings)
        return
    if not settings.enabled:
        raise ConfigError(
            "no alert channel is configured: set [alerts] webhook_url or slack_webhook_url in "
            ".dlt/secrets.toml (or ALERTS__WEBHOOK_URL, ALERTS__SLACK_WEBHOOK_URL)"
        )
    if send_test:
        import requests

        failed = []
        for channel, url in settings.urls.items():
            payload, key = delivery.test_message(channel)
            error = delivery.post(requests.Session(), url, payload, key, settings)
            click.echo(f"{channel}: {'test message sent' if error is None else 'failed: ' + error}")
            if error is not None:
                failed.append(f"{channel}: {error}")
        if failed:
            raise ApiUnavailableError(f"the test message did not reach {'; '.join(failed)}")
        return
    if dry_run:  # the outbox is in the database itself (the copy for BI tools has analytics only)
        from .engines import warehouse

        target = warehouse(db_path, destination)
        target.require_existing()
        with target.connect(read_only=True) as con:
            rows = delivery.pending(con)
        for row in rows:
            tried = f" (tried {row['attempts']}x: {row['last_error']})" if row["attempts"] else ""
            click.echo(f"{row['channel']}: {clean(delivery.summary(row))}{tried}")
        click.echo(f"{len(rows)} pending alert(s); nothing sent (--dry-run)")
        return
    from .ingest import target_of

    target = target_of(db_path, destination)
    target.require_existing()
    with target.errors(), target.session(time.monotonic(), wait_lock) as con:
        report = delivery.deliver(con, settings, max_seconds=float("inf"), due_only=False)
    click.echo(report.describe())
    if report.failures:
        raise ApiUnavailableError(
            f"{len(report.failures)} alert delivery(ies) failed ({'; '.join(sorted(set(report.failures)))}); "
            "they stay pending"
        )


def preview_alerts(db_path: Path, destination: str | None, settings: AlertSettings) -> None:
    """`alerts --dry-run` before any channel exists: the events that are true now, as a channel
    would word them (kinds and filters as configured)."""
    from .alerts import delivery
    from .engines import warehouse

    target = warehouse(db_path, destination)
    target.require_existing()
    with target.connect(read_only=True) as con:
        events = [e for e in con.records("select * from analytics.alert_events") if settings.wants(e)]
    events.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    for event in events:
        click.echo(clean(delivery.summary(event)))
    click.echo(
        f"{len(events)} event(s) true now, as alerts would say them; no channel is configured, nothing "
        "sent. A channel set up now sends what happens from its first run on."
    )


@main.command()
@click.argument("sql")
@DB_READ_OPTION
@format_option("table: whole cells, NULL shown; csv and json: one statement's result, for scripts.")
def query(sql: str, db_path: Path, destination: str | None, output_format: str) -> None:
    """Run read-only SQL against the database and print each statement's result.

    \b
    Example:
        backfills query "select status, count(*) from analytics.backfills group by status"
        backfills query --format csv "select * from analytics.transfer_failure_rates" > rates.csv
    """
    from .engines import warehouse
    from .query_output import render, statements

    parts = statements(sql)
    if not parts:
        raise UsageError("no SQL statement given")
    if len(parts) > 1 and output_format != "table":
        raise UsageError(
            f"--format {output_format} prints one statement's result, and {len(parts)} were given: "
            "run one per call, or use --format table"
        )
    target = warehouse(db_path, destination)
    target.require_existing("run backfills ingest (or demo) first")
    with target.connect(read_only=True) as con:
        for number, statement in enumerate(parts):
            try:
                result = con.result(statement)
            except con.errors as exc:
                fail(UsageError(f"the query failed: {str(exc).strip().splitlines()[0]}"))
            if number:
                click.echo("")
            if result is not None:
                echo_in_chunks(render(*result, output_format))
