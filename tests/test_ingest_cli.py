"""`backfills ingest` as cron runs it: a subprocess, its exit code, its one line on stderr."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from cli_process import BACKFILLS, backfills_env, ingest_args, run_backfills
from conftest import TEAM, Api, add_transfer, days_ago

from pipelines.ingest import ingest, working_dir
from pipelines.simulator import ApiKey, Simulator

KEY_ENV = {"SOURCES__SUPERMETRICS__MAX_ATTEMPTS": "2", "SOURCES__SUPERMETRICS__BACKOFF_FACTOR": "0"}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def ingest_cli(
    sim: Simulator, workdir: Path, *args: str, key: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    key_env = {} if key == "" else {"SOURCES__SUPERMETRICS__API_KEY": key or sim.api_key}
    return run_backfills(
        *ingest_args(sim.base_url, workdir / "data" / "b.duckdb", *args),
        cwd=workdir,
        **{**KEY_ENV, **key_env, **env},
    )


def history_rows(workdir: Path) -> tuple[int, int]:
    with duckdb.connect(str(workdir / "data" / "b.duckdb"), read_only=True) as con:
        return tuple(
            con.execute(f"select count(*) from supermetrics.{t}").fetchone()[0]
            for t in ("backfill_versions", "listing_events")
        )


def polls(workdir: Path) -> list[tuple]:
    with duckdb.connect(str(workdir / "data" / "b.duckdb"), read_only=True) as con:
        return con.execute(
            "select outcome, http_status, error_code from supermetrics.polls order by poll_id"
        ).fetchall()


def test_success_prints_a_summary(sim: Simulator, api: Api, workdir: Path) -> None:
    api.create(add_transfer(sim, failure_rate=1.0), days_ago(2), days_ago(1))
    sim.clock.advance(400)
    result = ingest_cli(sim, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"team {TEAM}: poll 1, listed 1, changed 1, left the list 0, finished 0, new errors 2"
    )
    # the list; then the sweep: the transfer list, the transfer's latest backfill, one page of its
    # runs: the two (failed at T+230, T+340), created after the backfill (the window's start)
    assert "4 request(s) (3 for transfers and runs, at most 10 a team; 2 run(s) stored)" in result.stdout
    assert result.stderr == ""


FAILURES = [
    # (fault kind, extra env, exit code, failure class, words the message must contain)
    (
        "401",
        {},
        77,
        "auth error",
        ["HTTP 401 API_KEY_INVALID", "SOURCES__SUPERMETRICS__API_KEY", "request_id"],
    ),
    ("403", {}, 77, "auth error", ["HTTP 403 ACCESS_DENIED", "dwh.transfer.view", "dwh_transfers_read"]),
    ("quota", {}, 75, "rate limited", ["API_ROW_QUOTA_EXCEEDED", "monthly row quota"]),
    (
        "429",
        {"SOURCES__SUPERMETRICS__MAX_RETRY_AFTER": "10"},
        75,
        "rate limited",
        ["asks to wait 30 s", "over the 10 s cap", "try again after"],
    ),
    ("503", {}, 69, "API unavailable", ["HTTP 503 SERVICE_UNAVAILABLE", "after 2 attempt(s)"]),
    ("cut_off", {}, 69, "API unavailable", ["connection to 127.0.0.1:", "broke"]),
    (
        "hang",
        {"SOURCES__SUPERMETRICS__REQUEST_TIMEOUT": "0.3"},
        69,
        "API unavailable",
        ["no answer from 127.0.0.1:"],
    ),
    ("400", {}, 78, "request rejected", ["HTTP 400 BAD_REQUEST", "Check team_ids and base_url"]),
    ("422", {}, 78, "request rejected", ["HTTP 422 UNPROCESSABLE_ENTITY"]),
    ("html", {}, 65, "invalid response", ["not JSON (text/html"]),
    ("bad_json", {}, 65, "invalid response", ["not JSON"]),
    ("missing_field", {}, 65, "invalid response", ["lacks the required field status"]),
]


@pytest.mark.parametrize(
    ("kind", "env", "code", "failure_class", "words"), FAILURES, ids=[f[0] for f in FAILURES]
)
def test_each_failure_class_has_its_exit_code_and_one_line(
    sim: Simulator,
    api: Api,
    workdir: Path,
    kind: str,
    env: dict,
    code: int,
    failure_class: str,
    words: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    monkeypatch.chdir(workdir)  # the history to keep is made in-process: the CLI is the failing run
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", sim.api_key)
    ingest(workdir / "data" / "b.duckdb", team_ids=[TEAM], base_url=sim.base_url, build_models=False)
    before = history_rows(workdir)
    sim.faults.add(kind=kind, endpoint="list")  # every call
    result = ingest_cli(sim, workdir, **env)
    assert result.returncode == code, result.stderr
    *retries, line = result.stderr.splitlines()  # a line per retry (max_attempts 2), then the failure
    assert len(retries) == (1 if code == 69 else 0), result.stderr
    assert all("attempt 2 of 2, retrying in 0.0 s" in r for r in retries)
    assert line.startswith(f"backfills: {failure_class}: listing backfills of team {TEAM}")
    for word in words:
        assert word in line
    assert history_rows(workdir) == before  # history untouched...
    assert polls(workdir)[-1][0] == "failed"  # ...and the failed poll is in the log


@pytest.mark.slow
def test_config_errors(sim: Simulator, workdir: Path) -> None:
    missing_key = ingest_cli(sim, workdir, key="")
    assert missing_key.returncode == 78
    assert missing_key.stderr.strip().startswith("backfills: config error: missing configuration: api_key")
    plain_http = run_backfills(
        "ingest",
        "--team-id",
        "1",
        "--base-url",
        "http://api.example.com/v1",
        cwd=workdir,
        SOURCES__SUPERMETRICS__API_KEY="k",
    )
    assert plain_http.returncode == 78 and "plain http to a host that is not loopback" in plain_http.stderr
    no_teams = run_backfills(
        "ingest", "--db", str(workdir / "x.duckdb"), cwd=workdir, SOURCES__SUPERMETRICS__API_KEY="k"
    )
    assert no_teams.returncode == 78 and "team_ids" in no_teams.stderr
    clash = ingest_cli(sim, workdir, "--db", str(workdir / "supermetrics.duckdb"))
    assert clash.returncode == 78 and "may not be named supermetrics.duckdb" in clash.stderr
    live = ingest_cli(sim, workdir, "--db", str(workdir / "team-live.duckdb"))
    assert live.returncode == 78 and "names ending in -live are kept for the views" in live.stderr
    empty_teams = run_backfills(
        "ingest",
        "--db",
        str(workdir / "y.duckdb"),
        cwd=workdir,
        SOURCES__SUPERMETRICS__API_KEY="k",
        SOURCES__SUPERMETRICS__TEAM_IDS="[]",
    )
    assert empty_teams.returncode == 78 and "at least one positive team id" in empty_teams.stderr
    not_a_list = run_backfills(
        "ingest",
        "--db",
        str(workdir / "z.duckdb"),
        cwd=workdir,
        SOURCES__SUPERMETRICS__API_KEY="k",
        SOURCES__SUPERMETRICS__TEAM_IDS="936506",
    )
    assert not_a_list.returncode == 78 and "team_ids must be a list of team ids" in not_a_list.stderr
    not_a_number = ingest_cli(sim, workdir, SOURCES__SUPERMETRICS__MAX_ATTEMPTS="many")
    assert not_a_number.returncode == 78 and "max_attempts = 'many' is not of type int" in not_a_number.stderr
    (workdir / "junk.duckdb").write_text("not a database")
    junk = ingest_cli(sim, workdir, "--db", str(workdir / "junk.duckdb"))
    assert junk.returncode == 78 and "cannot open the database" in junk.stderr
    assert (workdir / "junk.duckdb").read_text() == "not a database"  # left alone
    for result in (missing_key, plain_http, no_teams, clash, empty_teams, not_a_list, not_a_number, junk):
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_team_ids_and_key_from_dlt_files(sim: Simulator, api: Api, workdir: Path) -> None:
    (workdir / ".dlt").mkdir()
    (workdir / ".dlt" / "config.toml").write_text(
        f'[sources.supermetrics]\nteam_ids = [{TEAM}]\nbase_url = "{sim.base_url}"\n'
    )
    (workdir / ".dlt" / "secrets.toml").write_text(f'[sources.supermetrics]\napi_key = "{sim.api_key}"\n')
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    result = run_backfills("ingest", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert (workdir / "data" / "backfills.duckdb").exists()  # the documented default location


def test_database_open_in_another_process(sim: Simulator, workdir: Path) -> None:
    assert ingest_cli(sim, workdir).returncode == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
            "print('open', flush=True); sys.stdin.read()",
            str(workdir / "data" / "b.duckdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        result = ingest_cli(sim, workdir)
    finally:
        holder.communicate("")
    assert result.returncode == 73
    [line] = result.stderr.splitlines()
    assert line.startswith("backfills: locked: the database") and "open in another process" in line
    assert ingest_cli(sim, workdir).returncode == 0  # once it is closed, all is well


def test_overlapping_runs_never_run_at_once(sim: Simulator, workdir: Path) -> None:
    assert ingest_cli(sim, workdir).returncode == 0  # warm: the slow run below is slow only in HTTP
    sim.faults.add(kind="slow", endpoint="list", times=1, slow_seconds=4)
    env = backfills_env(**KEY_ENV, SOURCES__SUPERMETRICS__API_KEY=sim.api_key)
    slow = subprocess.Popen(
        [BACKFILLS, *ingest_args(sim.base_url, workdir / "data" / "b.duckdb")],
        cwd=workdir,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lock_file = workdir / "data" / "b.duckdb.lock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not lock_file.read_text():  # the slow run holds the lock
        time.sleep(0.05)
    second = ingest_cli(sim, workdir)
    assert second.returncode == 73
    assert f"another ingest (pid {slow.pid}) is running" in second.stderr
    waiting = ingest_cli(sim, workdir, "--wait-lock", "60")
    assert slow.wait(timeout=60) == 0
    assert waiting.returncode == 0, waiting.stderr
    assert [p[0] for p in polls(workdir)] == ["ok", "ok", "ok"]


def test_key_never_appears_in_output_files_or_database(sim: Simulator, api: Api, workdir: Path) -> None:
    secret = "sk-live-0123456789abcdef-SECRET"
    sim.add_key(ApiKey(secret))
    api.create(add_transfer(sim, failure_rate=1.0), days_ago(3), days_ago(1))
    sim.clock.advance(600)
    outputs = [ingest_cli(sim, workdir, "--db", str(workdir / "data" / "b.duckdb"), key=secret)]
    outputs.append(
        run_backfills(
            "-v",
            *ingest_args(sim.base_url, workdir / "data" / "b.duckdb"),
            cwd=workdir,
            **KEY_ENV,
            SOURCES__SUPERMETRICS__API_KEY=secret,
        )
    )
    sim.faults.add(kind="401", endpoint="list", times=1)
    outputs.append(ingest_cli(sim, workdir, key=secret))
    assert [o.returncode for o in outputs] == [0, 0, 77]
    for output in outputs:
        assert secret not in output.stdout + output.stderr
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in files) and any(
        working_dir(workdir / "data" / "b.duckdb") in p.parents for p in files
    )
    for path in files:
        assert secret.encode() not in path.read_bytes(), path


def test_new_database_starts_clean_and_lost_working_dir_is_harmless(
    sim: Simulator, api: Api, workdir: Path
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    assert ingest_cli(sim, workdir).returncode == 0
    other = ingest_cli(sim, workdir, "--db", str(workdir / "other" / "fresh.duckdb"))
    assert other.returncode == 0 and "poll 1," in other.stdout  # its own history, its own dlt folder

    import shutil

    shutil.rmtree(working_dir(workdir / "data" / "b.duckdb"))
    sim.clock.advance(60)  # SCHEDULED now: one real change
    again = ingest_cli(sim, workdir)
    assert again.returncode == 0, again.stderr
    assert "poll 2, listed 1, changed 1" in again.stdout
    assert history_rows(workdir) == (2, 1)  # no duplicated listing event, no repeated version


def test_dlt_plugins_are_not_looked_for_unless_asked(sim: Simulator, workdir: Path) -> None:
    """Looking for dlt's plugins reads every installed distribution's entry points at each start:
    the CLI skips it, and DLT_DISABLE_PLUGINS=false brings it back."""
    site, mark = workdir / "site", workdir / "plugin-loaded"
    (site / "marking_plugin").mkdir(parents=True)
    (site / "marking_plugin" / "__init__.py").write_text(
        f"from pathlib import Path\nPath({str(mark)!r}).write_text('loaded')\n"
    )
    info = site / "marking_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: marking-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dlt]\nmarking_plugin = marking_plugin\n")

    done = ingest_cli(sim, workdir, PYTHONPATH=str(site))
    assert done.returncode == 0, done.stderr
    assert not mark.exists()
    sim.clock.advance(300)
    done = ingest_cli(sim, workdir, PYTHONPATH=str(site), DLT_DISABLE_PLUGINS="false")
    assert done.returncode == 0, done.stderr
    assert mark.read_text() == "loaded"
