"""The raw history as Delta tables: dlt's `filesystem` destination, and what readers may take.

`[backfills] destination = "filesystem"` loads the same source into `[destination.filesystem]
bucket_url` (a local folder, or `s3://`, `gs://`, `az://` with dlt's credentials) instead of a
database, with `table_format="delta"`: each raw table is a Delta table,
`<bucket>/<dataset>/<table>/` (its `_delta_log/` and Parquet files), and each load is one atomic
commit per table. Any engine that reads Delta reads them as they are.

A load touches several tables, one commit each, and dlt writes the load's row
`<dataset>/_dlt_loads/<schema>__<load_id>.jsonl` after the last of them. Runs are serial (the run
lock) and each finishes the load an earlier one left before it loads anew, so only the newest
load in the tables can be incomplete. A reader here takes each table's snapshot and leaves out
the rows of that newest load unless its `_dlt_loads` row exists: never half a load, and one
file read to know it, however many loads there are.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from .supermetrics.errors import ConfigError, StorageError

LOADS_TABLE = "_dlt_loads"
# Delta features under which a snapshot's Parquet files alone are not the table (rows deleted
# through a side file, columns renamed through the log); this pipeline's writer uses neither
FILES_NOT_ENOUGH = {"deletionVectors", "columnMapping"}
DEFAULT_LAYOUT = "{table_name}/{load_id}.{file_id}.{ext}"  # dlt's; the upgrade reads load ids from names


@dataclass(frozen=True)
class Snapshot:
    """Each raw table's Delta table at one version, and the load (if any) whose rows to leave out."""

    tables: dict[str, Any]  # table -> deltalake.DeltaTable, children after their parents
    incomplete_load: str | None = None

    def parent(self, table: str) -> str | None:
        """A child table's parent (`backfill_versions__error_report` -> `backfill_versions`)."""
        return table.rsplit("__", 1)[0] if "__" in table else None

    def rows(self, table: str, source: str, parent_view: str | None) -> str:
        """The select of the rows of `table` (read as `source`) a reader may take: all but those
        of an incomplete load; a child table's through its parent's view, `parent_view`."""
        select = f"select * from {source}"
        if self.incomplete_load is None:
            return select
        if parent_view is None:
            return f"{select} where _dlt_load_id <> '{self.incomplete_load}'"
        return f"{select} where _dlt_parent_id in (select _dlt_id from {parent_view})"


@dataclass(frozen=True)
class Lake:
    """One dataset in a bucket: the fsspec file system, the dataset's folder, and what deltalake
    needs to open its tables."""

    fs: Any
    root: str  # the bucket_url's path, without the protocol
    dataset_path: str  # root/<dataset>
    protocol: str
    storage_options: dict[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    def url(self, path: str) -> str:
        """What engines read: a local path, or the bucket's URL."""
        return path if self.is_local else f"{self.protocol}://{path}"

    def spark_url(self, path: str) -> str:
        """What Spark reads: a URL with its scheme (a bare path would be HDFS on a cluster)."""
        return f"{self.protocol}://{path}"

    def table_path(self, table: str) -> str:
        return posixpath.join(self.dataset_path, table)

    def table_folders(self) -> list[str]:
        """The dataset's raw table folders, dlt's own tables left out."""
        names = (posixpath.basename(p.rstrip("/")) for p in self.ls(self.dataset_path, directories=True))
        return sorted(name for name in names if not name.startswith("_dlt"))

    def delta_tables(self) -> dict[str, Any]:
        """Table -> its `deltalake.DeltaTable` (latest version), for the folders that are Delta
        tables. Opened side by side: each open reads the table's log (about 10 ms), and deltalake
        does it without the GIL."""
        from concurrent.futures import ThreadPoolExecutor

        names = self.table_folders()
        with ThreadPoolExecutor(max(1, min(8, len(names)))) as pool:
            opened = dict(zip(names, pool.map(self._open, names), strict=True))
        tables = {table: delta for table, delta in opened.items() if delta is not None}
        return dict(sorted(tables.items(), key=lambda item: item[0].count("__")))

    def _open(self, table: str) -> Any | None:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.url(self.table_path(table)), storage_options=self.storage_options)
        except TableNotFoundError:  # not (yet) a Delta table: an older release's plain Parquet
            return None

    def snapshot(self) -> Snapshot:
        tables = self.delta_tables()
        newest = max((load for load in map(_newest_load, tables.values()) if load), default=None)
        if newest is None or self.load_completed(newest):
            return Snapshot(tables)
        return Snapshot(tables, incomplete_load=newest)

    def load_completed(self, load_id: str) -> bool:
        """Whether dlt wrote the load's `_dlt_loads` row. One cut short by a kill is not one (dlt
        writes it again when it finishes the package)."""
        path = posixpath.join(self.dataset_path, LOADS_TABLE, f"supermetrics__{load_id}.jsonl")
        try:
            record = json.loads(self.fs.cat_file(path))
        except (FileNotFoundError, ValueError, UnicodeDecodeError):  # none yet, or cut short
            return False
        except OSError as exc:
            raise StorageError(f"cannot read {self.url(path)}: {exc}") from None
        return record.get("status") == 0 and record.get("load_id") == load_id

    def ls(self, path: str, directories: bool = False) -> list[str]:
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {self.url(path)}: {exc}") from None
        kind = "directory" if directories else "file"
        return [e["name"] for e in entries if e.get("type") == kind]


def features_beyond_files(delta: Any) -> list[str]:
    """The Delta reader features of a table that reading its snapshot's Parquet files would miss
    (another engine may have turned them on); none for the tables this pipeline writes."""
    return sorted(set(delta.protocol().reader_features or []) & FILES_NOT_ENOUGH)


def _newest_load(table: Any) -> str | None:
    """The newest `_dlt_load_id` in a table, from the statistics in its log (no data read); a
    child table has none (its rows have no load id of their own)."""
    if "_dlt_load_id" not in [f.name for f in table.schema().fields]:
        return None
    actions = table.get_add_actions(flatten=True)
    column = "max._dlt_load_id"
    if column in actions.schema.names and actions.column(column).null_count == 0:
        return max(actions.column(column).to_pylist(), default=None)
    # Delta keeps statistics of the first 32 columns only: read the one column
    import pyarrow.compute as pc

    return pc.max(table.to_pyarrow_dataset().to_table(columns=["_dlt_load_id"]).column(0)).as_py()


def bucket_config() -> Any:
    """dlt's `[destination.filesystem]` configuration (bucket_url and credentials)."""
    import dlt
    from dlt.common.configuration import resolve_configuration
    from dlt.common.configuration.exceptions import ConfigurationException
    from dlt.common.storages import FilesystemConfiguration

    layout = dlt.config.get("destination.filesystem.layout")
    if layout and layout != DEFAULT_LAYOUT:  # the upgrade of older buckets reads load ids from names
        raise ConfigError(
            f"[destination.filesystem] layout = {layout!r}: the filesystem destination needs dlt's "
            f"default layout, {DEFAULT_LAYOUT!r}; remove the setting"
        )
    try:
        return resolve_configuration(FilesystemConfiguration(), sections=("destination", "filesystem"))
    except (ConfigurationException, ValueError):
        raise ConfigError(
            "destination is filesystem but no bucket is set: set [destination.filesystem] bucket_url "
            '= "s3://bucket/path" (or a local folder) in .dlt/config.toml, or '
            "DESTINATION__FILESYSTEM__BUCKET_URL"
        ) from None


def require_deltalake() -> None:
    """`ConfigError` in one line when the `lake` extra is not installed."""
    try:
        import deltalake  # noqa: F401
    except ImportError:
        raise ConfigError(
            "destination filesystem writes Delta tables and needs deltalake: "
            "pip install 'supermetrics-backfill-monitor[lake]' (make test installs it)"
        ) from None


def open_lake(config: Any, dataset: str) -> Lake:
    import dlt

    require_deltalake()
    from dlt.common.libs.deltalake import deltalake_storage_options
    from dlt.common.storages import fsspec_from_config

    fs, root = fsspec_from_config(config)
    # what dlt's Delta jobs use: the credentials, and [destination.filesystem] deltalake_storage_options
    extra = dlt.config.get("destination.filesystem.deltalake_storage_options")
    options = deltalake_storage_options(config.credentials, extra)
    return Lake(fs, root, posixpath.join(root, dataset), config.protocol, options)


def attach(con: Any, lake: Lake, schema: str) -> list[str]:
    """Views `schema.<table>` in a DuckDB connection over each raw table's snapshot: the Parquet
    files deltalake names for it, read by DuckDB (the views work on every cursor of `con`);
    returns the tables. Another bucket than a local folder is read through fsspec."""
    if not lake.is_local:
        con.register_filesystem(lake.fs)
    snapshot = lake.snapshot()
    con.execute(f"create schema if not exists {schema}")
    for table, delta in snapshot.tables.items():
        files = delta.file_uris()
        if not files:  # no rows yet: an empty table with the Delta table's columns
            _create_empty(con, f"{schema}.{table}", delta)
            continue
        listed = ", ".join("'" + uri.replace("'", "''") + "'" for uri in files)
        source = f"read_parquet([{listed}], union_by_name = true)"
        parent = snapshot.parent(table)
        rows = snapshot.rows(table, source, parent and f"{schema}.{parent}")
        con.execute(f"create or replace view {schema}.{table} as {rows}")
    return list(snapshot.tables)


def _create_empty(con: Any, relation: str, delta: Any) -> None:
    import pyarrow as pa

    empty = pa.schema(delta.schema().to_arrow()).empty_table()
    con.register("_empty_delta_table", empty)
    try:
        con.execute(f"create or replace table {relation} as select * from _empty_delta_table")
    finally:
        con.unregister("_empty_delta_table")
