"""Every documented exit code through the real CLI, each with its one line on stderr
(docs/ingest.md "Exit codes")."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from cli_process import BACKFILLS, KILL_AT, backfills_env, ingest_args, run_backfills
from conftest import OTHER_TEAM, TEAM, Api, add_transfer, days_ago
from test_chaos import started_jobs
from test_stopped_runs import JOB_STARTED

from pipelines.ingest import working_dir
from pipelines.simulator import ApiKey, Simulator

FAST = {"SOURCES__SUPERMETRICS__MAX_ATTEMPTS": "2", "SOURCES__SUPERMETRICS__BACKOFF_FACTOR": "0"}
# Faults apply to calls in the order they arrive: teams one after another make that order known.
ONE_AFTER_ANOTHER = {"SOURCES__SUPERMETRICS__MAX_CONCURRENT_TEAMS": "1"}
ROOT = Path(__file__).resolve().parents[1]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_usage_errors_exit_64(tmp_path: Path) -> None:
    for args in (("nope",), ("ingest", "--wait-lock", "soon"), ("ingest", "--no-such-flag")):
        result = run_backfills(*args, cwd=tmp_path)
        assert result.returncode == 64, (args, result.stderr)
        assert "Error:" in result.stderr and "Traceback" not in result.stderr


def test_unreadable_config_files_exit_78_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text("[sources.supermetrics\nteam_ids = [1\n")
    result = run_backfills("ingest", "--db", str(tmp_path / "b.duckdb"), cwd=tmp_path)
    assert result.returncode == 78
    assert one_line(result).startswith("backfills: config error: cannot read .dlt/config.toml:")
    assert "line 1" in result.stderr

    (tmp_path / ".dlt" / "config.toml").unlink()
    (tmp_path / ".dlt" / "secrets.toml").write_text('[sources.supermetrics]\napi_key = "s3cr\x01t"\n')
    result = run_backfills("ingest", "--db", str(tmp_path / "b.duckdb"), cwd=tmp_path)
    assert result.returncode == 78
    assert "cannot read .dlt/secrets.toml:" in one_line(result) and "line 2" in result.stderr
    assert "s3cr" not in result.stderr


def test_out_of_range_settings_exit_78_naming_the_setting(sim: Simulator, tmp_path: Path) -> None:
    for name, value in (
        ("REQUEST_TIMEOUT", "-5"),
        ("MAX_ATTEMPTS", "0"),
        ("BACKOFF_FACTOR", "-1"),
        ("MAX_RUN_SECONDS", "0"),
        ("MAX_RECHECKS", "-1"),
    ):
        result = run_backfills(
            *ingest_args(sim.base_url, tmp_path / "b.duckdb"),
            cwd=tmp_path,
            SOURCES__SUPERMETRICS__API_KEY=sim.api_key,
            **{f"SOURCES__SUPERMETRICS__{name}": value},
        )
        assert result.returncode == 78, result.stderr
        assert one_line(result).startswith(f"backfills: config error: {name.lower()} = ")
        assert f"SOURCES__SUPERMETRICS__{name}" in result.stderr


def test_a_memory_limit_duckdb_cannot_read_exits_78_and_one_it_can_is_used(
    sim: Simulator, tmp_path: Path
) -> None:
    env = {"SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
    args = ingest_args(sim.base_url, tmp_path / "b.duckdb")
    result = run_backfills(*args, cwd=tmp_path, **env, DUCKDB__MEMORY_LIMIT="lots")
    assert result.returncode == 78
    assert one_line(result).startswith(
        "backfills: config error: duckdb.memory_limit = 'lots' is not a memory size DuckDB accepts"
    )
    assert "DUCKDB__MEMORY_LIMIT" in result.stderr
    assert run_backfills(*args, cwd=tmp_path, **env, DUCKDB__MEMORY_LIMIT="64MB").returncode == 0
    too_little = run_backfills(*args, cwd=tmp_path, **env, DUCKDB__MEMORY_LIMIT="1MB")
    assert too_little.returncode == 78
    assert one_line(too_little).startswith(
        "backfills: config error: DuckDB needed more than the run's memory_limit (1MB) for "
    )


def test_a_model_out_of_memory_exits_78_naming_the_setting_and_is_a_failed_build(
    sim: Simulator, tmp_path: Path
) -> None:
    # From the second poll on, this model's list of 40 million numbers needs more than the run's
    # 64MB (a list is not something DuckDB spills to disk); the first build is a full refresh,
    # which runs without the cap, and the baseline read and the load fit in it.
    sql = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", sql)
    (sql / "marts" / "hungry.sql").write_text(
        "select list(range) as numbers from range(40000000)\n"
        "where (select count(*) from supermetrics.polls) > 1\n"
    )
    db = tmp_path / "b.duckdb"
    env = {
        "SOURCES__SUPERMETRICS__API_KEY": sim.api_key,
        "BACKFILLS_SQL_DIR": str(sql),
        "DUCKDB__MEMORY_LIMIT": "64MB",
    }
    assert run_backfills(*ingest_args(sim.base_url, db), cwd=tmp_path, **env).returncode == 0
    result = run_backfills(*ingest_args(sim.base_url, db), cwd=tmp_path, **env)
    assert result.returncode == 78, result.stderr
    assert one_line(result).startswith(
        "backfills: config error: building analytics.hungry failed: DuckDB needed more than the run's "
        "memory_limit (64MB) for "
    )
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from supermetrics.polls").fetchone()[0] == 2  # stored
        outcomes = con.execute(
            "select outcome, error from analytics.model_builds order by finished_at"
        ).fetchall()
    assert [outcome for outcome, _ in outcomes] == ["ok", "failed"]
    assert "memory_limit (64MB)" in outcomes[-1][1]


def test_a_model_variable_that_is_not_a_number_exits_78(sim: Simulator, api: Api, tmp_path: Path) -> None:
    db = tmp_path / "b.duckdb"
    env = {"SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
    assert run_backfills(*ingest_args(sim.base_url, db), cwd=tmp_path, **env).returncode == 0
    result = run_backfills("models", "--db", str(db), cwd=tmp_path, MODELS__STALL_AFTER_HOURS="x")
    assert result.returncode == 78
    assert "models.stall_after_hours = 'x' is not a number" in one_line(result)


def test_a_database_folder_that_cannot_be_written_exits_74_naming_it(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    for db, folder in (
        (tmp_path / "a_file" / "b.duckdb", tmp_path / "a_file"),
        (Path("/proc/self/b.duckdb"), "/proc/self"),
    ):
        result = run_backfills(
            *ingest_args(sim.base_url, db), cwd=tmp_path, SOURCES__SUPERMETRICS__API_KEY=sim.api_key
        )
        assert result.returncode == 74, result.stderr
        line = one_line(result)
        assert line.startswith("backfills: storage error: cannot") and str(folder) in line


def test_network_failures_name_the_host_and_the_cause(sim: Simulator, tmp_path: Path) -> None:
    port = sim.base_url.split(":")[2].split("/")[0]
    env = {"SOURCES__SUPERMETRICS__API_KEY": sim.api_key, "SOURCES__SUPERMETRICS__MAX_ATTEMPTS": "1"}
    tls = run_backfills(
        *ingest_args(f"https://127.0.0.1:{port}/v1", tmp_path / "b.duckdb"), cwd=tmp_path, **env
    )
    assert tls.returncode == 69
    assert f"the TLS handshake with 127.0.0.1:{port} failed" in one_line(tls)
    sim.stop()  # nothing listens on the port any more
    refused = run_backfills(
        *ingest_args(f"http://127.0.0.1:{port}/v1", tmp_path / "b.duckdb"), cwd=tmp_path, **env
    )
    assert refused.returncode == 69
    assert f"127.0.0.1:{port} refused the connection" in one_line(refused)


def test_each_retry_is_said_on_stderr(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.add(kind="503", endpoint="list", times=1)
    result = run_backfills(
        *ingest_args(sim.base_url, tmp_path / "b.duckdb"),
        cwd=tmp_path,
        SOURCES__SUPERMETRICS__API_KEY=sim.api_key,
        SOURCES__SUPERMETRICS__BACKOFF_FACTOR="0",
    )
    assert result.returncode == 0, result.stderr
    [retry] = result.stderr.splitlines()
    assert "HTTP 503 SERVICE_UNAVAILABLE" in retry and "attempt 2 of 5, retrying in 0.0 s" in retry


def test_the_run_deadline_stops_a_hung_run_and_keeps_what_it_polled(
    sim: Simulator, api: Api, tmp_path: Path
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.clock.advance(60)
    sim.faults.add(kind="extra_field", endpoint="list", times=1)  # the first team's list: a valid answer
    sim.faults.add(kind="hang", endpoint="list")  # the second team's: no answer at all
    db = tmp_path / "b.duckdb"
    # request_timeout 600 s: only the deadline can end this run before run_backfills gives up
    result = run_backfills(
        *ingest_args(sim.base_url, db, "--team-id", str(OTHER_TEAM)),
        cwd=tmp_path,
        SOURCES__SUPERMETRICS__API_KEY=sim.api_key,
        SOURCES__SUPERMETRICS__MAX_RUN_SECONDS="1",
        SOURCES__SUPERMETRICS__REQUEST_TIMEOUT="600",
        **ONE_AFTER_ANOTHER,
    )
    assert result.returncode == 69, result.stderr
    line = result.stderr.splitlines()[-1]
    assert line.startswith(f"backfills: API unavailable: listing backfills of team {OTHER_TEAM}")
    assert "max_run_seconds = 1" in line
    with duckdb.connect(str(db), read_only=True) as con:
        polls = con.execute("select team_id, outcome from supermetrics.polls order by poll_id").fetchall()
        versions = con.execute("select count(*) from supermetrics.backfill_versions").fetchone()[0]
    assert polls == [(TEAM, "ok"), (OTHER_TEAM, "failed")] and versions == 1  # the first team's poll is kept


@pytest.mark.parametrize(
    ("teams", "signum", "said"),
    [
        ((TEAM,), signal.SIGINT, "Ctrl-C (SIGINT)"),
        ((TEAM, OTHER_TEAM), signal.SIGINT, "Ctrl-C (SIGINT)"),
        ((TEAM,), signal.SIGTERM, "SIGTERM"),
    ],
    ids=["ctrl-c one team", "ctrl-c two teams at once", "sigterm"],
)
def test_ctrl_c_or_sigterm_exits_in_one_line_and_the_next_run_is_clean(
    sim: Simulator, api: Api, tmp_path: Path, teams: tuple[int, ...], signum: int, said: str
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    db = tmp_path / "b.duckdb"
    # hung calls that nothing but Ctrl-C ends within the test's patience
    env = backfills_env(
        SOURCES__SUPERMETRICS__API_KEY=sim.api_key,
        SOURCES__SUPERMETRICS__REQUEST_TIMEOUT="600",
        SOURCES__SUPERMETRICS__MAX_RUN_SECONDS="600",
    )
    fault = sim.faults.add(kind="hang", endpoint="list", times=len(teams))
    args = ingest_args(sim.base_url, db, *[a for t in teams[1:] for a in ("--team-id", str(t))])
    victim = subprocess.Popen([BACKFILLS, *args], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    while fault in sim.faults.rules:  # every team's request reached the hanging answer
        assert victim.poll() is None, victim.stderr.read()
        time.sleep(0.01)
    victim.send_signal(signum)
    _, stderr = victim.communicate(timeout=60)
    assert victim.returncode == 128 + signum, stderr
    [line] = stderr.splitlines()
    assert line.startswith(f"backfills: interrupted: stopped by {said} while polling and loading; nothing")

    after = run_backfills(*args, cwd=tmp_path, SOURCES__SUPERMETRICS__API_KEY=sim.api_key)
    assert after.returncode == 0, after.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*), count(distinct _dlt_id) from supermetrics.polls").fetchone() == (
            len(teams),
            len(teams),
        )


def test_several_teams_get_a_line_each_and_a_partial_success_exits_with_the_failure(
    sim: Simulator, api: Api, tmp_path: Path
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.clock.advance(60)
    sim.add_key(ApiKey("one-team-key", team_ids=frozenset({TEAM})))  # no access to OTHER_TEAM: 403
    db = tmp_path / "b.duckdb"
    result = run_backfills(
        *ingest_args(sim.base_url, db, "--team-id", str(OTHER_TEAM)),
        cwd=tmp_path,
        SOURCES__SUPERMETRICS__API_KEY="one-team-key",
        **ONE_AFTER_ANOTHER,
    )
    assert result.returncode == 77
    lines = result.stdout.splitlines()
    assert lines[0] == f"team {TEAM}: poll 1, listed 1, changed 1, left the list 0, finished 0, new errors 0"
    assert lines[1] == f"team {OTHER_TEAM}: poll 2 failed: auth error"
    assert one_line(result).startswith(
        f"backfills: auth error: listing backfills of team {OTHER_TEAM}: HTTP 403"
    )

    sim.clock.advance(300)
    sim.faults.add(kind="401", endpoint="list", times=1)  # a 401 stops the run: the key is wrong for all
    stopped = run_backfills(
        *ingest_args(sim.base_url, db, "--team-id", str(OTHER_TEAM)),
        cwd=tmp_path,
        SOURCES__SUPERMETRICS__API_KEY="one-team-key",
        **ONE_AFTER_ANOTHER,
    )
    assert stopped.returncode == 77
    assert stopped.stdout.splitlines()[:2] == [
        f"team {TEAM}: poll 3 failed: auth error",
        f"team {OTHER_TEAM}: not polled, the run stopped at the failure on stderr",
    ]


HOLD_DATABASE = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def test_wait_lock_also_waits_for_another_process_holding_the_database(
    sim: Simulator, tmp_path: Path
) -> None:
    db = tmp_path / "b.duckdb"
    env = {"SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
    assert run_backfills(*ingest_args(sim.base_url, db), cwd=tmp_path, **env).returncode == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_DATABASE, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    try:
        at_once = run_backfills(*ingest_args(sim.base_url, db), cwd=tmp_path, **env)
        assert at_once.returncode == 73
        assert "is open in another process" in one_line(at_once)

        waiting = subprocess.Popen(
            [BACKFILLS, *ingest_args(sim.base_url, db, "--wait-lock", "300")],
            cwd=tmp_path,
            env=backfills_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        said = waiting.stderr.readline()  # it says that it waits: then the holder lets go
        assert "is open in another process: waiting for it (--wait-lock)" in said
    finally:
        holder.communicate(input="", timeout=30)
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert out.startswith(f"team {TEAM}: poll 2,")


def test_ctrl_c_during_the_demo_exits_130_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    demo = subprocess.Popen(
        [BACKFILLS, "demo", "--db", str(db), "--days", "3"],
        cwd=tmp_path,
        env=backfills_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not db.exists():  # the first load has created the database: the demo is under way
        assert demo.poll() is None, demo.stderr.read()
        time.sleep(0.01)
    demo.send_signal(signal.SIGINT)
    _, stderr = demo.communicate(timeout=60)
    assert demo.returncode == 130, stderr
    [line] = stderr.splitlines()
    assert line.startswith("backfills: interrupted: stopped by Ctrl-C (SIGINT)")
    assert line.endswith("the next run finishes or discards what this one left")


NO_RESOLVER = """
import socket

def no_such_host(host, *args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

socket.getaddrinfo = no_such_host
"""


def test_a_host_that_cannot_be_resolved_is_named(tmp_path: Path) -> None:
    # The machine's resolver is replaced (sitecustomize) so that no DNS query leaves 127.0.0.1.
    (tmp_path / "resolver").mkdir()
    (tmp_path / "resolver" / "sitecustomize.py").write_text(NO_RESOLVER)
    result = run_backfills(
        *ingest_args("https://api.example.test/v1", tmp_path / "b.duckdb"),
        cwd=tmp_path,
        PYTHONPATH=str(tmp_path / "resolver"),
        SOURCES__SUPERMETRICS__API_KEY="k",
        SOURCES__SUPERMETRICS__MAX_ATTEMPTS="1",
    )
    assert result.returncode == 69
    assert "the host name api.example.test could not be resolved" in one_line(result)


def test_a_lookup_outage_that_costs_another_team_its_poll_fails_the_run(
    sim: Simulator, api: Api, tmp_path: Path
) -> None:
    api.create(add_transfer(sim, run_seconds=100), days_ago(1), days_ago(1))  # 1 run: done at +240
    db = tmp_path / "b.duckdb"
    args = ingest_args(sim.base_url, db, "--team-id", str(OTHER_TEAM))
    env = {**FAST, **ONE_AFTER_ANOTHER, "SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
    assert run_backfills(*args, cwd=tmp_path, **env).returncode == 0  # listed, SCHEDULED
    sim.clock.advance(600)  # COMPLETED: it left the list, and its lookup...
    sim.faults.add(kind="503", endpoint="get", times=2)  # ...meets an outage, both attempts
    result = run_backfills(*args, cwd=tmp_path, **env)
    assert result.returncode == 69, result.stderr
    assert (
        result.stdout.splitlines()[1]
        == f"team {OTHER_TEAM}: not polled, the run stopped at the failure on stderr"
    )
    assert result.stderr.splitlines()[-1].startswith("backfills: API unavailable: looking up backfill")
    sim.clock.advance(300)
    again = run_backfills(*args, cwd=tmp_path, **env)  # the outage is over: both teams, and the lookup
    assert again.returncode == 0, again.stderr
    assert [line.split(":")[0] for line in again.stdout.splitlines()[:2]] == [
        f"team {TEAM}",
        f"team {OTHER_TEAM}",
    ]


def test_ctrl_c_in_the_middle_of_a_load_stops_the_run_and_the_next_run_loads_it(
    sim: Simulator, tmp_path: Path
) -> None:
    """dlt's own signal handlers deferred a Ctrl-C (or SIGTERM) during its load to a check that
    never came, and then forgot it: the run went on and exited 0. Ctrl-C must stop it, say so in
    one line, and the next run must finish the load before it polls (nothing lost, nothing twice)."""
    env = backfills_env(SOURCES__SUPERMETRICS__API_KEY=sim.api_key)
    for attempt in range(10):  # the job's file lives for an insert: a busy machine may miss it
        db = tmp_path / f"b{attempt}.duckdb"
        interrupted = subprocess.Popen(
            [BACKFILLS, *ingest_args(sim.base_url, db)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while interrupted.poll() is None and not started_jobs(working_dir(db)):
            time.sleep(0.0005)  # watching the folder: the load job's file is the event
        if interrupted.poll() is None:
            break
        interrupted.communicate()
    interrupted.send_signal(signal.SIGINT)
    _, stderr = interrupted.communicate(timeout=60)
    assert interrupted.returncode == 130, stderr
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith("backfills: interrupted: stopped by Ctrl-C (SIGINT) while polling and loading")
    )

    result = run_backfills(
        *ingest_args(sim.base_url, db), cwd=tmp_path, SOURCES__SUPERMETRICS__API_KEY=sim.api_key
    )
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*), count(distinct poll_id) from supermetrics.polls").fetchone() == (
            2,
            2,
        )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_during_the_model_build_is_rolled_back_and_is_not_a_failed_build(
    sim: Simulator, api: Api, tmp_path: Path, signum: int
) -> None:
    """The stop lands inside the build's transaction (after its third statement on analytics):
    the build is rolled back and not recorded, `check` stays OK, the next run builds."""
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    db = tmp_path / "b.duckdb"
    args = ingest_args(sim.base_url, db)
    assert run_backfills(*args, cwd=tmp_path, SOURCES__SUPERMETRICS__API_KEY=sim.api_key).returncode == 0
    sim.clock.advance(600)
    execute = "dlt.destinations.impl.duckdb.sql_client:DuckDbSqlClient.execute_sql"
    victim = subprocess.run(
        [sys.executable, KILL_AT, execute, signal.Signals(signum).name, "3", "analytics.", "--", *args],
        cwd=tmp_path,
        env=backfills_env(SOURCES__SUPERMETRICS__API_KEY=sim.api_key),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert victim.returncode == 128 + signum, victim.stderr
    [line] = victim.stderr.splitlines()
    assert "stopped by" in line and "while building the models" in line
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select outcome from analytics.model_builds").fetchall() == [("ok",)]
    check = run_backfills("check", "--db", str(db), cwd=tmp_path)
    assert check.returncode == 0, check.stdout
    after = run_backfills(*args, cwd=tmp_path, SOURCES__SUPERMETRICS__API_KEY=sim.api_key)
    assert after.returncode == 0, after.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_ends_the_process_even_when_a_thread_would_keep_it(
    sim: Simulator, tmp_path: Path, signum: int
) -> None:
    """A thread that never ends (a load job stuck in dlt's pool) would keep Python from exiting
    after the stop: the process must end all the same, BACKFILLS_STOP_GRACE_SECONDS after the
    signal, with the one line and the signal's code; the next run goes on."""
    db = tmp_path / "b.duckdb"
    args = ingest_args(sim.base_url, db)
    victim = subprocess.run(
        [sys.executable, KILL_AT, JOB_STARTED, signal.Signals(signum).name, "--", *args],
        cwd=tmp_path,
        env=backfills_env(
            SOURCES__SUPERMETRICS__API_KEY=sim.api_key,
            KILL_AT_STUCK_THREAD="1",
            BACKFILLS_STOP_GRACE_SECONDS="1",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert victim.returncode == 128 + signum, victim.stderr
    [line] = victim.stderr.splitlines()
    assert line.startswith("backfills: interrupted: stopped by") and "while polling and loading" in line
    after = run_backfills(*args, cwd=tmp_path, SOURCES__SUPERMETRICS__API_KEY=sim.api_key)
    assert after.returncode == 0, after.stderr


def test_a_second_stop_ends_a_process_stuck_on_its_way_out(sim: Simulator, tmp_path: Path) -> None:
    """Stopped once, the run says so and then waits for a thread that never ends; a second
    SIGTERM (what systemd and Kubernetes send again) ends it at once, with the same code."""
    db = tmp_path / "b.duckdb"
    victim = subprocess.Popen(
        [sys.executable, KILL_AT, JOB_STARTED, "SIGTERM", "--", *ingest_args(sim.base_url, db)],
        cwd=tmp_path,
        env=backfills_env(
            SOURCES__SUPERMETRICS__API_KEY=sim.api_key,
            KILL_AT_STUCK_THREAD="1",
            BACKFILLS_STOP_GRACE_SECONDS="600",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = victim.stderr.readline()  # the stop's one line: the run is now on its way out
    assert line.startswith("backfills: interrupted: stopped by SIGTERM"), line
    assert victim.poll() is None  # held by the thread
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(timeout=60) == 143
    assert victim.stderr.read() == ""  # no second line


def test_a_stop_grace_that_is_not_a_number_is_a_config_error(tmp_path: Path) -> None:
    result = run_backfills(
        "check", "--db", str(tmp_path / "b.duckdb"), cwd=tmp_path, BACKFILLS_STOP_GRACE_SECONDS="20s"
    )
    assert result.returncode == 78, result.stderr
    assert (
        result.stderr
        == "backfills: config error: BACKFILLS_STOP_GRACE_SECONDS='20s' is not a number of seconds\n"
    )
