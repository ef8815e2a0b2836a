"""The models' SQL for Spark: sqlglot's DuckDB -> Spark transpile, and the few rewrites it lacks.

The models are written once, in SQL that DuckDB and PostgreSQL both run. sqlglot turns that into
Spark SQL; what it gets wrong or cannot express is rewritten here, on the parsed tree, so that
no model needs a Spark twin:

- `schema.table` -> `schema__table`: the Spark build registers every table as a temporary view
  (no metastore needed, on one machine or a cluster).
- `timezone('UTC', x)` -> `cast(x as timestamp)`: the session's time zone is UTC, so Spark's
  timestamp is DuckDB's `timestamptz`, and a date cut from it is the UTC date.
- `extract(epoch from b - a)` -> `(unix_micros(b) - unix_micros(a)) / 1e6`: Spark cannot take
  the epoch of an interval (nor, before 4.0, of a timestamp).
- `percentile_cont(p) within group (order by x)` -> `percentile(x, p)`: exact, as in DuckDB and
  PostgreSQL (sqlglot writes `percentile_approx`, which is not).
- `generate_series(a, b[, step]) as s(x)` in FROM -> `lateral view explode(...) s as x`, empty
  when a > b (Spark's `sequence` would count down).
- `with x as [not] materialized (...)` -> `with x as (...)`: a hint to DuckDB and PostgreSQL
  that Spark's grammar lacks (its planner inlines a CTE anyway).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

SCHEMAS = ("supermetrics", "staging", "analytics")


def view_name(relation: str) -> str:
    """`analytics.backfills` -> `analytics__backfills`: the name of its temporary view."""
    return relation.replace(".", "__")


def to_spark(sql: str) -> str:
    """One statement of the models' SQL (DuckDB's dialect) as Spark SQL."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    tree = tree.transform(_rewrite)  # a rewritten node's own subtree is not visited again: so
    for table in tree.find_all(exp.Table):  # the tables in a separate pass
        if table.db and table.db.lower() in SCHEMAS:
            table.set("this", exp.to_identifier(f"{table.db}__{table.name}"))
            table.set("db", None)
    for select in list(tree.find_all(exp.Select)):
        _series_to_lateral_views(select)
    return tree.sql(dialect="spark")


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and node.name.lower() == "timezone":
        zone, value = node.expressions
        if zone.is_string and zone.name.upper() == "UTC":
            return exp.cast(value, exp.DataType.build("timestamp", dialect="spark"))
    if isinstance(node, exp.Extract) and node.name.upper() == "EPOCH":
        return _epoch_seconds(node.expression)
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        node.set("materialized", None)
        return node
    if isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileCont):
        (ordered,) = node.expression.expressions
        return exp.Anonymous(this="percentile", expressions=[ordered.this, node.this.this])
    return node


def _epoch_seconds(value: exp.Expression) -> exp.Expression:
    value = value.unnest()
    if isinstance(value, exp.Sub):
        micros = exp.Sub(this=_micros(value.this), expression=_micros(value.expression))
    else:
        micros = _micros(value)
    return exp.Paren(this=exp.Div(this=exp.Paren(this=micros), expression=exp.Literal.number("1e6")))


def _micros(value: exp.Expression) -> exp.Expression:
    timestamp = exp.cast(value.unnest(), exp.DataType.build("timestamp", dialect="spark"))
    return exp.Anonymous(this="unix_micros", expressions=[timestamp])


def _series_to_lateral_views(select: exp.Select) -> None:
    for join in list(select.args.get("joins") or []):
        series = join.this.this if isinstance(join.this, exp.Table) else None
        if not isinstance(series, exp.GenerateSeries):
            continue
        alias = join.this.args["alias"]
        start, end, step = series.args["start"], series.args["end"], series.args.get("step")
        sequence = exp.Anonymous(this="sequence", expressions=[start, end] + ([step] if step else []))
        ascending = exp.LTE(this=start.copy(), expression=end.copy())
        guarded = exp.Case(ifs=[exp.If(this=ascending, true=sequence)])
        lateral = exp.Lateral(
            this=exp.Explode(this=guarded),
            view=True,
            alias=exp.TableAlias(this=alias.this, columns=alias.columns),
        )
        join.pop()
        select.append("laterals", lateral)
