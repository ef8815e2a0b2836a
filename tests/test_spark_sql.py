"""The rewrites that turn the models' SQL into Spark SQL (pipelines/spark_sql.py), as text.

What they compute is proven by the equality test (tests/test_lake.py), which runs every model on
Spark; these say which Spark construct each DuckDB one becomes, one at a time, without a JVM.
"""

from __future__ import annotations

import sqlglot

from pipelines import models
from pipelines.spark_sql import to_spark, view_name


def spark(sql: str) -> str:
    return to_spark(sql).lower()


def test_tables_become_temporary_views_even_inside_rewritten_expressions() -> None:
    sql = (
        "select extract(epoch from p.polled_at - (select min(polled_at) from analytics.polls)) "
        "from analytics.polls as p join staging.scope_polls using (poll_id)"
    )
    out = spark(sql)
    assert "analytics.polls" not in out and "staging.scope_polls" not in out
    assert out.count("analytics__polls") == 2 and "staging__scope_polls" in out
    assert view_name("analytics.backfills") == "analytics__backfills"


def test_epoch_of_a_difference_is_a_difference_of_microseconds() -> None:
    out = spark("select extract(epoch from b - a) as s, extract(epoch from a) as t from x")
    assert "extract" not in out
    assert "unix_micros(cast(b as timestamp)) - unix_micros(cast(a as timestamp))" in out
    assert out.count("/ 1e6") == 2


def test_utc_conversions_rely_on_the_sessions_utc_zone() -> None:
    out = spark("select cast(timezone('UTC', observed_at) as date) from x")
    assert "timezone" not in out and "cast(cast(observed_at as timestamp) as date)" in out


def test_percentiles_stay_exact() -> None:
    out = spark("select percentile_cont(0.95) within group (order by d) from x")
    assert "percentile(d, 0.95)" in out and "approx" not in out


def test_a_series_in_from_is_an_exploded_sequence_empty_when_it_counts_down() -> None:
    out = spark("select s.poll_id from t, generate_series(t.a, t.b - 1) as s (poll_id)")
    assert "generate_series" not in out
    assert (
        "lateral view explode(case when t.a <= t.b - 1 then sequence(t.a, t.b - 1) end) s as poll_id" in out
    )


def test_a_hint_not_to_materialize_a_cte_is_dropped() -> None:
    out = spark("with v as not materialized (select a from t) select * from v, v as w")
    assert "materialized" not in out and out.startswith("with v as (select a from t)")


def test_every_model_transpiles_and_parses_as_spark() -> None:
    for model in models.discover(values=models.DEFAULT_VARIABLES):
        sqlglot.parse_one(to_spark(model.sql), read="spark")
