"""Exactly once on Delta tables: a load job dlt repeats must not leave its rows twice.

dlt writes a Delta table's rows of a load with one append commit, then records that the job is
done. A run killed between the two (a moment, but a power cut can find it) makes the next run
append the same rows again: the same `_dlt_id`s, twice. Only the loads a run finds pending can
have been appended before, so only those are settled. The engine writes their ids to a file in
dlt's working folder before it loads them again and removes it once they are settled, so a kill
in between leaves the next run the same work (pipelines.engines.filesystem):

    for each table, parents first:
        the rows of the loads (a child table's: through its parent's rows of the loads)
        if a _dlt_id is there twice: one commit that replaces every copy by one
                                     (an overwrite with a predicate on those _dlt_ids)

The commit is atomic: a kill before it leaves the copies for the next run to settle, a kill
after it has settled. The usual case costs one filtered read of those loads per table, which
Delta's file statistics keep to the files of those loads.

`discard` removes the rows of loads dlt aborted (a package that can never load, some of whose
tables had committed).
"""

from __future__ import annotations

from typing import Any

from .lake import Lake


def settle(lake: Lake, load_ids: list[str] | None) -> dict[str, int]:
    """Keep one copy of every row of these loads (None: of every load, when the list of loads to
    settle was lost); returns table -> extra copies removed."""
    if load_ids == []:
        return {}
    removed = {}
    snapshot = lake.snapshot()
    for table, delta in snapshot.tables.items():
        parent = snapshot.parent(table)
        scope = _rows_of_loads(load_ids, snapshot.tables.get(parent) if parent else None)
        extra = _remove_copies(delta, scope)
        if extra:
            removed[table] = extra
    return removed


def discard(lake: Lake, load_ids: list[str]) -> int:
    """Delete every row of these loads; returns how many root rows went. Root tables first: a
    kill between two deletes can leave child rows without a parent, which no model reads."""
    if not load_ids:
        return 0
    snapshot = lake.snapshot()
    parent_ids = {
        table: _ids(delta, _rows_of_loads(load_ids, None))
        for table, delta in snapshot.tables.items()
        if snapshot.parent(table) is None
    }
    removed = 0
    for table, delta in snapshot.tables.items():
        if table in parent_ids:
            removed += delta.delete(_in("_dlt_load_id", load_ids)).get("num_deleted_rows", 0)
    for table, delta in snapshot.tables.items():
        parent = snapshot.parent(table)
        if parent is not None and parent_ids.get(parent):
            delta.delete(_in("_dlt_parent_id", parent_ids[parent]))
    return removed


def _rows_of_loads(load_ids: list[str] | None, parent: Any | None) -> Any:
    """A filter on a table's rows of the loads (None: every row); a child table's rows are those
    of its parent's rows of the loads."""
    import pyarrow.dataset as ds

    if load_ids is None:
        return None
    if parent is None:
        return ds.field("_dlt_load_id").isin(load_ids)
    return ds.field("_dlt_parent_id").isin(_ids(parent, ds.field("_dlt_load_id").isin(load_ids)))


def _remove_copies(delta: Any, scope: Any) -> int:
    """Replace every row of `scope` whose `_dlt_id` is there more than once by its first copy, in
    one commit. Only the ids are read, and then only the rows of the ids found twice."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    from deltalake import write_deltalake

    ids = delta.to_pyarrow_dataset().to_table(columns=["_dlt_id"], filter=scope)
    counts = ids.group_by("_dlt_id").aggregate([("_dlt_id", "count")])
    doubled = counts.filter(counts.column("_dlt_id_count").to_numpy() > 1).column("_dlt_id").to_pylist()
    if not doubled:
        return 0
    copies = delta.to_pyarrow_dataset().to_table(filter=ds.field("_dlt_id").isin(doubled))
    numbered = copies.append_column("_copy", pa.array(range(copies.num_rows), pa.int64()))
    first = numbered.group_by("_dlt_id").aggregate([("_copy", "min")]).column("_copy_min")
    one_each = copies.take(first)
    write_deltalake(delta, one_each, mode="overwrite", predicate=_in("_dlt_id", doubled))
    return copies.num_rows - one_each.num_rows


def _ids(delta: Any, scope: Any) -> list[str]:
    """The `_dlt_id`s of a table's rows in `scope` (a pyarrow filter)."""
    return delta.to_pyarrow_dataset().to_table(columns=["_dlt_id"], filter=scope).column(0).to_pylist()


def _in(column: str, values: list[str]) -> str:
    """A Delta predicate `column in ('a', 'b')`; dlt's ids and load ids need no more than quoting."""
    return f"{column} in ({', '.join(_literal(v) for v in values)})"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
