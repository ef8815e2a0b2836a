"""What the commands share: options, parameter types, and how a command prints and fails."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from .. import stopping
from ..engines import ENGINES
from ..supermetrics.errors import MonitorError
from ..supermetrics.settings import DEFAULT_DB_PATH
from ..text import clean
from ..watch import parse_interval

if TYPE_CHECKING:
    from ..models import BuildResult
    from ..publish import PublishResult


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
