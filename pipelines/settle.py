"""Exactly-once effect for dlt's at-least-once loads: every loaded row counts once.

dlt loads a job at least once. A run killed after a job's insert committed, but before dlt moved
the job's file out of `started_jobs/`, loads that file again on the next run: the same rows, with
the same `_dlt_id`, twice (and a second `_dlt_loads` row when the kill came after the package's
commit). So every run, after loading and before anything reads the raw tables, *settles* the
loads that completed since the last time, in one transaction:

- for each load id in `_dlt_loads` not yet in `_settled_loads`, keep one copy of every row of that
  load (root tables by `_dlt_load_id`, child tables by the `_dlt_load_id` the source copies onto
  them, else through their parent's `_dlt_id`) and one `_dlt_loads` row;
- record the load id in `_settled_loads`.

A kill during this transaction rolls it back and the next run settles again. The work per run is
the rows of the new loads only; a database made before this existed has nothing settled, so its
first run checks (and repairs) all of its history once. A package that dlt loads again although
its load was settled (a power cut can undo dlt's file moves but not a committed transaction) is
passed in as `recheck` and settled again.

A load package that can never load (dlt aborts it) may have loaded some of its jobs: `discard`
removes those rows, so that nothing half-loaded stays behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .engines import Connection

SETTLED = "_settled_loads"


@dataclass
class SettleResult:
    removed: dict[str, int] = field(default_factory=dict)  # table -> extra copies deleted

    def describe(self) -> str:
        tables = ", ".join(f"{table} {count}" for table, count in sorted(self.removed.items()))
        return (
            f"removed {sum(self.removed.values())} duplicated row(s) ({tables}) that a run killed "
            f"during its load had stored twice"
        )


def settle(con: Connection, dataset: str, recheck: list[str] | None = None) -> SettleResult:
    """Settle every completed load not settled yet, and the loads in `recheck` (packages dlt has
    just loaded again). Returns what was removed."""
    result = SettleResult()
    tables, stamped = _dlt_tables(con, dataset)
    if "_dlt_loads" not in tables:
        return result
    ds = _quote(dataset)
    with con.transaction():
        con.run(
            f"create table if not exists {ds}.{SETTLED} (load_id varchar not null, settled_at timestamptz)"
        )
        con.run(
            f"""create temp table unsettled as
            select load_id from {ds}._dlt_loads where load_id not in (select load_id from {ds}.{SETTLED})
            union
            select unnest(%s::varchar[])""",
            recheck or [],
        )
        load_ids = [load_id for (load_id,) in con.rows("select load_id from unsettled")]
        if load_ids:
            # literals, not a subquery: DuckDB then skips the row groups of older loads (zone maps)
            listed = ", ".join("'" + load_id.replace("'", "''") + "'" for load_id in load_ids)
            for child in stamped:
                _stamp_load_ids(con, ds, child, tables[child])
            for table, parent in tables.items():
                removed = _deduplicate(con, ds, table, None if table in stamped else parent, listed)
                if removed and table != "_dlt_loads":  # dlt's bookkeeping: not worth a word
                    result.removed[table] = removed
            con.run(f"delete from {ds}.{SETTLED} where load_id in (select load_id from unsettled)")
            con.run(
                f"insert into {ds}.{SETTLED} select load_id, now() from unsettled "
                f"where load_id in (select load_id from {ds}._dlt_loads)"
            )
        con.run("drop table unsettled")
    return result


def _stamp_load_ids(con: Connection, ds: str, child: str, parent: str) -> None:
    """Give the child rows loaded without a load id (before the source copied it onto them) their
    parent's: once for an older database's history, then only what a package normalized before
    the upgrade brings. DuckDB skips the row groups that hold no null (zone maps)."""
    con.run(
        f"update {ds}.{_quote(child)} as child set _dlt_load_id = (select max(parent._dlt_load_id) from "
        f"{ds}.{_quote(parent)} as parent where parent._dlt_id = child._dlt_parent_id) "
        "where child._dlt_load_id is null"
    )


def _deduplicate(con: Connection, ds: str, table: str, parent: str | None, load_ids: str) -> int:
    """Delete all but one copy of each row of the loads `load_ids` (SQL literals) in one table
    (a child table with its own `_dlt_load_id` is passed as a root table: `parent` None);
    returns how many. A copy is told apart by its physical address (DuckDB's rowid, PostgreSQL's
    ctid)."""
    row_id = con.row_id
    if table == "_dlt_loads":
        key = "load_id"
        rows = f"select {row_id} as row_id, load_id from {ds}._dlt_loads where load_id in ({load_ids})"
    elif parent is None:
        key = "_dlt_id"
        rows = (
            f"select {row_id} as row_id, _dlt_id from {ds}.{_quote(table)} where _dlt_load_id in ({load_ids})"
        )
    else:  # a child table: its rows of a load are those whose parent row belongs to it
        key = "_dlt_id"
        parents = f"select _dlt_id from {ds}.{_quote(parent)} where _dlt_load_id in ({load_ids})"
        rows = (
            f"select {row_id} as row_id, _dlt_id from {ds}.{_quote(table)} "
            f"where _dlt_parent_id in ({parents})"
        )
    if con.rows(f"select count(*) - count(distinct {key}) from ({rows}) as load_rows")[0][0] == 0:
        return 0  # the usual case: a cheap count, and no delete that would scan the whole table
    extra = f"""
        select row_id from (
            select row_id, row_number() over (partition by {key} order by row_id) as copy from ({rows}) as r
        ) as numbered where copy > 1"""
    return con.run(f"delete from {ds}.{_quote(table)} where {row_id} in ({extra})")


def discard(con: Connection, dataset: str, load_ids: list[str]) -> int:
    """Delete every row of these (aborted) loads; returns how many root rows went."""
    if not load_ids:
        return 0
    ds, removed = _quote(dataset), 0
    tables, _ = _dlt_tables(con, dataset)
    with con.transaction():
        for table, parent in tables.items():  # children first: they find their rows through the parent
            if parent is not None:
                con.run(
                    f"delete from {ds}.{_quote(table)} where _dlt_parent_id in (select _dlt_id from "
                    f"{ds}.{_quote(parent)} where _dlt_load_id in (select unnest(%s::varchar[])))",
                    load_ids,
                )
        for table, parent in tables.items():
            if parent is None and table != "_dlt_loads":
                removed += con.run(
                    f"delete from {ds}.{_quote(table)} where _dlt_load_id in (select unnest(%s::varchar[]))",
                    load_ids,
                )
    return removed


def _dlt_tables(con: Connection, dataset: str) -> tuple[dict[str, str | None], list[str]]:
    """The dataset's tables holding loaded rows: table -> its parent for child tables (else None),
    children first, plus `_dlt_loads`; and the child tables that hold their rows' load id."""
    columns: dict[str, set[str]] = {}
    for table, column in con.rows(
        "select table_name, column_name from information_schema.columns where table_schema = %s", dataset
    ):
        columns.setdefault(table, set()).add(column)
    tables: dict[str, str | None] = {}
    for table in sorted(columns, key=lambda t: -t.count("__")):
        if "_dlt_parent_id" in columns[table] and "_dlt_id" in columns[table]:
            tables[table] = table.rsplit("__", 1)[0]
        elif "_dlt_load_id" in columns[table] and "_dlt_id" in columns[table]:
            tables[table] = None
    if "_dlt_loads" in columns:
        tables["_dlt_loads"] = None
    stamped = [t for t, parent in tables.items() if parent is not None and "_dlt_load_id" in columns[t]]
    return tables, stamped


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
