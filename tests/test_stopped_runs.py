"""Every state a stopped run can leave in dlt's working folder is finished by the next run.

Each case makes the exact on-disk state of one stop: a real `backfills ingest` killed by SIGKILL
right after one of dlt's moves between its folders (tests/kill_at.py), or, for what only a power
cut leaves (a rename undone, a file emptied), the state written by hand after a clean run. The
next run, as cron would start it, must exit 0 with one warning line at most; in the end every raw
table (and, on a database, every analytics table) equals that of a twin given the same answers by
uninterrupted runs. The list of states and the copy that wins in each: pipelines/working_folder.py.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg2
import pytest
from cli_process import KILL_AT, backfills_env, run_backfills
from conftest import RAW_TABLES
from postgres_server import postgres_database, postgres_server, postgres_url  # noqa: F401 - fixtures
from support import put_last_load_back
from test_chaos import ENV
from test_postgres import CHILD_TABLE, TEAMS, analytics_tables, seeded_simulator, tables

from pipelines.engines import Warehouse, postgres_credentials
from pipelines.ingest import ingest, rebuild_models
from pipelines.lake import bucket_config
from pipelines.simulator import Simulator
from pipelines.supermetrics.settings import DATASET_NAME, PIPELINE_NAME

EXTRACT_COMMIT = "dlt.extract.storage:ExtractStorage.commit_new_load_package"
NORMALIZE_BEGIN = "dlt.common.storages.load_storage:LoadStorage.import_extracted_package"
NORMALIZE_COMMIT = "dlt.common.storages.load_storage:LoadStorage.commit_new_load_package"
JOB_STARTED = "dlt.common.storages.load_package:PackageStorage.start_job"
JOB_COMPLETED = "dlt.common.storages.load_package:PackageStorage.complete_job"
LOAD_COMPLETED = "dlt.common.storages.load_storage:LoadStorage.complete_load_package"
DELTA_COMMIT = "dlt.common.libs.deltalake:write_delta_table"  # a Delta table's commit of a load job
COMPACTED = "deltalake.table:TableOptimizer.compact"
CHECKPOINTED = "deltalake.table:DeltaTable.create_checkpoint"
VACUUMED = "deltalake.table:DeltaTable.vacuum"


@dataclass
class Run:
    """One database under test: the CLI's arguments and environment, and its dlt folder."""

    args: list[str]
    env: dict[str, str]
    cwd: Path
    target: Warehouse

    @property
    def folder(self) -> Path:
        return self.target.working_dir() / PIPELINE_NAME

    def killed_at(self, method: str, **env: str) -> None:
        """`backfills ingest` (with `env` added), SIGKILLed right after dlt's `method` first returns."""
        victim = subprocess.run(
            [sys.executable, KILL_AT, method, "--", *self.args],
            cwd=self.cwd,
            env=backfills_env(**self.env, **env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert victim.returncode == -9, victim.stderr  # it reached the moment

    def clean(self) -> str:
        """A run as cron starts it; returns its stderr."""
        result = run_backfills(*self.args, cwd=self.cwd, **self.env)
        assert result.returncode == 0, result.stderr
        return result.stderr

    def pending(self) -> Path:
        (package,) = (self.folder / "load" / "normalized").iterdir()
        return package


def job_files(package: Path) -> list[Path]:
    return sorted(p for p in package.glob("*_jobs/*") if p.is_file())


# Each state: how to make it, after which the next run must finish it.
def extracted_not_normalized(run: Run) -> None:
    run.killed_at(EXTRACT_COMMIT)


def normalize_begun(run: Run) -> None:
    run.killed_at(NORMALIZE_BEGIN)


def normalized_and_extracted(run: Run) -> None:
    run.killed_at(NORMALIZE_COMMIT)  # the state that made every later run fail in normalize
    package = run.pending()
    assert (run.folder / "normalize" / "extracted" / package.name).is_dir()


def extracted_copy_half_deleted(run: Run) -> None:
    run.killed_at(NORMALIZE_COMMIT)
    extracted = run.folder / "normalize" / "extracted" / run.pending().name
    (extracted / "schema.json").unlink()  # as a kill in the middle of its deletion leaves it
    job_files(extracted)[0].unlink()


def job_started(run: Run) -> None:
    run.killed_at(JOB_STARTED)


def job_completed(run: Run) -> None:
    run.killed_at(JOB_COMPLETED)


def load_completed(run: Run) -> None:
    run.killed_at(LOAD_COMPLETED)


def normalized_and_loaded(run: Run) -> None:
    """A power cut that undid the last rename: the package in both `normalized/` and `loaded/`."""
    run.clean()
    loaded = sorted((run.folder / "load" / "loaded").iterdir())[-1]
    kept = run.cwd / "loaded-copy"
    shutil.copytree(loaded, kept)
    put_last_load_back(run.target.db_path, forget_in_database=False, target=run.target)
    shutil.move(kept, loaded)


def pending_job_cut_short(run: Run) -> None:
    """A power cut after normalize: a job file of the pending package half-written."""
    run.killed_at(NORMALIZE_COMMIT)
    job = job_files(run.pending())[0]
    job.write_bytes(job.read_bytes()[:20])


def restore_snapshot_emptied(run: Run) -> None:
    run.killed_at(NORMALIZE_COMMIT)
    (run.pending() / ".restore" / "state.json").write_text("")


def state_and_schema_emptied(run: Run) -> None:
    """A power cut after a clean run: dlt's own state and schema files written as empty."""
    run.clean()
    for path in [run.folder / "state.json", *(run.folder / "schemas").glob("*.json")]:
        path.write_text("")


def stray_temporary_files(run: Run) -> None:
    """dlt's atomic saves cut between writing their temporary file and renaming it."""
    run.killed_at(NORMALIZE_COMMIT)
    for folder in ("load/normalized", "load/new", "normalize/extracted"):
        (run.folder / folder / "x1y2z3w4").write_text('{"half')


def extracted_package_without_jobs(run: Run) -> None:
    run.killed_at(EXTRACT_COMMIT)
    (package,) = (run.folder / "normalize" / "extracted").iterdir()
    for job in job_files(package):
        job.unlink()


def every_job_fails(run: Run) -> None:
    """A pending package none of whose jobs the database accepts: dropped, nothing half-loaded."""
    run.killed_at(NORMALIZE_COMMIT)
    for job in job_files(run.pending()):
        job.write_bytes(gzip.compress(b"this is not SQL"))


def delta_committed_job_not_done(run: Run) -> None:
    """The Delta commit of a load job made, dlt's record of the job not: dlt appends it again."""
    run.killed_at(DELTA_COMMIT)


COMPACT_NOW = {"LAKE__COMPACT_AFTER_FILES": "1"}  # every table with two files or more


def compaction_committed(run: Run) -> None:
    run.killed_at(COMPACTED, **COMPACT_NOW)  # before its checkpoint and vacuum


def compaction_checkpointed(run: Run) -> None:
    run.killed_at(CHECKPOINTED, **COMPACT_NOW)


def first_table_vacuumed(run: Run) -> None:
    run.killed_at(VACUUMED, **COMPACT_NOW)  # the other tables not compacted yet


DUCKDB_STATES: list[Callable[[Run], None]] = [
    extracted_not_normalized,
    normalize_begun,
    normalized_and_extracted,
    extracted_copy_half_deleted,
    job_started,
    job_completed,
    load_completed,
    normalized_and_loaded,
    pending_job_cut_short,
    restore_snapshot_emptied,
    state_and_schema_emptied,
    stray_temporary_files,
    extracted_package_without_jobs,
    every_job_fails,
]
# where the destination takes part in the repair: rows settled, discarded, or files rewritten
SERVER_STATES = [normalized_and_extracted, job_started, normalized_and_loaded, pending_job_cut_short]
# the bucket's Delta tables: a repeated commit, and compaction (its vacuum keeping no older
# file) stopped at each step
LAKE_STATES = [
    delta_committed_job_not_done,
    compaction_committed,
    compaction_checkpointed,
    first_table_vacuumed,
]


def raw_polls(target: Warehouse) -> int:
    with target.read_lake() if target.engine == "filesystem" else target.connect() as con:
        return con.rows(f"select count(*) from {DATASET_NAME}.polls")[0][0]


def go_through(states: list[Callable[[Run], None]], run: Run, sim: Simulator, twin: Path) -> dict[str, str]:
    """Each state in turn, then the next run; the twin gets one uninterrupted run per run kept.
    Returns what each next run said (stderr), by state."""

    def twin_run() -> None:
        ingest(twin, team_ids=list(TEAMS), base_url=sim.base_url, build_models=False, destination="duckdb")

    run.clean()
    twin_run()
    said = {}
    for make_state in states:
        sim.clock.advance(300)
        before = raw_polls(run.target)
        make_state(run)
        stderr = run.clean()
        warnings = [line for line in stderr.splitlines() if line.startswith("WARNING")]
        assert len(warnings) <= 1 and "Traceback" not in stderr, (make_state.__name__, stderr)
        kept = raw_polls(run.target) - before  # a run stores both teams' polls in one package
        assert kept in (2, 4), (make_state.__name__, kept)
        for _ in range(kept // 2):
            twin_run()
        said[make_state.__name__] = stderr
    rebuild_models(twin, destination="duckdb")
    return said


def assert_equal(con: object, param: str, twin: Path, with_models: bool) -> None:
    raw = [*RAW_TABLES, CHILD_TABLE]
    with duckdb.connect(str(twin), read_only=True) as duck:
        cursor = con.cursor()
        for table in raw:
            cursor.execute(f"select count(*) - count(distinct _dlt_id) from {DATASET_NAME}.{table}")
            assert cursor.fetchone()[0] == 0, f"{table} holds a row twice"
        assert tables(con, DATASET_NAME, raw, param) == tables(duck, DATASET_NAME, raw, "?")
        if with_models:
            marts = analytics_tables(duck, "?")
            assert tables(con, "analytics", marts, param) == tables(duck, "analytics", marts, "?")


def cli_args(sim: Simulator, db: Path) -> list[str]:
    return ["ingest", "--base-url", sim.base_url, "--db", str(db), *[f"--team-id={t}" for t in TEAMS]]


@pytest.mark.timeout(900)  # generous: a loaded machine makes every run slower, never wrong
@pytest.mark.slow
def test_every_stopped_state_is_finished_by_the_next_run_on_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", "sim-key")
    db, twin = tmp_path / "data" / "b.duckdb", tmp_path / "twin" / "b.duckdb"
    with seeded_simulator() as sim:
        env = {**ENV, "SOURCES__SUPERMETRICS__API_KEY": "sim-key"}
        run = Run(cli_args(sim, db), env, tmp_path, Warehouse("duckdb", db))
        go_through(DUCKDB_STATES, run, sim, twin)
    with duckdb.connect(str(db), read_only=True) as con:
        assert_equal(con, "?", twin, with_models=True)
        failed = con.execute("select count(*) from analytics.model_builds where outcome <> 'ok'")
        assert failed.fetchone()[0] == 0


@pytest.mark.timeout(900)
@pytest.mark.slow
def test_every_stopped_state_is_finished_by_the_next_run_on_postgres(
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", "sim-key")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_url)
    db, twin = tmp_path / "data" / "pg", tmp_path / "twin" / "b.duckdb"
    env = {
        **ENV,
        "BACKFILLS_DESTINATION": "postgres",
        "DESTINATION__POSTGRES__CREDENTIALS": postgres_url,
        "SOURCES__SUPERMETRICS__API_KEY": "sim-key",
    }
    with seeded_simulator() as sim:
        run = Run(cli_args(sim, db), env, tmp_path, Warehouse("postgres", db, postgres_credentials()))
        go_through([*SERVER_STATES, every_job_fails], run, sim, twin)
    with psycopg2.connect(postgres_url) as con:
        assert_equal(con, "%s", twin, with_models=True)


@pytest.mark.timeout(900)
@pytest.mark.slow
def test_every_stopped_state_is_finished_by_the_next_run_on_the_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket, db, twin = tmp_path / "bucket", tmp_path / "data" / "b.duckdb", tmp_path / "twin" / "b.duckdb"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", "sim-key")
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(bucket))
    env = {
        **ENV,
        "BACKFILLS_DESTINATION": "filesystem",
        "DESTINATION__FILESYSTEM__BUCKET_URL": str(bucket),
        "SOURCES__SUPERMETRICS__API_KEY": "sim-key",
        "LAKE__RETENTION_HOURS": "0",
    }
    with seeded_simulator() as sim:
        run = Run(cli_args(sim, db), env, tmp_path, Warehouse("filesystem", db, bucket_config()))
        said = go_through([*SERVER_STATES, *LAKE_STATES], run, sim, twin)
    assert "duplicated row(s)" in said["delta_committed_job_not_done"]  # appended twice, settled
    with run.target.read_lake() as lake:
        assert_equal(lake.raw, "?", twin, with_models=False)
