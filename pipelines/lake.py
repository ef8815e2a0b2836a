"""The raw history as Parquet files: dlt's `filesystem` destination, and what readers may take.

`[backfills] destination = "filesystem"` loads the same source into `[destination.filesystem]
bucket_url` (a local folder, or `s3://`, `gs://`, `az://` with dlt's credentials) instead of a
database. dlt writes each table's rows of one load as `<bucket>/<dataset>/<table>/<load_id>.<file_id>.parquet`
and, only after every file of the load is written, `<dataset>/_dlt_loads/<schema>__<load_id>.jsonl`.

So a file is **committed** when its load id (the part of its name before the first dot) has a
row in `_dlt_loads`. A run killed half-way leaves files (perhaps half-written) of a load with no
such row; the next run loads that package again under the same load id and file names, over
them, and only then writes its `_dlt_loads` row. No file is ever taken twice and no row is
doubled: a load that dlt repeats rewrites the same files, it does not add new ones. Every reader
here (the baseline of the next run, the Spark build) lists the committed files and reads only
those; a load that can never complete is dropped by the run and its files are never read.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any

from .supermetrics.errors import ConfigError, StorageError

LOADS_TABLE = "_dlt_loads"
DEFAULT_LAYOUT = "{table_name}/{load_id}.{file_id}.{ext}"  # dlt's; the load id starts each name


@dataclass(frozen=True)
class Lake:
    """One dataset in a bucket: the fsspec file system and the dataset's folder in it."""

    fs: Any
    root: str  # the bucket_url's path, without the protocol
    dataset_path: str  # root/<dataset>
    protocol: str

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    def url(self, path: str) -> str:
        """What engines read: a local path, or the bucket's URL."""
        return path if self.is_local else f"{self.protocol}://{path}"

    def spark_url(self, path: str) -> str:
        """What Spark reads: a URL with its scheme (a bare path would be HDFS on a cluster)."""
        return f"{self.protocol}://{path}"

    def committed_loads(self) -> set[str]:
        """The load ids dlt completed. A `_dlt_loads` file cut short by a kill is not a completed
        load (dlt writes it again when it finishes the package)."""
        loads = set()
        for path in self._ls(posixpath.join(self.dataset_path, LOADS_TABLE)):
            try:
                record = json.loads(self.fs.cat_file(path))
            except (ValueError, UnicodeDecodeError):
                continue
            if record.get("status") == 0 and record.get("load_id"):
                loads.add(record["load_id"])
        return loads

    def committed_files(self) -> dict[str, list[str]]:
        """Table -> its Parquet files of completed loads, in load order (dlt's own tables left out)."""
        loads = self.committed_loads()
        tables: dict[str, list[str]] = {}
        for folder in self._ls(self.dataset_path, directories=True):
            table = posixpath.basename(folder.rstrip("/"))
            if table.startswith("_dlt"):
                continue
            files = [
                path for path in self._ls(folder) if path.endswith(".parquet") and _load_id(path) in loads
            ]
            if files:
                tables[table] = sorted(files, key=_load_id)
        return tables

    def _ls(self, path: str, directories: bool = False) -> list[str]:
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {self.url(path)}: {exc}") from None
        kind = "directory" if directories else "file"
        return [e["name"] for e in entries if e.get("type") == kind]


def _load_id(path: str) -> str:
    """`<load_id>.<file_id>.parquet`: dlt's load ids are `<seconds>.<fraction>`."""
    name = posixpath.basename(path)
    return ".".join(name.split(".")[:2])


def bucket_config() -> Any:
    """dlt's `[destination.filesystem]` configuration (bucket_url and credentials)."""
    import dlt
    from dlt.common.configuration import resolve_configuration
    from dlt.common.configuration.exceptions import ConfigurationException
    from dlt.common.storages import FilesystemConfiguration

    layout = dlt.config.get("destination.filesystem.layout")
    if layout and layout != DEFAULT_LAYOUT:  # readers find a file's load id by its name
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


def open_lake(config: Any, dataset: str) -> Lake:
    from dlt.common.storages import fsspec_from_config

    fs, root = fsspec_from_config(config)
    return Lake(fs, root, posixpath.join(root, dataset), config.protocol)


def attach(con: Any, lake: Lake, schema: str) -> list[str]:
    """Views `schema.<table>` in a DuckDB connection over the committed files of each table;
    returns the tables. Another bucket than a local folder is read through fsspec."""
    if not lake.is_local:
        con.register_filesystem(lake.fs)
    con.execute(f"create schema if not exists {schema}")
    tables = lake.committed_files()
    for table, files in tables.items():
        listed = ", ".join("'" + lake.url(f).replace("'", "''") + "'" for f in files)
        con.execute(
            f"create or replace view {schema}.{table} as "
            f"select * from read_parquet([{listed}], union_by_name = true)"
        )
    return list(tables)
