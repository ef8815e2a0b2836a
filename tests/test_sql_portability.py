"""The models' SQL ports to the warehouses dlt loads into: every model transpiles with sqlglot to
BigQuery, Snowflake, Databricks, Spark and Trino, and the only constructs sqlglot cannot carry
over are the known ones the docs/postgres.md lists under "Scaling out: BigQuery and Snowflake" (each with
what a port does instead)."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from pipelines.models import DEFAULT_VARIABLES, discover

WAREHOUSES = ("bigquery", "snowflake", "databricks", "spark", "trino")
# (warehouse, the start of sqlglot's message) -> what a port does; docs/postgres.md says the same
KNOWN_GAPS = {
    ("bigquery", "'NULLS LAST' translation not supported in window function"): (
        "drop NULLS LAST from the running max/sum windows: their keys (poll ids) are never null"
    ),
    ("bigquery", "Argument 'modifiers' is not supported for expression 'RegexpReplace'"): (
        "drop the 'g' flag of regexp_replace: BigQuery replaces every match anyway"
    ),
}
# DuckDB-only constructs that sqlglot copies through as they are instead of flagging them
PASSED_THROUGH = ("ASOF ", "SEMI JOIN", "ANTI JOIN", "POSITIONAL JOIN", "TO_SECONDS(", "EPOCH(")
MODELS = discover(values=DEFAULT_VARIABLES)


def unsupported(sql: str, warehouse: str) -> list[str]:
    """sqlglot's messages for what it cannot express in `warehouse` (none: it ports as is)."""
    try:
        ported = sqlglot.transpile(
            sql,
            read="duckdb",
            write=warehouse,
            unsupported_level=sqlglot.ErrorLevel.RAISE,
            max_unsupported=100,
        )
    except sqlglot.errors.UnsupportedError as error:
        return sorted({m.strip() for m in str(error).split("\n\n") if m.strip() and not m.startswith("...")})
    text = " ".join(ported).upper()
    return [f"{construct.strip()} is DuckDB's own" for construct in PASSED_THROUGH if construct in text]


def gap(warehouse: str, message: str) -> tuple[str, str] | None:
    return next((k for k in KNOWN_GAPS if k[0] == warehouse and message.startswith(k[1])), None)


@pytest.mark.parametrize("warehouse", WAREHOUSES)
@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_every_model_transpiles_with_only_the_known_gaps(model, warehouse: str) -> None:
    unknown = [m for m in unsupported(model.sql, warehouse) if gap(warehouse, m) is None]
    assert not unknown, f"{model.name}.sql does not port to {warehouse}: {unknown}"


def test_the_known_gaps_are_still_there() -> None:
    """A gap that no model meets any more must leave the list (and docs/postgres.md)."""
    met = {gap(w, m) for model in MODELS for w in WAREHOUSES for m in unsupported(model.sql, w)}
    assert met == set(KNOWN_GAPS)


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_duckdb_only_constructs_are_caught(warehouse: str) -> None:
    """The check can fail: constructs the models used before they ran on PostgreSQL too."""
    for sql in (
        "select * from a asof join b on a.k = b.k and a.t >= b.t",
        "select * from a semi join b using (k)",
        "select to_seconds(5)",
    ):
        assert unsupported(sql, warehouse), sql


def halves_rounded_per_engine(sql: str) -> list[str]:
    """Where the engines round an exact half differently: PostgreSQL's round() of a double and its
    cast of a double to an integer round half to even, DuckDB's cast of a double too, while
    DuckDB's round(), PostgreSQL's numeric casts and Spark round half up. So `floor(x + 0.5)`
    or `floor(x)` first, never a bare round() or a cast of a fraction to an integer."""
    found = []
    for tree in sqlglot.parse(sql, read="duckdb"):
        for node in tree.find_all(exp.Round):
            if node.args.get("decimals") is None:
                found.append(node.sql("duckdb"))
        for node in tree.find_all(exp.Cast):
            if node.to.is_type(*exp.DataType.INTEGER_TYPES) and isinstance(node.this, (exp.Extract, exp.Div)):
                found.append(node.sql("duckdb"))
    return found


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_every_engine_rounds_the_same(model) -> None:
    assert not halves_rounded_per_engine(model.sql), f"{model.name}.sql rounds a half per engine"


def test_a_half_rounded_per_engine_is_caught() -> None:
    assert halves_rounded_per_engine(
        "select round(a / 60.0), cast(extract(epoch from b) as bigint), "
        "cast(extract(epoch from b) / 60 as bigint), cast(x / 2 as int)"
    ) == [
        "ROUND(a / 60.0)",
        "CAST(EXTRACT(EPOCH FROM b) AS BIGINT)",
        "CAST(EXTRACT(EPOCH FROM b) / 60 AS BIGINT)",
        "CAST(x / 2 AS INT)",
    ]
    assert (
        halves_rounded_per_engine("select round(a, 2), cast(floor(a + 0.5) as bigint), cast(n as int)") == []
    )
