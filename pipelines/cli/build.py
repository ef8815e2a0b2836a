"""`backfills models`: build the models of a database that exists."""

from __future__ import annotations

from pathlib import Path

import click

from .app import main
from .options import (
    DB_OPTION,
    WAIT_LOCK_OPTION,
    echo_build,
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
    "Delta tables of destination filesystem. Default: spark for filesystem, else database.",
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
    from ..engines import warehouse

    target = warehouse(db_path, destination)
    if engine == "spark" or (engine is None and not target.builds_in_run):
        from ..spark import build_from_config

        built = build_from_config(target)
        echo_build(built, None)
        click.echo(f"models on Spark: {built.build_url} (named by _current.json beside it)")
        return
    from ..ingest import rebuild_models

    echo_build(*rebuild_models(db_path, wait_lock, full_refresh, destination))
