"""What a model build must recompute: the polls and the backfills that changed since the last build.

An incremental model declares its scope in its YAML (`incremental: polls` or `incremental:
backfills`) and reads its inputs through the scope tables, `staging.scope_polls` and
`staging.scope_backfills`. The runner then replaces only the rows of the scope: delete them,
insert what the model's SQL returns.

- `scope_polls`: the polls stored after the last good build (`through_poll_id` in
  analytics.model_builds). A poll's rows (its progress rows, its poll row) depend only on what
  was stored up to that poll, so older rows never change.
- `scope_backfills`: the backfills with a raw row (a version, a lookup, a listing event) stored
  after the last good build, those a transfer run stored since may belong to (same transfer,
  data_date in range), and the backfills whose rows run up to "now" (the latest poll): those
  incomplete in the previous build, and those still listed. Each with its first stored poll
  (`FIRST_POLLS`), from which a model may read its rows (`scoped_rows`' third argument).

A full refresh is the same build with everything in scope (no previous build to start from):
`create or replace table` instead of delete and insert, and the same SQL, each `scoped_rows` in
it reading every row (`every_row`: no scope table is made). It happens on
`backfills models --full-refresh`, on a first build, whenever the models' SQL or variables
changed since the last good build (their fingerprint is recorded with each build), and when
more polls are new than the last good build had (the incremental path, made for a few new
polls, costs more than a full refresh over most of the history), and when a transfer's stored
name or source changed (names stand beside ids in most marts; renames are rare).

How a table is replaced is the engine's (`Warehouse.replace_table`, pipelines.engines): DuckDB
creates it anew; on PostgreSQL, where `drop table` would wait for every BI reader holding the
table in an open transaction, its rows are deleted and inserted instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

SCOPES = {  # scope name -> (scope table, key columns)
    "polls": ("staging.scope_polls", ("poll_id",)),
    "backfills": ("staging.scope_backfills", ("team_id", "transfer_backfill_id")),
}
SCOPE_TABLES = {table for table, _ in SCOPES.values()}
# Each backfill's first stored poll (of its versions, lookups and listing events), kept by every
# build. The raw tables are stored in poll order: a run that reads a backfill's rows from there on
# (`scoped_rows`' third argument) lets DuckDB skip the row groups of older polls, where it scanned
# every stored version for the few backfills in scope (at 50 teams' year: 21 M rows a run).
FIRST_POLLS = "staging.backfill_first_polls"
FROM_POLL = "from_poll_id"  # scope_backfills' column: the backfill's first stored poll
_BACKFILL_TABLES = ("backfill_versions", "backfill_lookups", "listing_events")
# The backfills each recent build rewrote: a published copy (pipelines.publish) lagging a few
# builds behind replaces only their rows. Older builds' rows go: a copy further behind is
# copied whole.
SCOPE_LOG = "staging.built_backfills"
SCOPE_LOG_BUILDS = 12


@dataclass(frozen=True)
class Plan:
    """How this build goes: from which poll on, and whether everything is rebuilt."""

    full_refresh: bool
    after_poll_id: int  # the scope holds what was stored after this poll (0: everything)
    fingerprint: str
    reason: str  # why a full refresh, for the build log
    engine: Any = None  # the Warehouse whose DDL the build uses (pipelines.engines); None: Spark's
    models_changed: bool = True  # the SQL differs from the last good build's (or there is none)
    existing: frozenset[str] = frozenset()  # the tables and views found before the build

    @property
    def mode(self) -> str:
        return "full" if self.full_refresh else "incremental"


def fingerprint(models: list[Any]) -> str:
    """Changes when any model's SQL (variables substituted) or its YAML changes."""
    digest = hashlib.sha256()
    for model in models:
        digest.update(f"{model.relation}\n{model.materialized}\n{model.scope}\n{model.sql}\n".encode())
        digest.update(repr(model.doc).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Catalog:
    """The schemas, tables and views a build finds, with their columns: read once per build (one
    query) rather than asked table by table (each such question costs DuckDB a few ms)."""

    schemas: frozenset[str]
    columns: dict[str, frozenset[str]]  # "schema.table" -> its columns

    def __contains__(self, relation: str) -> bool:
        return relation in self.columns


def read_catalog(client: Any, schemas: set[str]) -> Catalog:
    """These schemas as the database has them now (views and tables alike)."""
    marks = ", ".join(["%s"] * len(schemas))
    rows = client.execute_sql(
        "select schema_name, null, null from information_schema.schemata "
        f"where catalog_name = current_database() and schema_name in ({marks}) "
        "union all select table_schema, table_name, column_name from information_schema.columns "
        f"where table_catalog = current_database() and table_schema in ({marks})",
        *sorted(schemas),
        *sorted(schemas),
    )
    columns: dict[str, set[str]] = {}
    for schema, table, column in rows or []:
        if table is not None:
            columns.setdefault(f"{schema}.{table}", set()).add(column)
    found = {schema for schema, table, _ in rows or [] if table is None}
    return Catalog(frozenset(found), {name: frozenset(cols) for name, cols in columns.items()})


def plan(
    client: Any, builds: str, models: list[Any], full_refresh: bool, raw: str, engine: Any, catalog: Catalog
) -> Plan:
    """Decide from the last good build whether this one can be incremental."""
    current = fingerprint(models)
    last = _last_good_build(client, builds, catalog)
    changed = last is None or last[1] != current
    existing = frozenset(catalog.columns)

    def full(reason: str) -> Plan:
        return Plan(True, 0, current, reason, engine, changed, existing)

    if full_refresh:
        return full("asked for")
    if last is None:
        return full("first build")
    through_poll_id, previous = last
    if previous != current:
        return full("the models changed")
    missing = [m.relation for m in models if m.scope and m.relation not in catalog]
    if missing:
        return full(f"{missing[0]} is missing")
    through_poll_id = through_poll_id or 0
    newest = client.execute_sql(f"select coalesce(max(poll_id), 0) from {raw}.polls")[0][0]
    if newest - through_poll_id > through_poll_id:  # builds failed or were skipped for long
        return full("more polls are new than built")  # cheaper whole
    # names stand beside transfer ids in most marts: a rename (rare) rebuilds them all
    if client.execute_sql(f"select count(*) from {raw}.transfers where poll_id > {through_poll_id}")[0][0]:
        return full("transfer names changed")
    return Plan(False, through_poll_id, current, "", engine, changed, existing)


def _last_good_build(client: Any, builds: str, catalog: Catalog) -> tuple[int | None, str | None] | None:
    if "fingerprint" not in catalog.columns.get(builds, ()):  # none yet, or from before incremental builds
        return None
    rows = client.execute_sql(
        f"select through_poll_id, fingerprint from {builds} where outcome = 'ok' "
        "order by finished_at desc limit 1"
    )
    return tuple(rows[0]) if rows else None


def ensure_schema(client: Any, schema: str) -> None:
    """Create `schema` only if it is missing: PostgreSQL checks CREATE on the database before it
    reads `if not exists`, so a loader that owns its schemas, and may create no other, would fail
    on `create schema if not exists` of a schema it already owns."""
    found = client.execute_sql(
        "select count(*) from information_schema.schemata where schema_name = %s "
        "and catalog_name = current_database()",
        schema,
    )
    if not found[0][0]:
        client.execute_sql(f"create schema {schema}")


def table_exists(client: Any, relation: str) -> bool:
    schema, name = relation.split(".")
    return bool(
        client.execute_sql(
            "select count(*) from information_schema.tables where table_schema = %s and table_name = %s",
            schema,
            name,
        )[0][0]
    )


def unchanged_tables(client: Any, models: list[Any], raw: str, plan: Plan) -> set[str]:
    """The tables this incremental build leaves as they are, data tests included: a scoped model
    whose scope is empty (its delete and insert would touch no row), and a table whose inputs did
    not change (no model it reads was rebuilt, no raw table it reads holds a row stored since
    the last build). A run whose teams list nothing rebuilds only what reads the polls. Nothing is
    left alone on a full refresh, nor a table that is missing."""
    if plan.full_refresh:
        return set()
    empty_scopes = {
        scope for scope, (table, _) in SCOPES.items() if not _any_row(client, f"select 1 from {table}")
    }
    raw_read = set().union(*(m.reads_raw for m in models))
    changed = {f"{raw}.{t}" for t in raw_read if _changed_since(client, raw, t, plan.after_poll_id)}
    unchanged: set[str] = set()
    for model in models:  # in build order: what a model reads comes before it
        inputs = model.depends_on | {f"{raw}.{t}" for t in model.reads_raw}
        if model.materialized == "view":  # a view is cheap to create: only its inputs matter
            still = not inputs & changed
        elif model.scope is not None:
            still = model.scope in empty_scopes
        else:
            still = model.relation in plan.existing and not inputs & changed
        if still and model.materialized != "view":
            unchanged.add(model.relation)
        if not still:
            changed.add(model.relation)
    return unchanged


def _any_row(client: Any, select: str) -> bool:
    return bool(client.execute_sql(f"select count(*) from ({select} limit 1) as one")[0][0])


def _changed_since(client: Any, raw: str, table: str, after_poll_id: int) -> bool:
    """Whether raw `table` holds a row stored after poll `after_poll_id`; a child table (`x__y`,
    dlt's rows of a list) changes with its parent."""
    parent = table.split("__")[0]
    return _any_row(client, f"select 1 from {raw}.{parent} where poll_id > {int(after_poll_id)}")


def create_scopes(client: Any, raw: str, plan: Plan, catalog: Catalog) -> None:
    """The scope tables for this build (inside the build's transaction); none on a full refresh,
    whose models read every row (`every_row`). Each backfill's first stored poll is kept first."""
    keep_first_polls(client, raw, plan, catalog)
    if plan.full_refresh:
        return
    for relation, sql in scope_queries(raw, plan):
        plan.engine.replace_table(client, relation, sql)


def keep_first_polls(client: Any, raw: str, plan: Plan, catalog: Catalog) -> None:
    """Add the backfills first stored since the last build to `FIRST_POLLS`; made from every row on
    a full refresh, or when it is missing. Rows are only ever added to the raw tables (or removed,
    with a load that could never finish): a backfill's first poll, once kept, stays a lower bound."""
    if plan.full_refresh or FIRST_POLLS not in catalog:
        plan.engine.replace_table(client, FIRST_POLLS, _first_polls(raw, 0))
        return
    client.execute_sql(
        f"insert into {FIRST_POLLS}\nselect * from (\n{_first_polls(raw, plan.after_poll_id)}\n) as new\n"
        f"where not exists (select 1 from {FIRST_POLLS} as kept where kept.team_id = new.team_id "
        "and kept.transfer_backfill_id = new.transfer_backfill_id)"
    )


def _first_polls(raw: str, after_poll_id: int) -> str:
    """Each backfill's first poll among the raw rows stored after `after_poll_id`."""
    keys = "team_id, transfer_backfill_id"
    stored = "\n    union all\n    ".join(
        f"select {keys}, poll_id from {raw}.{table} where poll_id > {int(after_poll_id)}"
        for table in _BACKFILL_TABLES
    )
    return f"select {keys}, min(poll_id) as first_poll_id from (\n    {stored}\n) as stored\ngroup by {keys}"


def scope_queries(raw: str, plan: Plan) -> list[tuple[str, str]]:
    """(scope table, the SQL of its rows) for this incremental build."""
    after = int(plan.after_poll_id)
    return [
        ("staging.scope_polls", f"select poll_id, team_id from {raw}.polls where poll_id > {after}"),
        (
            "staging.scope_backfills",
            # with each backfill's first stored poll: 0 (every row) if it were not kept
            f"""select changed.team_id, changed.transfer_backfill_id,
            coalesce(kept.first_poll_id, 0) as {FROM_POLL}
        from (select distinct team_id, transfer_backfill_id from (
            select team_id, transfer_backfill_id from {raw}.backfill_versions where poll_id > {after}
            union all
            select team_id, transfer_backfill_id from {raw}.backfill_lookups where poll_id > {after}
            union all
            select team_id, transfer_backfill_id from {raw}.listing_events where poll_id > {after}
            union all
            select team_id, transfer_backfill_id from analytics.backfills where is_incomplete
            union all
            select team_id, transfer_backfill_id from staging.int_listing_stretches
            where unlisted_at_poll_id is null
            union all
            select b.team_id, b.transfer_backfill_id
            from staging.int_backfill_current_state as b
            join (
                select distinct team_id, transfer_id, data_date from {raw}.transfer_runs
                where poll_id > {after}
            ) as r
                on r.team_id = b.team_id and r.transfer_id = b.transfer_id
                and r.data_date between b.range_start_date and b.range_end_date
        ) as stored) as changed
        left join {FIRST_POLLS} as kept
            on kept.team_id = changed.team_id and kept.transfer_backfill_id = changed.transfer_backfill_id""",
        ),
    ]


def log_scope(client: Any, plan: Plan, catalog: Catalog, builds: str) -> None:
    """Keep this build's backfill scope, stamped with its time in `builds` (`now()`: the same
    transaction's), and forget those of all but the last `SCOPE_LOG_BUILDS` good builds."""
    if SCOPE_LOG not in catalog:
        client.execute_sql(
            f"create table {SCOPE_LOG} (built_at timestamp with time zone not null, "
            "team_id bigint not null, transfer_backfill_id bigint not null)"
        )
    if not plan.full_refresh:  # after a full refresh everything is published again
        scope = SCOPES["backfills"][0]
        client.execute_sql(
            f"insert into {SCOPE_LOG} select now(), team_id, transfer_backfill_id from {scope}"
        )
    client.execute_sql(
        f"delete from {SCOPE_LOG} where built_at < (select coalesce(min(finished_at), now()) from "
        f"(select finished_at from {builds} where outcome = 'ok' "
        f"order by finished_at desc limit {SCOPE_LOG_BUILDS}) as kept)"
    )


def scoped_rows(relation: str, scope: str, poll_column: str | None = None) -> str:
    """A select of `relation`'s rows in this build's `scope` (a model's `{{ scoped_rows(..) }}`).
    With `poll_column` (the backfills scope only), the column holding the poll each row was stored
    at or listed in: only rows from each backfill's first stored poll on are read, which lets
    DuckDB skip the older row groups of a table in poll order (it pushes the scope's least first
    poll into the scan). A row before its backfill's first stored poll would be lost: name only a
    column of the raw tables' polls, or of polls a backfill was listed in.

    An inner join, not `exists`: the scope's keys are distinct, and a planner estimates a join's
    size from both sides, where it takes a semi join to keep a fixed share of the rows. A run's
    few backfills are then known to be few, and a larger input joined with them is probed, not
    hashed (backfill_errors hashed every stored report row)."""
    table, keys = SCOPES[scope]
    match = " and ".join(f"in_scope.{k} = scoped.{k}" for k in keys)
    if poll_column is not None:
        match += f" and scoped.{poll_column} >= in_scope.{FROM_POLL}"
    return f"select scoped.* from {relation} as scoped\n    inner join {table} as in_scope on {match}"


def every_row(relation: str) -> str:
    """What `scoped_rows` is on a full refresh. Its scope would hold every key of the raw tables,
    which every model's rows come from, so the join would keep every row: it only cost hashing
    them (at 50 teams' year, 21 M progress rows against 5 M polls), and no scope table is made."""
    return f"select * from {relation}"


def in_scope(scope: str) -> str:
    """The SQL condition that picks a scoped model's rows of this build's scope."""
    table, keys = SCOPES[scope]
    columns = ", ".join(keys)
    return f"({columns}) in (select {columns} from {table})"


def materialize(client: Any, relation: str, sql: str, scope: str, plan: Plan) -> None:
    """Replace the scope's rows of `relation` with what `sql` returns (all of it on a full refresh).

    The new rows are kept in a temporary table for this build's data tests (`new_rows`): they
    check what changed without scanning the history again.
    """
    if plan.full_refresh:
        plan.engine.replace_table(client, relation, plan.engine.clustered(sql, SCOPES[scope][1]))
        return
    condition, new = in_scope(scope), new_rows(relation, plan.engine)
    plan.engine.create_table(client, new, f"select * from (\n{sql}\n) as model where {condition}")
    client.execute_sql(f"delete from {relation} where {condition}")
    client.execute_sql(f"insert into {relation} select * from {new}")  # same SQL: same column order


def new_rows(relation: str, engine: Any) -> str:
    """The temporary table holding the rows this incremental build wrote to `relation`."""
    return engine.temp_relation(f"new_{relation.replace('.', '__')}")
