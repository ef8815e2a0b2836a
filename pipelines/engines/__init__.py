"""Engines: where the history lives, behind one interface (`base.Warehouse`), one module each.

- `duckdb`: a file, the default; readers open the copy each build publishes.
- `postgres`: a database; readers use its analytics schema.
- `filesystem`: Delta tables in a bucket; Spark builds the models (pipelines.spark).

The orchestration (pipelines.ingest, pipelines.models, the CLI) never asks which engine it has:
it calls the interface, and an engine that cannot do something refuses it through `require`.

Adding an engine (say, one of the warehouses dlt already loads):

1. A module here with a `Warehouse` subclass declared `name="<dlt destination>"`: its label,
   working folder, dlt destination, connection (a `Connection` subclass: placeholders, row count,
   error class, a physical row id for settling doubled loads), `session` (the run lock and the
   connection held for the run), and the DDL a build needs (`temp_relation`, `create_table`,
   `replace_table`, `replace_view`, and `clustered` where its storage can skip by order);
   `refusals` for what it cannot do; `errors`/`known_error` to turn its driver's failures into
   one line. Storage kept apart from a database (files, an open
   table format) also has the hooks `reloading`, `upgrade_storage`, `maintain` and `compact`,
   as `filesystem` does. Import it below.
2. `configured_credentials`: what it connects with, from dlt's config and secrets.
3. A test beside tests/test_postgres.py's equality tests: every raw and analytics table equal to
   DuckDB's after a seeded history, its chaos test, and the CLI as its least-privileged roles.
   The models' SQL is portable already (tests/test_sql_portability.py says where it is not).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from ..supermetrics.errors import ConfigError
from . import duckdb, filesystem, postgres  # noqa: F401 - each registers its engine
from .base import ENGINES, Connection, Warehouse
from .postgres import AdvisoryLock, postgres_credentials

CONFIG_FILE = Path(".dlt/config.toml")
__all__ = [
    "ENGINES",
    "AdvisoryLock",
    "Connection",
    "Warehouse",
    "configured_engine",
    "postgres_credentials",
    "warehouse",
]


def configured_engine(option: str | None = None) -> str:
    """`--destination`, else BACKFILLS_DESTINATION, else `[backfills] destination` in the working
    directory's .dlt/config.toml (where dlt reads its config), else duckdb."""
    name = option or os.environ.get("BACKFILLS_DESTINATION")
    if not name and CONFIG_FILE.is_file():
        try:
            name = tomllib.loads(CONFIG_FILE.read_text()).get("backfills", {}).get("destination")
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {CONFIG_FILE}: {str(exc).splitlines()[0]}") from None
    name = (name or "duckdb").strip().lower()
    if name not in ENGINES:
        raise ConfigError(
            f"destination = {name!r} is not one of {', '.join(ENGINES)}: set [backfills] destination "
            "in .dlt/config.toml, BACKFILLS_DESTINATION or --destination"
        )
    return name


def warehouse(db_path: Path, destination: str | None = None) -> Warehouse:
    """The configured warehouse, with its credentials from dlt's config and secrets."""
    engine = configured_engine(destination)
    return Warehouse(engine, Path(db_path), ENGINES[engine].configured_credentials())
