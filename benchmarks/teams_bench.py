"""Many teams over a year: one `backfills ingest` run, as cron starts it, for 1, 10 and 50 teams
with 20 active backfills each, over a generated year of their history and over an empty one.

The history (benchmarks/history.py) gives every team a year of 5-minute polls with a few
backfills listed at a time, each changing at every poll; it ends with all of them finished, so
that the real polls afterwards find only what the simulator lists. The simulator lists 20
running backfills per team. After generating, the full build of every model with its publish is
measured (taking turns with a copy of the raw versions, its floor); the first runs after it see
the active backfills and make the second published copy (setup, not measured); then each
measured run is one more poll of every team: the whole process's wall time and peak memory
(RSS), median of a few runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipelines.ingest import rebuild_models
from pipelines.simulator import DEFAULT_TEAM_ID, Simulator

from .history import generate
from .ingest_bench import _PEAK_RSS
from .models_bench import raw_copy_seconds, slowest

TEAMS = (1, 10, 50)
ACTIVE = 20  # backfills listed per team at the time of the measured runs
HISTORY_CONCURRENT = 4  # backfills listed per team at a time over the generated year
SETUP_RUNS = 3  # first sight of the active backfills, first full publish, the second copy made
MEASURED_RUNS = 3
TARGET_SECONDS, TARGET_MIB = 10.0, 500.0
TARGET_FULL_BUILD_SECONDS = 60.0  # the most teams' full build: what a model change costs a cron run
FULL_BUILD_TURNS = 3  # the full build's median of 3, each beside a copy of the raw versions (its floor)


def _simulator(team_ids: list[int]) -> Simulator:
    """`ACTIVE` running backfills per team, each of 60 days (a run a day): listed all along."""
    sim = Simulator(speed=0, teams=team_ids).start()
    for team in team_ids:
        for n in range(ACTIVE):  # one transfer each: a transfer's active backfills may not overlap
            transfer = sim.world.add_transfer(team, failure_rate=0.1, median_run_seconds=600).id
            last = (sim.clock.now() - timedelta(days=1 + n)).date()
            sim.world.create(team, transfer, last - timedelta(days=59), last, 789)
    sim.clock.advance(900)  # under way
    return sim


def _run(db: Path, sim: Simulator, team_ids: list[int], work: Path) -> tuple[float, float]:
    """One `backfills ingest` process: (wall seconds, peak RSS MiB)."""
    env = {
        **os.environ,
        "SOURCES__SUPERMETRICS__API_KEY": sim.api_key,
        "SOURCES__SUPERMETRICS__TEAM_IDS": str(team_ids),
    }
    command = [str(Path(sys.executable).with_name("backfills")), "ingest", "--base-url", sim.base_url]
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *command, "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
        cwd=work,
    )
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"backfills ingest failed: {run.stderr.strip().splitlines()[-1:]}")
    sim.clock.advance(300)
    return seconds, int(run.stdout.split()[-1]) / 1024


def measure(work: Path, teams: int, polls: int) -> dict[str, Any]:
    team_ids = [DEFAULT_TEAM_ID + n for n in range(teams)]
    folder = work / f"teams-{teams}"
    folder.mkdir(parents=True, exist_ok=True)
    year, empty = folder / "year.duckdb", folder / "empty.duckdb"
    counts = generate(year, polls=polls, concurrent=HISTORY_CONCURRENT, teams=teams, finished_only=True)
    turns = []
    for _ in range(FULL_BUILD_TURNS):  # taking turns with the floor: the machine's drift weighs on both
        started = time.perf_counter()
        built, published = rebuild_models(year, full_refresh=True)
        turns.append((time.perf_counter() - started, raw_copy_seconds(year, 1), built, published))
    full_build, _, built, published = sorted(turns, key=lambda turn: turn[0])[len(turns) // 2]
    floor = statistics.median(turn[1] for turn in turns)
    sim = _simulator(team_ids)
    try:
        result: dict[str, Any] = {"versions": counts["backfill_versions"], "polls": counts["polls"]}
        for name, db in (("year", year), ("empty", empty)):
            for _ in range(SETUP_RUNS):
                _run(db, sim, team_ids, folder)
            samples = [_run(db, sim, team_ids, folder) for _ in range(MEASURED_RUNS)]
            result[f"{name}_seconds"] = statistics.median(s for s, _ in samples)
            result[f"{name}_mib"] = statistics.median(m for _, m in samples)
    finally:
        sim.stop()
    result["full_build"] = full_build
    result["floor"] = floor
    result["full_build_steps"] = built.step_seconds
    result["full_publish"] = published.seconds if published is not None else 0.0
    result["size_mib"] = year.stat().st_size / 2**20
    return result


def run(work: Path, polls: int = 365 * 288) -> dict[int, dict[str, Any]]:
    return {teams: measure(work, teams, polls) for teams in TEAMS}


def report(results: dict[int, dict[str, Any]]) -> list[str]:
    lines = [
        "## Many teams over a year",
        "",
        "One `backfills ingest` process as cron starts it (the poll of every team, "
        f"{ACTIVE} running backfills each, their load, the incremental build and the publish), median of "
        f"{MEASURED_RUNS} runs, over a generated year of the teams' history (5-minute polls, "
        f"{HISTORY_CONCURRENT} backfills listed at a time per team, each changing at every poll) and "
        "over an empty history (same run). Teams are polled 4 at a time (`max_concurrent_teams`).",
        "",
        "| teams | history: polls, versions (database) | wall, a year | wall, empty | ratio "
        "| peak memory, a year | peak memory, empty | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for teams, r in results.items():
        lines.append(
            f"| {teams} | {r['polls']:,.0f}, {r['versions']:,.0f} ({r['size_mib']:,.0f} MiB) "
            f"| {r['year_seconds']:.2f} s | {r['empty_seconds']:.2f} s "
            f"| {r['year_seconds'] / r['empty_seconds']:.2f}x "
            f"| {r['year_mib']:.0f} MiB | {r['empty_mib']:.0f} MiB | {r['year_mib'] / r['empty_mib']:.2f}x |"
        )
    most = results[max(results)]
    met = most["year_seconds"] < TARGET_SECONDS and most["year_mib"] < TARGET_MIB
    lines += [
        "",
        f"Target for {max(results)} teams over a year: one run under {TARGET_SECONDS:.0f} s and "
        f"{TARGET_MIB:.0f} MiB: {'met' if met else 'MISSED'} ({most['year_seconds']:.1f} s, "
        f"{most['year_mib']:.0f} MiB). A run reads each of its backfills' raw rows, versions and "
        "progress rows from the backfill's first stored poll on, so that DuckDB skips the row groups "
        "of older polls; it found them by their ids alone until 2026-12-07, and the generated teams' "
        "ids lie far apart, so that every run scanned every stored version (50 teams: 6.3 s a run, "
        "1.89x the empty history, in that morning's run; the build alone 5.6-6.7 -> 2.2-2.6 s on one "
        "copy of the data).",
        "",
        "The one full build of every model and data test, and its publish, over the generated year "
        "(what a model change costs the cron run that first sees it; before the runs above, the "
        f"median of {FULL_BUILD_TURNS}, each beside a copy of the raw versions): "
        + ", ".join(f"{r['full_build']:.0f} s for {teams} team(s)" for teams, r in results.items())
        + f". Target for {max(results)} teams at most {TARGET_FULL_BUILD_SECONDS:.0f} s: "
        f"{'met' if most['full_build'] <= TARGET_FULL_BUILD_SECONDS else 'MISSED'} "
        f"({most['full_build']:.0f} s; {most['full_build'] / most['floor']:.1f}x a copy of the raw versions, "
        f"{most['floor']:.1f} s on this machine). Its publish: {most['full_publish']:.0f} s (every table "
        "copied whole, and a Parquet file per day of the two tables published by day: "
        "backfill_progress and polls; the next run's publish starts the other copy from a copy of that "
        "file: at 50 teams 34 -> 3 s, measured once on 2026-12-07; the day files are DuckDB's "
        "encoding of 21 M rows, whatever the codec: snappy, LZ4, zstd or none took 7.6-8.5 s, "
        "measured once). Its slowest build steps: "
        f"{slowest(most['full_build_steps'])}.",
    ]
    return lines


if __name__ == "__main__":  # python -m benchmarks.teams_bench [polls]: this table alone
    import tempfile

    with tempfile.TemporaryDirectory() as work_dir:
        polls = int(sys.argv[1]) if len(sys.argv) > 1 else 365 * 288
        print("\n".join(report(run(Path(work_dir), polls))))
