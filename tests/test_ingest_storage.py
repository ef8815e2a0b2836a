"""History grows with what changed, not with how often we looked."""

from __future__ import annotations

import duckdb
import pytest
from conftest import TEAM, Api, Warehouse, add_transfer, days_ago

from pipelines.ingest import ingest, working_dir
from pipelines.simulator import Simulator
from pipelines.working_folder import KEEP_LOADED

RUNS, POLLS_PER_RUN = 10, 20  # many polls in one run store what separate runs store (test_ingest_rounds)
UNCHANGED_POLLS = RUNS * POLLS_PER_RUN


def used_bytes(db: object) -> int:
    """DuckDB's used blocks after a checkpoint. Not the file's size: a build rewrites the rows of
    running backfills, and the blocks that frees stay in the file for the next build to reuse."""
    with duckdb.connect(str(db)) as con:
        con.execute("checkpoint")
        _, _, block_size, _, used_blocks, *_ = con.execute("pragma database_size").fetchone()
    return block_size * used_blocks


@pytest.mark.slow
def test_unchanged_polls_of_a_failed_backfill_with_500_errors_add_almost_nothing(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    api.create(add_transfer(sim, failure_rate=1.0, run_seconds=5), days_ago(500), days_ago(1))
    sim.clock.advance(130 + 500 * 15)  # 500 runs of 5 s, 10 s apart: FAILED with 500 errors
    [failed] = api.listing()
    assert (failed["status"], len(failed["error_report"])) == ("FAILED", 500)

    def runs() -> int:  # each run pays its own bookkeeping: dlt's load, settling, the build log
        for _ in range(RUNS):
            sim.clock.advance(300)
            ingest(
                warehouse.db_path,
                team_ids=[TEAM],
                base_url=sim.base_url,
                rounds=POLLS_PER_RUN,
                between_rounds=lambda: sim.clock.advance(300),
            )
        return used_bytes(warehouse.db_path)

    warehouse.ingest()
    warehouse.ingest()  # the first run creates the tables
    # measure from a steady state: the first builds' rewrites of each small table take new blocks
    # once (a one-time 0.75-1.25 MiB here, whatever the number of polls)
    size_before = runs()
    size_after = runs()

    loaded = working_dir(warehouse.db_path) / "supermetrics_backfills" / "load" / "loaded"
    # dlt's finished packages do not pile up: those kept at the last run's start, and its own
    assert len(list(loaded.iterdir())) == KEEP_LOADED + 1
    assert warehouse.count("polls") == 2 * UNCHANGED_POLLS + 2
    assert warehouse.count("backfill_versions") == 1
    assert warehouse.count("backfill_versions__error_report") == 500  # not 402 x 500
    # 200 x 500 error rows would be megabytes; what is added is the poll log and dlt's load
    # bookkeeping, well under 2 KB a poll (DuckDB grows its file in 256 KiB blocks)
    growth = size_after - size_before
    assert growth <= 512 * 1024, f"grew {growth} bytes over {UNCHANGED_POLLS} unchanged polls"
    assert warehouse.rows(
        f"select count(*) from supermetrics.polls where team_id = {TEAM} and outcome = 'ok'"
    ) == [(2 * UNCHANGED_POLLS + 2,)]
