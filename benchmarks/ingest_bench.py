"""Per-poll ingest cost, history growth, memory and API efficiency, each beside baselines.

All against the local simulator over HTTP on 127.0.0.1, in this process (warm imports), so that
the numbers compare the work per poll rather than interpreter start-up, which is measured apart.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pandas as pd
import requests
from dlt.sources.rest_api import rest_api_source

from pipelines.ingest import ingest
from pipelines.models import discover
from pipelines.simulator import DEFAULT_TEAM_ID, Simulator

from .history import generate
from .models_bench import slowest

TEAM = DEFAULT_TEAM_ID
POLLS = 15
THROWAWAY_POSTGRES = Path(__file__).resolve().parents[1] / "scripts" / "throwaway-postgres"
ON_POSTGRES = "this pipeline on PostgreSQL (poll, diff, lookups, load, models)"


def payload_simulator(backfills: int, errors_each: int) -> Simulator:
    """`backfills` FAILED backfills with `errors_each` errors each, all listed and unchanging."""
    sim = Simulator(speed=0).start()
    for n in range(backfills):
        transfer = sim.world.add_transfer(TEAM, failure_rate=1.0, median_run_seconds=5).id
        day = (sim.clock.now() - timedelta(days=1)).date()
        sim.world.create(TEAM, transfer, day - timedelta(days=max(errors_each, 1) - 1), day, 789)
        sim.clock.advance(1 + 0 * n)
    sim.clock.advance(3600 * 6)  # every run done and failed: FAILED, listed, unchanging
    sim.world.sync()
    return sim


# -- the four ways of ingesting one poll -------------------------------------------------------


def ours(sim: Simulator, work: Path) -> Callable[[], None]:
    os.environ["SOURCES__SUPERMETRICS__API_KEY"] = sim.api_key
    return lambda: ingest(work / "ours.duckdb", team_ids=[TEAM], base_url=sim.base_url)


def ours_on_postgres(server_url: str) -> Callable[[Simulator, Path], Callable[[], None]]:
    """The same run into a new database of the server (nothing to publish there: BI tools read
    its analytics schema)."""

    def make(sim: Simulator, work: Path) -> Callable[[], None]:
        import psycopg2

        name = f"bench_{uuid.uuid4().hex[:8]}"
        admin = psycopg2.connect(server_url)
        admin.autocommit = True
        admin.cursor().execute(f"create database {name}")
        admin.close()
        os.environ["SOURCES__SUPERMETRICS__API_KEY"] = sim.api_key
        os.environ["DESTINATION__POSTGRES__CREDENTIALS"] = server_url.rsplit("/", 1)[0] + "/" + name
        return lambda: ingest(work / "pg", team_ids=[TEAM], base_url=sim.base_url, destination="postgres")

    return make


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    """A PostgreSQL server for the benchmark (scripts/throwaway-postgres, as the tests start one),
    or None where it cannot start: the PostgreSQL row then says it was not measured."""
    folder = tempfile.mkdtemp(prefix="bench-pg-")
    started = subprocess.run([THROWAWAY_POSTGRES, "start", folder], capture_output=True, text=True)
    try:
        yield started.stdout.strip() if started.returncode == 0 else None
    finally:
        subprocess.run([THROWAWAY_POSTGRES, "stop", folder], capture_output=True)


def ours_ingest_only(sim: Simulator, work: Path) -> Callable[[], None]:
    os.environ["SOURCES__SUPERMETRICS__API_KEY"] = sim.api_key
    return lambda: ingest(work / "ours.duckdb", team_ids=[TEAM], base_url=sim.base_url, build_models=False)


def duckdb_floor(sim: Simulator, work: Path) -> Callable[[], None]:
    """The floor: fetch the JSON and append it to two DuckDB tables, nothing else."""
    con = duckdb.connect(str(work / "floor.duckdb"))
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sim.api_key}"
    url = f"{sim.base_url}/teams/{TEAM}/backfills"
    path = work / "poll.json"

    def run() -> None:
        content = session.get(url, timeout=30).content
        if not json.loads(content)["data"]:
            return  # nothing to insert (DuckDB cannot infer columns from an empty list either)
        path.write_bytes(content)
        source = f"(select unnest(data, max_depth := 2) from read_json('{path}'))"
        if not _has_table(con, "backfills"):
            con.execute(f"create table backfills as select * exclude (error_report) from {source} limit 0")
            con.execute(
                "create table errors as select transfer_backfill_id, "
                f"unnest(error_report, recursive := true) from {source} limit 0"
            )
        con.execute(f"insert into backfills select * exclude (error_report) from {source}")
        con.execute(
            f"insert into errors select transfer_backfill_id, unnest(error_report, recursive := true) "
            f"from {source}"
        )

    return run


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return (
        con.execute("select count(*) from duckdb_tables() where table_name = ?", [name]).fetchall()[0][0] > 0
    )


def pandas_script(sim: Simulator, work: Path) -> Callable[[], None]:
    """What a user might write: json_normalize, append per poll."""
    con = duckdb.connect(str(work / "pandas.duckdb"))
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sim.api_key}"
    url = f"{sim.base_url}/teams/{TEAM}/backfills"

    def run() -> None:
        data = session.get(url, timeout=30).json()["data"]
        backfills = pd.json_normalize(data).drop(columns=["error_report"], errors="ignore")
        errors = pd.json_normalize(data, record_path="error_report", meta=["transfer_backfill_id"])
        for name, frame in (("backfills", backfills), ("errors", errors)):
            if frame.empty:
                continue
            exists = _has_table(con, name)
            con.register("frame", frame)
            con.execute(
                f"insert into {name} by name select * from frame"
                if exists
                else f"create table {name} as select * from frame"
            )
            con.unregister("frame")

    return run


def dlt_rest_api(sim: Simulator, work: Path) -> Callable[[], None]:
    """dlt's generic rest_api source, append: every poll loads every backfill and error again."""
    pipeline = dlt.pipeline(
        "rest_api_baseline",
        destination=dlt.destinations.duckdb(str(work / "rest.duckdb")),
        dataset_name="raw",
        pipelines_dir=str(work / ".rest_dlt"),
    )
    config = {
        "client": {
            "base_url": sim.base_url + "/",
            "auth": {"type": "bearer", "token": sim.api_key},
            "paginator": "single_page",
        },
        "resource_defaults": {"write_disposition": "append"},
        "resources": [
            {"name": "backfills", "endpoint": {"path": f"teams/{TEAM}/backfills", "data_selector": "data"}}
        ],
    }
    return lambda: pipeline.run(rest_api_source(config))


APPROACHES = {
    "this pipeline (poll, diff, lookups, load, models, publish)": ours,
    "this pipeline, ingest only (no models, no publish)": ours_ingest_only,
    "floor: fetch + DuckDB insert": duckdb_floor,
    "pandas json_normalize + append": pandas_script,
    "dlt rest_api source, append": dlt_rest_api,
}


def per_poll(work: Path, postgres_url: str | None = None) -> dict[str, dict[str, float]]:
    """Median seconds per poll for an empty list and for 100 backfills carrying 1,000 errors.

    The approaches take turns, poll after poll, so that the machine's drift touches them alike.
    With `postgres_url` (a server's superuser URL) this pipeline on PostgreSQL takes its turns too.
    """
    approaches = dict(APPROACHES)
    if postgres_url:
        approaches = {next(iter(APPROACHES)): ours, ON_POSTGRES: ours_on_postgres(postgres_url), **APPROACHES}
    results: dict[str, dict[str, float]] = {name: {} for name in approaches}
    for label, (backfills, errors_each) in {"empty": (0, 0), "full": (100, 10)}.items():
        sim = payload_simulator(backfills, errors_each)
        try:
            runs = {}
            for number, (name, make) in enumerate(approaches.items()):
                folder = work / label / f"approach-{number}"
                folder.mkdir(parents=True, exist_ok=True)
                runs[name] = make(sim, folder)
                runs[name]()  # warm: tables created, the first (all new) load done
            samples: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(POLLS):
                for name, run in runs.items():
                    started = time.perf_counter()
                    run()
                    samples[name].append(time.perf_counter() - started)
            for name, times in samples.items():
                results[name][label] = statistics.median(times)
        finally:
            sim.stop()
    return results


_REST_API_PROCESS = """
import sys
import dlt
from dlt.sources.rest_api import rest_api_source
base_url, key, team, db, pipelines_dir = sys.argv[1:]
pipeline = dlt.pipeline("rest_api_baseline", destination=dlt.destinations.duckdb(db), dataset_name="raw",
                        pipelines_dir=pipelines_dir)
client = {"base_url": base_url + "/", "auth": {"type": "bearer", "token": key}, "paginator": "single_page"}
endpoint = {"path": f"teams/{team}/backfills", "data_selector": "data"}
pipeline.run(rest_api_source({
    "client": client,
    "resource_defaults": {"write_disposition": "append"},
    "resources": [{"name": "backfills", "endpoint": endpoint}],
}))
"""
WHOLE_PROCESS_TURNS = 7


def whole_process(work: Path) -> dict[str, float]:
    """Median wall seconds of one whole process per unchanged poll of 100 backfills carrying 1,000
    errors, taking turns: `backfills ingest` as cron runs it (imports, poll, load, build, publish)
    and a script running dlt's rest_api pipeline with append."""
    sim = payload_simulator(100, 10)
    folder = work / "whole-process"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        env = {**os.environ, "SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
        commands = {
            "backfills ingest": [
                str(Path(sys.executable).with_name("backfills")),
                *(
                    "ingest",
                    "--team-id",
                    str(TEAM),
                    "--base-url",
                    sim.base_url,
                    "--db",
                    str(folder / "ours.duckdb"),
                ),
            ],
            "dlt rest_api script": [
                sys.executable,
                "-c",
                _REST_API_PROCESS,
                *(
                    sim.base_url,
                    sim.api_key,
                    str(TEAM),
                    str(folder / "rest.duckdb"),
                    str(folder / ".rest_dlt"),
                ),
            ],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for turn in range(WHOLE_PROCESS_TURNS + 1):
            for name, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, env=env, cwd=folder, check=True, capture_output=True)
                if turn:  # the first turn creates the tables
                    samples[name].append(time.perf_counter() - started)
        return {name: statistics.median(times) for name, times in samples.items()}
    finally:
        sim.stop()


def start_up() -> dict[str, float]:
    """Interpreter start-up plus imports: paid once per cron run by every approach."""

    def wall(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    return {
        "python + duckdb": min(wall("import duckdb") for _ in range(3)),
        "python + dlt": min(wall("import dlt") for _ in range(3)),
        "python + this pipeline's CLI": min(wall("import pipelines.cli") for _ in range(3)),
    }


# -- history growth ------------------------------------------------------------------------------


def _one_failed_backfill_with_500_errors() -> Simulator:
    """A started simulator whose team holds one FAILED backfill with 500 errors: an unchanged state."""
    sim = Simulator(speed=0).start()
    transfer = sim.world.add_transfer(TEAM, failure_rate=1.0, median_run_seconds=5).id
    day = (sim.clock.now() - timedelta(days=1)).date()
    sim.world.create(TEAM, transfer, day - timedelta(days=499), day, 789)
    sim.clock.advance(500 * 20)
    sim.world.sync()
    os.environ["SOURCES__SUPERMETRICS__API_KEY"] = sim.api_key
    return sim


WARM_UP_RUNS = 5  # the first runs' first rewrites of each small table take blocks once


def history_growth(work: Path, polls: int = 1000, per_run: int = 37) -> dict[str, float]:  # 1 + 27 x 37
    """Database bytes per unchanged poll: a FAILED backfill with 500 errors among others. Measured
    from a steady state: the first runs take new blocks once (the first rewrite of each small
    table), which is no cost per poll."""
    sim = _one_failed_backfill_with_500_errors()
    try:
        ours_db = work / "growth" / "ours.duckdb"

        def runs(count: int) -> None:
            for _ in range(count):
                ingest(
                    ours_db,
                    team_ids=[TEAM],
                    base_url=sim.base_url,
                    rounds=per_run,
                    between_rounds=lambda: sim.clock.advance(300),
                )

        ingest(ours_db, team_ids=[TEAM], base_url=sim.base_url)
        runs(WARM_UP_RUNS)
        first = _checkpointed_size(ours_db)
        runs((polls - 1) // per_run)
        after = _checkpointed_size(ours_db)
        done_polls = 1 + ((polls - 1) // per_run) * per_run
        append_db = work / "growth" / "append.duckdb"
        append = duckdb_floor(sim, append_db.parent)
        append()
        append_first = _checkpointed_size(append_db.with_name("floor.duckdb"))
        for _ in range(done_polls - 1):
            append()
        append_after = _checkpointed_size(append_db.with_name("floor.duckdb"))
    finally:
        sim.stop()
    return {
        "polls": done_polls,
        "ours_bytes_per_poll": (after - first) / (done_polls - 1),
        "append_bytes_per_poll": (append_after - append_first) / (done_polls - 1),
        "ours_total": after,
        "append_total": append_after,
    }


def cron_growth(work: Path, runs: int = 400) -> dict[str, float]:
    """Database bytes per unchanged poll when every poll is its own run, as from cron: each run also
    adds its bookkeeping (dlt's `_dlt_loads` row, a `_settled_loads` row, an `analytics.model_builds`
    row). DuckDB grows in whole blocks, so the resolution is one block / runs."""
    sim = _one_failed_backfill_with_500_errors()
    try:
        db = work / "cron-growth" / "ours.duckdb"
        for _ in range(2 + WARM_UP_RUNS):  # the first run creates the tables; then a steady state
            ingest(db, team_ids=[TEAM], base_url=sim.base_url)
        first = _checkpointed_size(db)
        for _ in range(runs):
            sim.clock.advance(300)
            ingest(db, team_ids=[TEAM], base_url=sim.base_url)
        after = _checkpointed_size(db)
        with duckdb.connect(str(db)) as con:
            block = con.execute("select block_size from pragma_database_size()").fetchone()[0]
    finally:
        sim.stop()
    return {"runs": runs, "bytes_per_poll": (after - first) / runs, "resolution": block / runs}


def _checkpointed_size(db_path: Path) -> int:
    with duckdb.connect(str(db_path)) as con:
        con.execute("checkpoint")
        blocks = con.execute("select used_blocks, block_size from pragma_database_size()").fetchone()
    return blocks[0] * blocks[1]


# -- memory --------------------------------------------------------------------------------------


_PEAK_RSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
_INGEST_ONLY = """
import sys; from pathlib import Path; from pipelines.ingest import ingest
ingest(Path(sys.argv[1]), team_ids=[int(sys.argv[2])], base_url=sys.argv[3], build_models=False)
"""


def peak_memory(work: Path) -> dict[str, float]:
    """Peak RSS (MiB) of one ingest process over an empty history and over a generated year:
    `backfills ingest` as cron runs it, and the ingest alone (no model rebuild)."""
    sim = Simulator(speed=0).start()
    try:
        transfer = sim.world.add_transfer(TEAM).id
        day = (sim.clock.now() - timedelta(days=1)).date()
        sim.world.create(TEAM, transfer, day - timedelta(days=29), day, 789)
        env = {**os.environ, "SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
        cli = [str(Path(sys.executable).with_name("backfills")), "ingest", "--team-id", str(TEAM)]

        def peak(db: Path, ingest_only: bool) -> float:
            if ingest_only:
                command = [sys.executable, "-c", _INGEST_ONLY, str(db), str(TEAM), sim.base_url]
            else:
                command = [*cli, "--base-url", sim.base_url, "--db", str(db)]
            run = subprocess.run(
                [sys.executable, "-c", _PEAK_RSS, *command],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=work,
            )
            return int(run.stdout.split()[-1]) / 1024

        empty, year = work / "memory" / "empty.duckdb", work / "memory" / "year.duckdb"
        for _ in range(2):  # the published file's two copies are each made once
            peak(empty, ingest_only=False)
        generate(year)
        peak(year, ingest_only=False)  # the first run after generating builds every model once
        peak(year, ingest_only=False)  # and the second makes the other published copy
        return {
            "empty": peak(empty, False),
            "year": peak(year, False),
            "empty_ingest_only": peak(empty, True),
            "year_ingest_only": peak(year, True),
        }
    finally:
        sim.stop()


# -- API efficiency ------------------------------------------------------------------------------


def api_efficiency(work: Path) -> list[dict[str, int]]:
    """Requests per run for a range of teams, listed and departed backfills, each backfill on a
    transfer of its own: the list and lookups, and the sweep (on here) against its budget."""
    rows = []
    sweep = os.environ.pop("SOURCES__SUPERMETRICS__SWEEP", None)
    for teams, listed, leaving in ((1, 0, 0), (1, 100, 0), (1, 100, 10), (3, 30, 3), (1, 100, 100)):
        team_ids = [TEAM + n for n in range(teams)]
        sim = Simulator(speed=0, teams=team_ids).start()
        try:
            os.environ["SOURCES__SUPERMETRICS__API_KEY"] = sim.api_key
            ids = {}
            for team in team_ids:
                for n in range(listed):
                    transfer = sim.world.add_transfer(team).id
                    day = (sim.clock.now() - timedelta(days=n + 1)).date()
                    ids.setdefault(team, []).append(sim.world.create(team, transfer, day, day, 789).id)
            db = work / "api" / f"{teams}-{listed}-{leaving}.duckdb"
            ingest(db, team_ids=team_ids, base_url=sim.base_url, build_models=False)
            for team in team_ids:
                for backfill_id in ids.get(team, [])[:leaving]:
                    sim.world.cancel(team, backfill_id, 789)
            report = ingest(db, team_ids=team_ids, base_url=sim.base_url, build_models=False).report
        finally:
            sim.stop()
        swept = sum(team.sweep_requests for team in report.teams)
        rows.append(
            {
                "teams": teams,
                "listed": listed * teams,
                "left": leaving * teams,
                "requests": report.requests - swept,
                "target": teams + leaving * teams,
                "sweep": swept,
                "budget": report.sweep_budget * teams,
            }
        )
    if sweep is not None:
        os.environ["SOURCES__SUPERMETRICS__SWEEP"] = sweep
    return rows


PROFILED_RUNS = 9


def run_profile(work: Path) -> dict[str, dict[str, Any]]:
    """Where a warm run's time goes, for the empty list and the full poll: median milliseconds of
    the build and of the publish (each run's own figures), the rest of the run, and the build's
    slowest steps in the median run."""
    profiles = {}
    for label, (backfills, errors_each) in {"empty list": (0, 0), "full poll": (100, 10)}.items():
        sim = payload_simulator(backfills, errors_each)
        try:
            folder = work / "profile" / label.replace(" ", "-")
            folder.mkdir(parents=True, exist_ok=True)
            run_once = ours(sim, folder)
            run_once()  # tables created, the first (all new) load done
            results = sorted((run_once() for _ in range(PROFILED_RUNS)), key=lambda r: r.seconds)
        finally:
            sim.stop()
        median = results[len(results) // 2]
        profiles[label] = {
            "whole": statistics.median(r.seconds for r in results) * 1000,
            "build": statistics.median(r.built.seconds for r in results) * 1000,
            "publish": statistics.median(r.published.seconds for r in results) * 1000,
            "steps": median.built.step_seconds,
        }
    return profiles


def _profile_lines(profiles: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        f"Where a warm run of this pipeline spends its time (median of {PROFILED_RUNS} runs, as the run "
        "reports it):",
        "",
    ]
    for label, p in profiles.items():
        rest = p["whole"] - p["build"] - p["publish"]
        lines.append(
            f"- {label}: {p['whole']:.0f} ms: the rest of the run (poll, load, HTML page) "
            f"{rest:.0f} ms, build "
            f"{p['build']:.0f} ms ({len(p['steps']) - 1} of {len(discover())} models built; slowest: "
            f"{slowest(p['steps'], 4)}), publish {p['publish']:.0f} ms"
        )
    return lines


def run(work: Path) -> dict:
    with throwaway_postgres() as postgres_url:
        polls = per_poll(work, postgres_url)
    return {
        "profile": run_profile(work),
        "per_poll": polls,
        "start_up": start_up(),
        "whole_process": whole_process(work),
        "growth": history_growth(work),
        "cron_growth": cron_growth(work),
        "memory": peak_memory(work),
        "api": api_efficiency(work),
    }


def _postgres_line(per_poll_results: dict[str, dict[str, float]], on_duckdb: float) -> str:
    times = per_poll_results.get(ON_POSTGRES)
    if times is None:
        return "PostgreSQL: not measured (scripts/throwaway-postgres could not start a server here)."
    return (
        f"PostgreSQL (a throwaway server on 127.0.0.1, the same run without a copy to publish): "
        f"{times['empty'] * 1000:.0f} ms fixed, {times['full'] * 1000:.0f} ms the full poll, "
        f"{times['full'] / on_duckdb:.2f}x the same run on DuckDB."
    )


def report(result: dict) -> list[str]:
    per_poll_results = result["per_poll"]
    rest = per_poll_results["dlt rest_api source, append"]
    lines = [
        "## Per-poll ingest, end to end",
        "",
        f"Median of {POLLS} polls each, warm process, simulator over HTTP on 127.0.0.1. 'Fixed' is a poll "
        "of an empty list; 'per row' is (full - fixed) / 1,100 rows, for 100 listed backfills carrying "
        "1,000 error entries. This pipeline also diffs against the stored history, looks up departed "
        "backfills, builds the models (incrementally) with their data tests and publishes the BI copy "
        "in that time.",
        "",
        "| approach | fixed per run | full poll | per row | full poll vs dlt rest_api |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, times in per_poll_results.items():
        per_row = (times["full"] - times["empty"]) / 1100 * 1e6
        lines.append(
            f"| {name} | {times['empty'] * 1000:.0f} ms | {times['full'] * 1000:.0f} ms | "
            f"{per_row:.0f} µs | {times['full'] / rest['full']:.2f}x |"
        )
    full = per_poll_results[next(iter(APPROACHES))]["full"]
    ingest_only = per_poll_results["this pipeline, ingest only (no models, no publish)"]["full"]
    ratio = full / rest["full"]
    lines += [
        "",
        f"Target: at most 1.2x the dlt rest_api append pipeline: {'met' if ratio <= 1.2 else 'MISSED'} "
        f"({ratio:.2f}x).",
        "",
        _postgres_line(per_poll_results, full),
        "",
        f"The ingest itself (HTTP, validation, change detection against the stored history, dlt's load) "
        f"takes {ingest_only * 1000:.0f} ms, {ingest_only / rest['full']:.2f}x the rest_api pipeline "
        "although it stores only what changed; building the models with their data tests and publishing "
        f"the BI copy add {(full - ingest_only) * 1000:.0f} ms.",
        "",
        *_profile_lines(result["profile"]),
        "",
        "Most of the build is fixed per-run cost, not per-row work: planning some 60 statements over "
        "small tables, a few milliseconds each. An unchanged poll still changes every listed backfill "
        "(`last_seen_at`, its durations and stall flag run up to the latest poll, a progress row per "
        "poll), so the models of the backfills still listed are rebuilt in every run; a run whose teams "
        "list nothing rebuilds only what reads the polls. Tried and kept: tables whose scope is empty "
        "or whose inputs did not change are left alone with their data tests (an empty list's build "
        "270 ms -> 160 ms), the tables published by poll read from the models' YAML alone (-30 ms), one "
        "catalog read per build and per publish instead of some thirty questions, what exists (raw "
        "tables, unchanged views, the build log's columns) left alone (78 -> 59 statements a build), "
        "and a publish that copies only what the builds since the spare copy's last publish wrote "
        "(by backfill where the model is). "
        "Measured, not adopted: sqlglot's tokenizer finding each model's inputs costs about 25 ms a run "
        "(its compiled build, sqlglotc, 5 ms, but its import costs 40 ms more); a regular expression "
        "would be cheaper, but would have to know SQL's comments and quoting to be right about a user's "
        "models. Not adopted: reading durations up to the latest poll at query time instead of "
        "storing them, which would let an unchanged poll skip the build, but changes what the tables "
        "hold; building and publishing every few runs only, which leaves BI tools that many polls "
        "behind. The build and publish stay in every run: the tables BI tools read are as fresh as "
        "the last poll, and that is the product. The HTML page is about 70-100 ms of the rest of "
        "the run (14 queries of the copy, and its rendering).",
        "",
        "Start-up of a fresh process (paid once per cron run, best of 3):",
        "",
    ]
    lines += [f"- {name}: {seconds:.2f} s" for name, seconds in result["start_up"].items()]
    whole = result["whole_process"]
    ours, rest_process = whole["backfills ingest"], whole["dlt rest_api script"]
    lines += [
        "",
        f"Whole processes side by side, one unchanged poll of the same 100 backfills (median of "
        f"{WHOLE_PROCESS_TURNS} turns): `backfills ingest` {ours:.2f} s, a script running dlt's "
        f"rest_api pipeline {rest_process:.2f} s: {ours / rest_process:.2f}x. Target at most 1.0x: "
        f"{'met' if ours <= rest_process else 'MISSED'}. Both pay Python and dlt's imports; "
        "`backfills ingest` also opens the database for the baseline, settles the load, builds the "
        "models and publishes, each a few hundred milliseconds of fixed cost. Profiled once "
        "(2026-12-07, one such process under cProfile, 4.7 s): imports 2.1 s, of which dlt's own "
        "modules 0.7 s and sqlglot's, which dlt imports too, 0.3 s, and dlt read the entry points of "
        "every installed distribution for its plugins (the CLI skips that since, measured after "
        "the run above: 0.1-0.3 s less a process); dlt's extract, normalize and load 0.9 s, "
        "of which it spends about 0.35 s resolving the destination's configuration, 24 times; the "
        "build and publish 1.2 s; the rest (baseline, settling, the HTML page) 0.4 s. The same "
        "process without the package's compiled bytecode (`PYTHONDONTWRITEBYTECODE`, as on some CI "
        "images) pays about 0.2 s more.",
    ]
    growth = result["growth"]
    lines += [
        "",
        "## History growth",
        "",
        f"{growth['polls']} polls through the real ingest path of an unchanged state: a FAILED backfill "
        "with 500 errors. Database bytes after a checkpoint (DuckDB's used blocks).",
        "",
        "| approach | bytes added per unchanged poll | database after all polls | ratio |",
        "| --- | --- | --- | --- |",
        f"| this pipeline (change-only) | {growth['ours_bytes_per_poll']:,.0f} B | "
        f"{growth['ours_total'] / 2**20:.1f} MiB "
        f"| {growth['ours_bytes_per_poll'] / max(growth['append_bytes_per_poll'], 1):.3f}x |",
        f"| append every poll (baseline) | {growth['append_bytes_per_poll']:,.0f} B | "
        f"{growth['append_total'] / 2**20:.1f} MiB | 1x |",
        "",
        f"Measured from a steady state ({WARM_UP_RUNS} runs in): DuckDB grows in 256 KiB blocks "
        f"(resolution {256 * 1024 / (growth['polls'] - 1):,.0f} B a poll), and the first runs take "
        "new blocks once, as each small table is first rewritten (0.5-0.75 MiB; they were counted "
        "as growth per poll before 2026-12-07); a negative figure is a block the file gave back "
        "(a checkpoint that freed more than the polls took). Target at most 1 KB per unchanged poll: "
        f"{'met' if growth['ours_bytes_per_poll'] <= 1024 else 'MISSED'}.",
    ]
    cron = result["cron_growth"]
    lines += [
        "",
        f"As cron runs it, one poll per run ({cron['runs']} runs, each settling its load and recording its "
        "model build, the cost of the exactly-once guarantee and of the staleness record): "
        f"{cron['bytes_per_poll']:,.0f} B per unchanged poll (DuckDB grows in 256 KiB blocks: resolution "
        f"{cron['resolution']:,.0f} B). Target at most 1 KB: "
        f"{'met' if cron['bytes_per_poll'] <= 1024 else 'MISSED'}.",
    ]
    memory = result["memory"]
    ratio = memory["year"] / memory["empty"]
    ingest_ratio = memory["year_ingest_only"] / memory["empty_ingest_only"]
    lines += [
        "",
        "## Peak memory of one ingest",
        "",
        "| history | `backfills ingest` (with the model rebuild) | the ingest alone |",
        "| --- | --- | --- |",
        f"| empty | {memory['empty']:.0f} MiB | {memory['empty_ingest_only']:.0f} MiB |",
        f"| a generated year (2.1 million versions) | {memory['year']:.0f} MiB | "
        f"{memory['year_ingest_only']:.0f} MiB |",
        f"| ratio | {ratio:.2f}x | {ingest_ratio:.2f}x |",
        "",
        f"Target: within 10%: {'met' if ratio <= 1.1 else 'MISSED'} for the whole command, "
        f"{'met' if ingest_ratio <= 1.1 else 'MISSED'} for the ingest alone.",
        "",
        "What grows: the ingest alone read every version of the history at each run until this "
        "release (its check whether a CANCELLED backfill may still move asked it of every backfill ever "
        "looked up, twice, and the error reports of the latest versions came through a join that hashed "
        "every report ever stored): 1.53x on 2026-12-06 before the change; and its duplicate check of "
        "the load's error-report rows read the parent id of every report row ever stored (175,000 over "
        "the year, +19 MiB; the rows now carry their load id, which zone maps skip to): 1.24x on "
        "2026-12-07 before that change. What remains there is the read of the latest versions of the "
        "listed backfills (about 16 MiB at a year, spread over its dozen queries; joins in place of "
        "their semi joins changed nothing there) and DuckDB's cache of the larger file's metadata. "
        "The build added, until 2026-12-07, a hash of every stored report row (backfill_errors: DuckDB "
        "took a semi join with the run's scope to keep a fifth of the versions, and hashed the report rows "
        "as the smaller side, +28 MiB at a year) and the status of every version (alert_events, +15 MiB): "
        "1.33x before those changes, measured side by side with them. The scope is now an inner join, "
        "whose size DuckDB estimates from both sides, and alert_events reads the state that began each "
        "final stretch from a table built per backfill. What remains in the build is a few MiB per "
        "model that reads every poll or backfill (daily_activity, error_summary, the data tests). "
        "DuckDB's cache is bounded by `[duckdb] memory_limit` (256MB by default, "
        "which one team's year does not reach; it keeps 50 teams' year at about 400 MiB where it was "
        "500-530 MiB, see 'Many teams over a year'); a lower limit does not help here (64MB: 261 "
        "against 271 MiB, in process). "
        "Measured once on 50 teams' year (2026-12-06): runs capped at 256MB, 128MB and 64MB took the same "
        "time (6.1-7.3 s) and peaked at 569, 454 and 414 MiB. The default stays 256MB: what needs more "
        "than 128MB at larger sizes is not measured (too little is exit 78, naming the setting).",
    ]
    lines += [
        "",
        "## API efficiency",
        "",
        "The second of two runs (the first learnt the transfers); each backfill on a transfer of its own.",
        "",
        "| teams | listed | left the list | list + lookups | teams + left | sweep | sweep budget |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['teams']} | {r['listed']} | {r['left']} | {r['requests']} | {r['target']} | {r['sweep']} "
        f"| {r['budget']} |"
        for r in result["api"]
    ]
    met = all(r["requests"] == r["target"] for r in result["api"])
    within = all(r["sweep"] <= r["budget"] for r in result["api"])
    lines += [
        "",
        "Target: list and lookups per run = teams + backfills that left the list: "
        f"{'met' if met else 'MISSED'}; "
        f"the sweep (transfers, latest, runs) within max_sweep_requests per team: "
        f"{'met' if within else 'MISSED'}. The other measures on this page run with the sweep off, "
        "like their baselines, which make one list call.",
    ]
    return lines


if __name__ == "__main__":  # quick look: python -m benchmarks.ingest_bench
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(Path(tmp)), indent=2, default=str))
