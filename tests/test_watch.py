"""`backfills watch`: polls on an interval, survives failed polls, stops cleanly on signals."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pytest
from cli_process import BACKFILLS, backfills_env
from conftest import TEAM, Api, add_transfer, days_ago

from pipelines.ingest import open_pipeline
from pipelines.simulator import Simulator
from pipelines.supermetrics.errors import ApiUnavailableError, ConfigError
from pipelines.watch import parse_interval, watch


class Watch:
    """`backfills watch` as a subprocess whose stdout is read line by line without read-ahead:
    a buffered reader would swallow lines that `communicate()` (reading the pipe itself) then
    never sees."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.lines: list[str] = []

    def read_until(self, needle: str) -> None:
        while line := self.process.stdout.readline():  # unbuffered: one line, nothing more
            self.lines.append(line.decode())
            if needle in self.lines[-1]:
                return
        raise AssertionError(f"{needle!r} never came: {''.join(self.lines)}")

    def stop(self, signum: int) -> tuple[str, str]:
        """Send `signum`; returns the rest of stdout and all of stderr once the process ended."""
        self.process.send_signal(signum)
        stdout, stderr = self.process.communicate(timeout=60)
        return stdout.decode(), stderr.decode()


def start_watch(sim: Simulator, db: Path, every: str) -> Watch:
    env = backfills_env(
        SOURCES__SUPERMETRICS__API_KEY=sim.api_key,
        SOURCES__SUPERMETRICS__MAX_ATTEMPTS="2",
        SOURCES__SUPERMETRICS__BACKOFF_FACTOR="0",
    )
    process = subprocess.Popen(
        [
            BACKFILLS,
            "watch",
            "--every",
            every,
            "--team-id",
            str(TEAM),
            "--base-url",
            sim.base_url,
            "--db",
            str(db),
        ],
        cwd=db.parent,
        env=env,
        bufsize=0,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return Watch(process)


def test_watch_carries_on_after_a_failed_poll_and_stops_on_sigterm(
    sim: Simulator, api: Api, tmp_path: Path
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.faults.add(kind="503", endpoint="list", times=2)  # the first poll fails, both attempts
    db = tmp_path / "watch.duckdb"
    watching = start_watch(sim, db, "1s")
    watching.read_until(f"team {TEAM}: poll 2,")  # poll 1 failed, poll 2 went through
    stdout, stderr = watching.stop(signal.SIGTERM)
    assert watching.process.returncode == 0
    assert "API unavailable: listing backfills" in stderr and "(next try in 1s)" in stderr
    assert "SIGTERM: stopping after the current run" in stderr
    runs = sum(line.startswith("-- ") for line in watching.lines + stdout.splitlines(keepends=True))
    with duckdb.connect(str(db), read_only=True) as con:
        outcomes = [
            o for (o,) in con.execute("select outcome from supermetrics.polls order by poll_id").fetchall()
        ]
    assert outcomes[:2] == ["failed", "ok"] and len(outcomes) == runs
    assert not open_pipeline(db).has_pending_data


def test_sigint_during_a_run_lets_it_finish(sim: Simulator, api: Api, tmp_path: Path) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.faults.add(kind="slow", endpoint="list", times=1, slow_seconds=3)
    db = tmp_path / "watch.duckdb"
    watching = start_watch(sim, db, "1h")
    watching.read_until("-- ")  # the first run has started and waits on the slow answer
    stdout, stderr = watching.stop(signal.SIGINT)
    assert watching.process.returncode == 0, stderr
    assert f"team {TEAM}: poll 1," in stdout  # the run in progress finished and loaded
    assert "SIGINT: stopping after the current run" in stderr and "Traceback" not in stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from supermetrics.polls").fetchone()[0] == 1
    assert not open_pipeline(db).has_pending_data


def test_a_second_sigint_stops_at_once(sim: Simulator, api: Api, tmp_path: Path) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    fault = sim.faults.add(kind="hang", endpoint="list", times=1)
    db = tmp_path / "watch.duckdb"
    watching = start_watch(sim, db, "1h")
    while fault in sim.faults.rules:  # the first run waits on an answer that never comes
        assert watching.process.poll() is None
        time.sleep(0.01)
    watching.process.send_signal(signal.SIGINT)
    assert "SIGINT: stopping after the current run" in watching.process.stderr.readline().decode()
    _, stderr = watching.stop(signal.SIGINT)
    assert watching.process.returncode == 130, stderr
    assert stderr.splitlines()[-1].startswith("backfills: interrupted: stopped by Ctrl-C")


def test_watch_loop_stops_on_config_errors_and_keeps_the_beat() -> None:
    stop, calls, failures = threading.Event(), [], []

    def run_once() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ApiUnavailableError("down")
        if len(calls) == 3:
            stop.set()

    watch(0.01, run_once, failures.append, stop)
    assert len(calls) == 3 and [str(f) for f in failures] == ["down"]
    with pytest.raises(ConfigError):
        watch(0.01, lambda: (_ for _ in ()).throw(ConfigError("no key")), failures.append, threading.Event())


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("2d", 172800), ("0.5m", 30)]
)
def test_parse_interval(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "-1m", "0", "m", "90", "20x"])
def test_bad_intervals(text: str) -> None:
    with pytest.raises(ValueError):
        parse_interval(text)
