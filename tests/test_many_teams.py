"""Many teams in one run: polled at once by a bounded pool, stored exactly as one after another."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from conftest import RAW_TABLES

from pipelines.ingest import ingest
from pipelines.simulator import Simulator, Timing, Workload
from pipelines.supermetrics.client import SupermetricsClient
from pipelines.supermetrics.errors import AuthError

TEAMS = (101, 102, 103, 104, 105)
# what differs between two runs given the same answers: dlt's ids, this machine's clock and the
# per-request headers (the rate-limit budget counts calls in the order they arrive)
VOLATILE = ("_dlt_id", "_dlt_load_id", "_dlt_parent_id", "received_at", "duration_ms", "request_id")


def busy_simulator() -> Simulator:
    workload = Workload(transfers_per_team=4, backfills_per_day=600, cancel_probability=0.2)
    quick = Timing(runs_created_after=(10, 60), pickup_after=(10, 60), run_bounds=(5, 20))  # minutes-long
    return Simulator(
        seed=3,
        speed=0,
        teams=TEAMS,
        workload=workload,
        warmup=timedelta(hours=3),
        timing=quick,
        max_running=4,
    )


def raw_tables(db: Path) -> dict[str, list[tuple]]:
    out = {}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in RAW_TABLES:
            columns = [
                c
                for (c,) in con.execute(
                    "select column_name from information_schema.columns where table_schema = 'supermetrics' "
                    "and table_name = ? order by ordinal_position",
                    [table],
                ).fetchall()
                if c not in (*VOLATILE, "rate_limit_remaining")
            ]
            out[table] = con.execute(
                f"select {', '.join(columns)} from supermetrics.{table} order by all"
            ).fetchall()
    return out


@pytest.mark.slow
def test_teams_polled_at_once_store_what_one_after_another_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", "sim-key")
    for at_once in (1, 4):
        monkeypatch.setenv("SOURCES__SUPERMETRICS__MAX_CONCURRENT_TEAMS", str(at_once))
        with busy_simulator() as sim:
            for _ in range(8):
                ingest(
                    tmp_path / f"{at_once}.duckdb",
                    team_ids=list(TEAMS),
                    base_url=sim.base_url,
                    build_models=False,
                )
                sim.clock.advance(300)
    one_by_one, at_once = raw_tables(tmp_path / "1.duckdb"), raw_tables(tmp_path / "4.duckdb")
    assert len(one_by_one["backfill_versions"]) > 100 and one_by_one["backfill_lookups"], "a busy scenario"
    assert {row[1] for row in one_by_one["polls"]} == set(TEAMS)
    for table in RAW_TABLES:
        assert at_once[table] == one_by_one[table], table


@pytest.mark.parametrize(("at_once", "overlapping"), [(1, {1}), (4, {2, 3, 4})])
def test_the_pool_polls_at_most_that_many_teams_at_the_same_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at_once: int, overlapping: set[int]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", "sim-key")
    monkeypatch.setenv("SOURCES__SUPERMETRICS__MAX_CONCURRENT_TEAMS", str(at_once))
    with Simulator(speed=0, teams=TEAMS) as sim:
        # each list call is held a second on the server: calls under way together overlap there
        sim.faults.add(kind="slow", endpoint="list", slow_seconds=1.0)
        result = ingest(
            tmp_path / "b.duckdb", team_ids=list(TEAMS), base_url=sim.base_url, build_models=False
        )
        assert [t.team_id for t in result.report.teams] == list(TEAMS)  # the summary in team order
        assert sim.most_at_once in overlapping  # never more than the pool (a thread may start late)


def test_a_429_holds_the_other_teams_next_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's limit is per key: a Retry-After one team's call gets makes the others wait too."""
    waits: dict[str, list[float]] = {}
    with Simulator(speed=0, teams=TEAMS[:2]) as sim:
        sim.faults.add(kind="429", endpoint="list", times=1, retry_after=3)
        client = SupermetricsClient(
            sim.base_url,
            sim.api_key,
            sleep=lambda s: waits.setdefault(threading.current_thread().name, []).append(s),
        )

        def poll(team_id: int) -> None:
            client.list_backfills(team_id)

        first = threading.Thread(target=poll, args=(TEAMS[0],), name="first")
        first.start()
        first.join()  # its 429, its wait, its retry
        second = threading.Thread(target=poll, args=(TEAMS[1],), name="second")
        second.start()
        second.join()
    assert waits["first"] == [3]  # the Retry-After, waited by the thread that got it
    [held] = waits["second"]  # the other thread waits out what is left of it before calling
    assert 0 < held <= 3


def test_a_failure_that_stops_the_run_lets_the_teams_under_way_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", "sim-key")
    monkeypatch.setenv("SOURCES__SUPERMETRICS__MAX_CONCURRENT_TEAMS", "2")
    with Simulator(speed=0, teams=TEAMS) as sim:
        sim.faults.add(kind="401", endpoint="list")  # the key is wrong for every team
        with pytest.raises(AuthError) as failed:
            ingest(tmp_path / "b.duckdb", team_ids=list(TEAMS), base_url=sim.base_url, build_models=False)
    report = failed.value.result.report
    polled = [t.team_id for t in report.teams]
    # the first teams started (the pool holds two), the others never did
    assert polled in (list(TEAMS[:1]), list(TEAMS[:2]))
    assert all(t.error is not None for t in report.teams)
    assert report.not_polled == list(TEAMS[len(polled) :])
