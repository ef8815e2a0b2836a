"""The commands that read: report, check and query."""

from __future__ import annotations

import shutil
import sys
from datetime import timedelta
from pathlib import Path

import click

from .. import report as report_module
from ..supermetrics.errors import MonitorError, UsageError
from .app import main
from .options import (
    DB_READ_OPTION,
    Duration,
    echo_in_chunks,
    fail,
    format_option,
)


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
        from .. import report_html

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
    from ..engines import warehouse
    from ..query_output import render, statements

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
