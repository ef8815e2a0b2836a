"""`backfills compact`: compact and vacuum the bucket's Delta tables now."""

from __future__ import annotations

from pathlib import Path

import click

from .app import main
from .options import DB_OPTION, WAIT_LOCK_OPTION


@main.command()
@DB_OPTION
@WAIT_LOCK_OPTION
@click.option(
    "--retention-hours",
    type=click.IntRange(min=0),
    metavar="HOURS",
    help="Keep the files and commits a snapshot of the last HOURS still reads. Default: "
    "[lake] retention_hours, else 24.",
)
def compact(db_path: Path, destination: str | None, wait_lock: float, retention_hours: int | None) -> None:
    """Compact every Delta table of the bucket, checkpoint its log and vacuum it (destination
    filesystem). Each run does this by itself for a table past [lake] compact_after_files files.

    A reader that started on a snapshot less than the retention ago keeps its files; set it
    longer than your longest Spark build. Exit 73 while a run holds the bucket (--wait-lock),
    78 on a database destination.

    \b
    Example:
        BACKFILLS_DESTINATION=filesystem backfills compact --retention-hours 24
    """
    from ..engines import warehouse

    target = warehouse(db_path, destination)
    for line in target.compact(wait_lock, retention_hours):
        click.echo(line)
