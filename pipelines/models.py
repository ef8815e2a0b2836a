"""Build the SQL models in `sql/` and run their data tests, through dlt's SQL client.

- `sql/staging/*.sql` become views and `sql/intermediate/*.sql` tables, both in schema `staging`;
  `sql/marts/*.sql` become tables in schema `analytics`, the contract BI tools read.
- The build order comes from the SQL itself: sqlglot's tokenizer finds the `staging.*` /
  `analytics.*` relations each model reads (comments and strings skipped), and the models are
  built in topological order.
- `{{ name }}` in a model is replaced by a variable (`[models]` in `.dlt/config.toml`,
  `MODELS__<NAME>`), e.g. `{{ stall_after_hours }}`, and `{{ scoped_rows(relation, scope) }}`
  by a select of the relation's rows in this build's scope (`backfills` or `polls`:
  incremental.scoped_rows; every row on a full refresh), the one filter every incremental model
  reads its inputs through; `{{ scoped_rows(relation, backfills, poll_id) }}` reads each
  backfill's rows from its first stored poll on (`poll_id`: the column holding the poll each row
  was stored at or listed in).
- The YAML file beside a mart is its data dictionary and declares its data tests (grain,
  not_null, accepted_values, relationships, expressions).
- A model whose YAML says `incremental: polls` or `incremental: backfills` is rebuilt only for
  what changed since the last build (see incremental.py); `full_refresh` rebuilds everything.
- Everything runs in one transaction: a failed build or data test leaves the previous tables
  in place for readers, and raises `ModelError`. On PostgreSQL a table's rows are replaced
  (delete and insert, not drop and create), so that a BI reader in the middle of a query never
  blocks a build, and never sees a half-built state.
- The same SQL runs on DuckDB and PostgreSQL (docs/postgres.md).
- Every build, failed ones included, adds a row to `analytics.model_builds` (a failed build's
  after its rollback), so readers can tell that the tables are stale and since when. A build
  stopped by Ctrl-C or SIGTERM is rolled back and not recorded: it did not fail. Rows older
  than `BUILD_LOG_DAYS` go, so that the log does not grow with every 5-minute run.
"""

from __future__ import annotations

import graphlib
import os
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import sqlglot
import yaml
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import TokenType

from . import incremental, stopping
from .alerts import outbox
from .alerts.settings import AlertSettings
from .engines import Warehouse
from .incremental import Plan
from .supermetrics.columns import RUN_COLUMNS, SWEEP_COLUMNS, TRANSFER_COLUMNS
from .supermetrics.errors import ConfigError, ModelError
from .supermetrics.settings import DATASET_NAME, RUNS, SWEEPS, TRANSFERS


def _sql_dir() -> Path:
    """BACKFILLS_SQL_DIR, else the SQL shipped in the wheel (pipelines/sql), else the checkout's sql/."""
    if "BACKFILLS_SQL_DIR" in os.environ:
        return Path(os.environ["BACKFILLS_SQL_DIR"])
    installed = Path(__file__).resolve().parent / "sql"
    return installed if installed.is_dir() else Path(__file__).resolve().parents[1] / "sql"


SQL_DIR = _sql_dir()
LAYERS = {  # folder -> (schema, materialization)
    "staging": ("staging", "view"),
    "intermediate": ("staging", "table"),
    "marts": ("analytics", "table"),
}
MODEL_VARIABLES = {"stall_after_hours": 2.0}  # [models] in .dlt/config.toml, MODELS__<NAME>
# The thresholds of analytics.alert_events, set under [alerts] (ALERTS__<NAME>) with the rest of
# the alerting: pipelines/alerts.
ALERT_VARIABLES = {
    "running_long_factor": 3.0,
    "polls_failing_after": 3,
    "no_success_minutes": 60,
    "rate_limit_below": 100,
}
DEFAULT_VARIABLES = {**MODEL_VARIABLES, **ALERT_VARIABLES}
_VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_SCOPED_ROWS = re.compile(r"\{\{\s*scoped_rows\(\s*([\w.]+)\s*,\s*(\w+)\s*(?:,\s*(\w+)\s*)?\)\s*\}\}")
_DIALECT = DuckDB()
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Raw tables dlt creates only when they first receive rows; models need them from the start.
_RAW_BOOTSTRAP = (
    "create table if not exists {raw}.backfill_versions__error_report (transfer_run_date date, "
    "error varchar, _dlt_load_id varchar, _dlt_parent_id varchar not null, _dlt_list_idx bigint not null, "
    "_dlt_id varchar not null)"
)
# Tables of the sweep (transfers and runs) that a database from before it, or one whose sweep is
# off, does not have yet: created empty, with dlt's own types, so the models can read them.
_SQL_TYPES = {
    "bigint": "bigint",
    "text": "varchar",
    "timestamp": "timestamp with time zone",
    "double": "double",
    "date": "date",
    "bool": "boolean",
}
_SWEEP_TABLES = {RUNS: RUN_COLUMNS, SWEEPS: SWEEP_COLUMNS, TRANSFERS: TRANSFER_COLUMNS}


def bootstrap_sql(raw: str, existing: Collection[str] = ()) -> list[str]:
    """The statements creating the raw tables the models read that are not among `existing`."""
    statements = {f"{raw}.backfill_versions__error_report": _RAW_BOOTSTRAP.format(raw=raw)}
    for table, columns in _SWEEP_TABLES.items():
        declared = ", ".join(f"{c['name']} {_SQL_TYPES[c['data_type']]}" for c in columns)
        statements[f"{raw}.{table}"] = (
            f"create table if not exists {raw}.{table} ({declared}, "
            "_dlt_load_id varchar not null, _dlt_id varchar not null)"
        )
    return [sql for relation, sql in statements.items() if relation not in existing]


BUILDS = "analytics.model_builds"
BUILD_LOG_DAYS = 30
_BUILDS_TABLE = (
    f"create table if not exists {BUILDS} (started_at timestamptz not null, "
    "finished_at timestamptz not null, outcome varchar not null, error varchar, models bigint, "
    "tests bigint, through_poll_id bigint)"
)
_BUILDS_INSERT = (
    f"insert into {BUILDS} (started_at, finished_at, outcome, error, models, tests, through_poll_id, "
    "mode, fingerprint, tables_written) "
    "values (%s, now(), %s, %s, %s, %s, (select max(poll_id) from {raw}.polls), %s, %s, %s)"
)
# added with incremental builds, then with incremental publishing
_BUILDS_COLUMNS = ("mode varchar", "fingerprint varchar", "tables_written varchar")


@dataclass
class Model:
    name: str
    schema: str
    materialized: str
    sql: str
    doc: dict[str, Any] | None = None
    full_refresh_sql: str = ""  # `sql` with each scoped_rows reading every row (incremental.every_row)
    depends_on: set[str] = field(default_factory=set)
    reads_raw: set[str] = field(default_factory=set)  # the raw tables it reads, by name

    @property
    def scope(self) -> str | None:
        """`polls` or `backfills` for an incremental model (its YAML's `incremental`), else None."""
        return (self.doc or {}).get("incremental")

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class BuildResult:
    models: list[str]
    tests: int
    warnings: list[str]
    seconds: float
    mode: str = "full refresh"  # or "incremental"
    # seconds per step, in build order: each model built (an incremental build leaves unchanged
    # tables alone), then "data tests" (what `make bench` profiles)
    step_seconds: dict[str, float] = field(default_factory=dict)


def variables() -> dict[str, Any]:
    """Model variables: defaults overridden by `[models]` config or MODELS__<NAME> env vars."""
    values: dict[str, Any] = dict(DEFAULT_VARIABLES)
    sections = [("models", MODEL_VARIABLES), ("alerts", ALERT_VARIABLES)]
    for section, defaults in sections:
        for name, default in defaults.items():
            configured = dlt.config.get(f"{section}.{name}")
            if configured is None:
                continue
            try:
                values[name] = type(default)(configured)
                if values[name] < 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{section}.{name} = {configured!r} is not a number of zero or more: set [{section}] "
                    f"{name} in .dlt/config.toml or {section.upper()}__{name.upper()}"
                ) from None
    return values


def discover(sql_dir: Path = SQL_DIR, values: dict[str, Any] | None = None) -> list[Model]:
    """Every model under `sql_dir`, in build order."""
    values = variables() if values is None else values
    models: dict[str, Model] = {}
    if not any(sql_dir.glob("*/*.sql")):  # an install without its SQL must not build nothing in silence
        raise ModelError(
            f"no SQL models in {sql_dir}: the models are missing from this install; "
            "reinstall the package, or point BACKFILLS_SQL_DIR at a folder of models"
        )
    for folder, (schema, materialized) in LAYERS.items():
        for path in sorted((sql_dir / folder).glob("*.sql")):
            doc = _doc(path)
            text = path.read_text()
            sql, full_refresh_sql = (_substitute(text, values, path, full) for full in (False, True))
            model = Model(path.stem, schema, materialized, sql, doc, full_refresh_sql)
            if model.scope is not None and model.scope not in incremental.SCOPES:
                raise ModelError(
                    f"{path.stem}.yml: incremental: {model.scope} is not one of "
                    f"{', '.join(incremental.SCOPES)}"
                )
            models[model.relation] = model
    for model in models.values():
        model.depends_on, model.reads_raw = _dependencies(model, set(models) | incremental.SCOPE_TABLES)
    sorter = graphlib.TopologicalSorter({m.relation: sorted(m.depends_on) for m in models.values()})
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        raise ModelError(f"the models depend on each other in a cycle: {' -> '.join(exc.args[1])}") from None
    return [models[relation] for relation in order]


def table_scopes(sql_dir: Path = SQL_DIR) -> dict[str, str]:
    """The analytics tables that are incremental models, with their scope (`polls`: their rows are
    per poll and never change; `backfills`): from the YAML alone, since each publish asks (parsing
    every model's SQL costs ~30 ms)."""
    marts = next(folder for folder, (schema, _) in LAYERS.items() if schema == "analytics")
    scopes = {path.stem: (_doc(path) or {}).get("incremental") for path in (sql_dir / marts).glob("*.sql")}
    return {table: scope for table, scope in sorted(scopes.items()) if scope is not None}


def _doc(sql_path: Path) -> dict[str, Any] | None:
    """The YAML beside a model's SQL, if there is one."""
    doc_path = sql_path.with_suffix(".yml")
    return yaml.load(doc_path.read_text(), Loader=_YAML_LOADER) if doc_path.exists() else None


def _substitute(sql: str, values: dict[str, Any], path: Path, full_refresh: bool = False) -> str:
    def value(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise ModelError(f"{path.name} uses the unknown variable {match[1]}")
        return str(values[match[1]])

    def scoped_rows(match: re.Match[str]) -> str:
        if match[2] not in incremental.SCOPES:
            raise ModelError(
                f"{path.name}: scoped_rows: {match[2]} is not one of {', '.join(incremental.SCOPES)}"
            )
        if match[3] is not None and match[2] != "backfills":
            raise ModelError(f"{path.name}: scoped_rows: only the backfills scope reads from a first poll")
        if full_refresh:
            return incremental.every_row(match[1])
        return incremental.scoped_rows(match[1], match[2], match[3])

    return _VARIABLE.sub(value, _SCOPED_ROWS.sub(scoped_rows, sql))


def _dependencies(model: Model, known: set[str]) -> tuple[set[str], set[str]]:
    """(the models `model` reads, the raw tables it reads by name)."""
    try:
        tokens = _DIALECT.tokenize(model.sql)
    except sqlglot.errors.TokenError as exc:
        raise ModelError(f"{model.name}.sql does not parse: {str(exc).splitlines()[0]}") from None
    relations = [
        (schema.text.lower(), name.text)
        for schema, dot, name in zip(tokens, tokens[1:], tokens[2:], strict=False)
        if dot.token_type == TokenType.DOT
    ]
    read = {f"{schema}.{name}" for schema, name in relations if schema in ("staging", "analytics")}
    unknown = read - known
    if unknown:
        raise ModelError(f"{model.name}.sql reads {', '.join(sorted(unknown))}, which no model builds")
    raw = {name for schema, name in relations if schema == DATASET_NAME}
    return read - {model.relation} - incremental.SCOPE_TABLES, raw


def build(
    pipeline: dlt.Pipeline,
    raw_dataset: str,
    engine: Warehouse,
    sql_dir: Path = SQL_DIR,
    full_refresh: bool = False,
    alerts: AlertSettings | None = None,
) -> BuildResult:
    """Build every model (incrementally where it can) and run the data tests, atomically.
    Raises `ModelError`.

    The outcome, failed or not, is recorded in `analytics.model_builds`. With `alerts` enabled,
    the events that are new go into the alert outbox in the same transaction (pipelines.alerts).
    """
    started, started_at = time.monotonic(), datetime.now(UTC)
    with pipeline.sql_client() as client:
        try:
            models = discover(sql_dir)
            with client.begin_transaction():
                catalog = incremental.read_catalog(client, {raw_dataset, "staging", "analytics"})
                for statement in bootstrap_sql(raw_dataset, catalog.columns):
                    client.execute_sql(statement)
                plan = incremental.plan(client, BUILDS, models, full_refresh, raw_dataset, engine, catalog)
                for setting in engine.build_settings(plan.full_refresh):
                    client.execute_sql(setting)
                tests, warnings, steps = _build_all(client, models, raw_dataset, plan, catalog)
                if alerts is not None and alerts.enabled:
                    outbox.record(client, alerts)
                written = sorted(r.split(".")[1] for r in steps if r.startswith("analytics."))
                _record(
                    client, raw_dataset, started_at, "ok", None, len(models), tests, plan, catalog, written
                )
                incremental.log_scope(client, plan, catalog, BUILDS)
        except (ModelError, ConfigError) as error:
            if stopping.received():  # cut short by Ctrl-C or SIGTERM: rolled back, not a failed build
                raise stopping.interrupted() from None
            _record_failure(client, raw_dataset, started_at, str(error))
            raise
    mode = "incremental" if not plan.full_refresh else f"full refresh: {plan.reason}"
    return BuildResult([m.relation for m in models], tests, warnings, time.monotonic() - started, mode, steps)


def _build_all(
    client: Any, models: list[Model], raw_dataset: str, plan: Plan, catalog: incremental.Catalog
) -> tuple[int, list[str], dict[str, float]]:
    """Every model in order, then the data tests; returns (checks run, warnings, seconds per step)."""
    steps: dict[str, float] = {}
    for schema in sorted(({m.schema for m in models} | {"staging"}) - catalog.schemas):
        incremental.ensure_schema(client, schema)
    incremental.create_scopes(client, raw_dataset, plan, catalog)
    unchanged = incremental.unchanged_tables(client, models, raw_dataset, plan)
    models = [m for m in models if m.relation not in unchanged]  # nor their data tests
    for model in models:
        started = time.monotonic()
        # a view is read after the build, when its scope is another build's: it reads every row
        sql = model.full_refresh_sql if plan.full_refresh or model.materialized == "view" else model.sql
        try:
            if model.materialized == "view":
                if plan.models_changed or model.relation not in catalog:  # else it is as it was
                    plan.engine.replace_view(client, model.relation, sql)
            elif model.scope is None:
                plan.engine.replace_table(client, model.relation, sql)
            else:
                incremental.materialize(client, model.relation, sql, model.scope, plan)
        except Exception as exc:  # the database's own message says what is wrong with the SQL
            known = plan.engine.known_error(exc) if plan.engine is not None else None
            if isinstance(known, ConfigError):  # out of memory: the settings can fix it
                raise ConfigError(f"building {model.relation} failed: {known}") from None
            raise ModelError(f"building {model.relation} failed: {_first_line(exc)}") from None
        steps[model.relation] = time.monotonic() - started
    started = time.monotonic()
    failures, tests = run_data_tests(client, models, "tests", plan)
    if failures:
        raise ModelError(f"{len(failures)} of {tests} data tests failed: {'; '.join(failures)}")
    warnings, checks = run_data_tests(client, models, "warnings", plan)
    steps["data tests"] = time.monotonic() - started
    return tests + checks, warnings, steps


def _record(
    client: Any,
    raw_dataset: str,
    started_at: datetime,
    outcome: str,
    error: str | None,
    models: int,
    tests: int,
    plan: Plan | None = None,
    catalog: incremental.Catalog | None = None,
    written: list[str] | None = None,
) -> None:
    """`written`: the analytics tables the build wrote (what the next publish must copy)."""
    columns = catalog.columns.get(BUILDS, frozenset()) if catalog is not None else frozenset()
    if not {column.split()[0] for column in _BUILDS_COLUMNS} <= columns:  # a first build, or an old one
        incremental.ensure_schema(client, "analytics")
        client.execute_sql(_BUILDS_TABLE)
        for column in _BUILDS_COLUMNS:
            client.execute_sql(f"alter table {BUILDS} add column if not exists {column}")
    client.execute_sql(  # old rows go, but never the last good build: "stale since" needs it
        f"delete from {BUILDS} where finished_at < now() - interval '{BUILD_LOG_DAYS} days' "
        f"and finished_at < (select max(finished_at) from {BUILDS} where outcome = 'ok')"
    )
    client.execute_sql(
        _BUILDS_INSERT.format(raw=raw_dataset),
        started_at,
        outcome,
        error,
        models,
        tests,
        plan.mode if plan else None,
        plan.fingerprint if plan else None,
        None if written is None else ",".join(written),
    )


def _record_failure(client: Any, raw_dataset: str, started_at: datetime, error: str) -> None:
    """After the build's rollback: say that it failed, so that readers know the tables are stale."""
    try:
        with client.begin_transaction():
            _record(client, raw_dataset, started_at, "failed", error, 0, 0)
    except Exception:  # the build's own error is the one to report
        pass


def run_data_tests(
    client: Any, models: list[Model], section: str, plan: Plan | None = None
) -> tuple[list[str], int]:
    """Run the checks of one YAML section (`tests` or `warnings`); returns (what broke, how many ran).
    An incremental build checks an incremental model's rows of this build's scope only.

    All checks go to the database as one query: a round trip each would cost more than the checks.
    """
    checks = [
        (f"{m.relation}: {description}", sql)
        for m in models
        for description, sql in data_tests(
            m,
            section,
            scoped=plan is not None and not plan.full_refresh,
            engine=plan.engine if plan else None,
        )
    ]
    if not checks:
        return [], 0
    union = "\nunion all\n".join(
        f"select {n} as check_number, ({sql}) as bad" for n, (_, sql) in enumerate(checks)
    )
    rows = client.execute_sql(
        f"select check_number, bad from ({union}) as checks where bad > 0 order by check_number"
    )
    return [f"{checks[n][0]} ({bad} rows)" for n, bad in rows or []], len(checks)


def data_tests(
    model: Model, section: str = "tests", scoped: bool = False, engine: Warehouse | None = None
) -> list[tuple[str, str]]:
    """(description, SQL counting the rows that break it) for each check in a YAML section;
    `scoped`: of the rows this incremental build replaced only."""
    tests = (model.doc or {}).get(section, {})
    relation = model.relation
    if scoped and model.scope is not None and engine is not None:
        relation = incremental.new_rows(model.relation, engine)
    out = []
    grain = tests.get("grain", [])
    if grain:
        cols = ", ".join(grain)
        out.append(
            (
                f"grain ({cols}) is unique",
                f"select count(*) from (select {cols} from {relation} group by {cols} "
                "having count(*) > 1) as keys",
            )
        )
    for column in [*grain, *tests.get("not_null", [])]:
        out.append((f"{column} is not null", f"select count(*) from {relation} where {column} is null"))
    for column, values in tests.get("accepted_values", {}).items():
        listed = ", ".join(f"'{v}'" for v in values)
        out.append(
            (f"{column} in ({listed})", f"select count(*) from {relation} where {column} not in ({listed})")
        )
    for rel in tests.get("relationships", []):
        cols = ", ".join(rel["columns"])
        matches = " and ".join(f"parent.{c} = child.{c}" for c in rel["columns"])
        out.append(
            (
                f"({cols}) exists in {rel['to']}",
                f"select count(*) from {relation} as child "
                f"where not exists (select 1 from {rel['to']} as parent where {matches})",
            )
        )
    for expression in tests.get("expressions", []):
        out.append((f"{expression}", f"select count(*) from {relation} where not ({expression})"))
    return out


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def dictionary_markdown(sql_dir: Path = SQL_DIR) -> str:
    """docs/models.md: the analytics tables and their columns, from the YAML beside each mart."""
    lines = [
        "# The `analytics` schema",
        "",
        "Generated from `sql/marts/*.yml` by `make docs`; do not edit by hand.",
        "Times are UTC `TIMESTAMPTZ`; poll times are the API's clock (its `Date` header).",
        "Where these tables can differ from what really happened, and how a test proves that they",
        "differ nowhere else: docs/ground-truth.md.",
        "",
        "Sources: a column comes from the polls of the incomplete list and the lookups by id (what a",
        "poll saw, to within a poll) unless its description names another: the *runs endpoint*",
        "(exact runs: `backfill_runs`, and the columns that say so in `backfills` and",
        "`transfer_failure_rates`), the *transfer list* (`transfers`, and every `transfer_name`), or",
        "*latest* (`backfills.learnt_from`).",
        "",
    ]
    for model in discover(sql_dir, DEFAULT_VARIABLES):
        if model.schema != "analytics" or model.doc is None:
            continue
        grain = ", ".join(model.doc.get("tests", {}).get("grain", []))
        lines += [
            f"## `analytics.{model.name}`",
            "",
            " ".join(model.doc["description"].split()),
            "",
            f"Grain: one row per ({grain}).",
            "",
            "| column | meaning |",
            "| --- | --- |",
        ]
        lines += [
            f"| `{name}` | {' '.join(str(text).split())} |" for name, text in model.doc["columns"].items()
        ]
        lines.append("")
    return "\n".join(lines + _BUILD_LOG_DOC)


_BUILD_LOG_DOC = [
    f"## `{BUILDS}`",
    "",
    "Not a model: the runner's log of every build, failed ones included (a failed build's row is",
    "written after its rollback, so it is there while the other tables are the last good build's).",
    f"Rows older than {BUILD_LOG_DAYS} days are deleted, except the last good build.",
    "",
    "| column | meaning |",
    "| --- | --- |",
    "| `started_at`, `finished_at` | When the build began and ended, by this machine's clock. |",
    "| `outcome` | 'ok' or 'failed'. |",
    "| `error` | The one-line error of a failed build (the failing data tests, or the model that failed). |",
    "| `models`, `tests` | Models built and data tests run (0 when the build failed). |",
    "| `through_poll_id` | The newest poll in the raw tables at build time. |",
    "| `mode` | 'incremental' (only the polls and backfills that changed) or 'full' (everything). |",
    "| `fingerprint` | A hash of the models' SQL and variables: a change makes the next build full. |",
    "| `tables_written` | The analytics tables this build wrote, comma-separated (the rest it left alone). |",
    "",
]


if __name__ == "__main__":  # make docs
    (SQL_DIR.parent / "docs" / "models.md").write_text(dictionary_markdown())
