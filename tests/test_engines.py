"""The engines package is the only place that knows which engine is in use: the orchestration
asks the interface (pipelines/engines/base.py), and an engine refuses what it cannot do once, in
the words users see. Behaviour per engine is proven by the equality, chaos and CLI tests of each
(tests/test_postgres.py, tests/test_lake.py, and the DuckDB suite)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines.engines import ENGINES, Warehouse
from pipelines.supermetrics.errors import ConfigError

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
# asking which engine: a name compared, or an is_<engine> flag
ASKS_WHICH = re.compile(
    r"""\bis_(duckdb|postgres|lake)\b|\.engine\s*[!=]=|(configured_engine|\bengine)\([^)]*\)\s*[!=]=|"""
    r"""[!=]=\s*["'](duckdb|postgres|filesystem)["']"""
)


def test_no_module_outside_the_engines_package_asks_which_engine() -> None:
    asking = [
        f"{path.relative_to(PIPELINES.parent)}:{number}: {line.strip()}"
        for path in sorted(PIPELINES.rglob("*.py"))
        if "engines" not in path.relative_to(PIPELINES).parts and "simulator" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ASKS_WHICH.search(line)
    ]
    assert not asking, "\n".join(asking)


def test_the_guard_sees_the_ways_of_asking() -> None:
    for line in (
        "if target.is_lake:",
        'if target.engine == "postgres":',
        'x = engine != "duckdb"',
        'if configured_engine(d) == "postgres":',
    ):
        assert ASKS_WHICH.search(line), line
    assert not ASKS_WHICH.search(
        'if model_engine == "spark" or not target.builds_in_run:'
    )  # not a destination


def test_every_engine_is_made_by_its_name_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    assert set(ENGINES) == {"duckdb", "postgres", "filesystem"}
    for name, cls in ENGINES.items():
        made = Warehouse(name, tmp_path / "b.duckdb", SimpleNamespace(bucket_url="file:///tmp/x"))
        assert type(made) is cls and made.engine == name
    with pytest.raises(ConfigError, match="'bigquery' is not one of"):
        Warehouse("bigquery", tmp_path / "b.duckdb")


def test_each_engine_refuses_what_it_cannot_do_in_the_words_users_see(tmp_path: Path) -> None:
    lake = Warehouse("filesystem", tmp_path / "b.duckdb", SimpleNamespace(bucket_url="s3://bucket/raw"))
    for capability, words in (
        ("alerts", "alerts need a database (duckdb or postgres)"),
        ("sql_models", "the models of s3://bucket/raw are built by Spark"),
        ("read", "holds the raw history as Delta tables, not the analytics tables"),
    ):
        with pytest.raises(ConfigError, match=re.escape(words)):
            lake.require(capability)
    lake.require("spark")
    duck = Warehouse("duckdb", tmp_path / "b.duckdb")
    for capability in ("alerts", "sql_models", "read"):
        duck.require(capability)
    with pytest.raises(
        ConfigError, match='the destination is duckdb: set .backfills. destination = "filesystem"'
    ):
        duck.require("spark")
