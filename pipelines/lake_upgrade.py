"""Buckets written before the raw tables were Delta: plain Parquet, one file per table and load.

Releases up to 0.3.0 wrote each raw table as `<dataset>/<table>/<load_id>.<file_id>.parquet`,
and a file counted when its load id had a `_dlt_loads` row (a kill left files of loads without
one, which nobody read). The first run of this release, after it has finished what an older run
left pending (that package still writes plain files), makes each such folder a Delta table:

    for each raw table folder without a _delta_log/:
        write the committed files' rows as the table's first Delta commit   # one atomic commit
        delete the folder's plain files                                     # in no commit: unread

A kill before a table's commit leaves it plain (the next run converts it again: what the killed
one wrote is in no commit, so no reader takes it); a kill after it leaves plain files that no
Delta reader takes, and the next compaction's vacuum deletes. Nothing is read twice or lost.
"""

from __future__ import annotations

import json
import posixpath
import re

from .lake import LOADS_TABLE, Lake

PLAIN_FILE = re.compile(r"^\d+\.\d+\.[^.]+\.parquet$")  # dlt's default layout: <load_id>.<file_id>.parquet


def upgrade(lake: Lake) -> list[str]:
    """Make every plain-Parquet table of the bucket a Delta table; returns the converted tables."""
    converted = []
    committed = None
    for table in lake.table_folders():
        folder = lake.table_path(table)
        if lake.fs.exists(posixpath.join(folder, "_delta_log")):
            continue
        plain = [path for path in lake.ls(folder) if PLAIN_FILE.match(posixpath.basename(path))]
        committed = committed_loads(lake) if committed is None else committed
        files = sorted((p for p in plain if _load_id(p) in committed), key=_load_id)
        if files:
            _write_first_commit(lake, table, files)
            converted.append(table)
        for path in plain:
            lake.fs.rm(path)
    return converted


def committed_loads(lake: Lake) -> set[str]:
    """The load ids with a `_dlt_loads` row (a row cut short by a kill is none)."""
    loads = set()
    for path in lake.ls(posixpath.join(lake.dataset_path, LOADS_TABLE)):
        try:
            record = json.loads(lake.fs.cat_file(path))
        except (ValueError, UnicodeDecodeError):
            continue
        if record.get("status") == 0 and record.get("load_id"):
            loads.add(record["load_id"])
    return loads


def _write_first_commit(lake: Lake, table: str, files: list[str]) -> None:
    """The files' rows, in load order, as the Delta table's first commit. A column a later load
    added is null in the rows of earlier files, as readers saw it before."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from dlt.common.libs.deltalake import write_delta_table

    schema = pa.unify_schemas([pq.read_schema(path, filesystem=lake.fs) for path in files])
    rows = ds.dataset(files, schema=schema, format="parquet", filesystem=lake.fs)
    write_delta_table(
        lake.url(lake.table_path(table)),
        rows.scanner().to_reader(),
        "append",
        storage_options=lake.storage_options,
    )


def _load_id(path: str) -> str:
    """`<load_id>.<file_id>.parquet`: dlt's load ids are `<seconds>.<fraction>`."""
    return ".".join(posixpath.basename(path).split(".")[:2])
