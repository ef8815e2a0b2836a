"""What a company checks before it adopts the tool: a licence, a version, a configuration it can
start from, logs a shipper can read, and systemd units that systemd accepts."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import tarfile
import tomllib
from importlib.metadata import version
from pathlib import Path

import duckdb
import pytest
from cli_process import BACKFILLS, backfills_env, run_backfills
from conftest import ROOT, TEAM, Api, add_transfer, days_ago
from test_chaos import tables

from pipelines.simulator import Simulator


def test_the_licence_and_the_version_are_declared_and_shown(tmp_path: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and "Apache License" in (ROOT / "LICENSE").read_text()
    shown = run_backfills("--version", cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout == f"backfills, version {project['version']}\n"
    assert version("supermetrics-backfill-monitor") == project["version"]
    assert f"## [{project['version']}]" in (ROOT / "CHANGELOG.md").read_text()


def test_init_writes_a_configuration_that_ingest_runs_with(sim: Simulator, tmp_path: Path) -> None:
    job = tmp_path / "job"
    done = run_backfills(
        "init", "--team-id", str(TEAM), "--base-url", sim.base_url, "--dir", str(job), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    secrets = job / ".dlt" / "secrets.toml"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert (job / ".dlt" / ".gitignore").read_text() == "secrets.toml\n"
    again = run_backfills("init", "--team-id", "1", "--dir", str(job), cwd=tmp_path)
    assert again.returncode == 78 and "exists already: nothing was written" in again.stderr
    secrets.write_text(secrets.read_text().replace('api_key = ""', f'api_key = "{sim.api_key}"'))
    ingest = run_backfills("ingest", cwd=job)  # everything from the written files
    assert ingest.returncode == 0, ingest.stderr
    assert ingest.stdout.startswith(f"team {TEAM}: poll 1, ")


def test_json_logs_are_one_object_per_line_with_the_lines_content(sim: Simulator, tmp_path: Path) -> None:
    args = ["--log-format", "json", "ingest", "--team-id", str(TEAM), "--base-url", sim.base_url]
    ok = run_backfills(*args, cwd=tmp_path, SOURCES__SUPERMETRICS__API_KEY=sim.api_key)
    refused = run_backfills(*args, cwd=tmp_path, SOURCES__SUPERMETRICS__API_KEY="wrong")
    assert ok.returncode == 0 and refused.returncode == 77
    lines = [json.loads(line) for line in ok.stdout.splitlines()]
    assert lines[0]["message"].startswith(f"team {TEAM}: poll 1, ")
    assert {(line["level"], line["stream"]) for line in lines} == {("info", "stdout")}
    [error] = [json.loads(line) for line in refused.stderr.splitlines() if '"level": "error"' in line]
    assert error["message"].startswith("backfills: auth error: ") and error["stream"] == "stderr"
    assert set(error) == {"time", "level", "stream", "message"}


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """The units as shipped, with their paths pointed at this checkout (verify checks that the
    command exists)."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: Debian's systemd package provides it")
    for unit in ("backfills-ingest.service", "backfills-ingest.timer"):
        text = (ROOT / "deploy" / unit).read_text()
        text = text.replace("/srv/backfills/.venv/bin/backfills", BACKFILLS).replace(
            "/srv/backfills", str(tmp_path)
        )
        (tmp_path / unit).write_text(text)
    units = [str(tmp_path / "backfills-ingest.service"), str(tmp_path / "backfills-ingest.timer")]
    verified = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr


# release 0.2.0's code and SQL (`git archive v0.2.0 pipelines sql`): a database it made must keep
# working; kept as a file so that the test needs no git history
PREVIOUS_RELEASE = ROOT / "tests" / "fixtures" / "release-0.2.0.tar.gz"


def run_previous_release(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`backfills ARGS` as release 0.2.0 runs it: its code and SQL, this environment's packages
    (the pinned set is the same)."""
    old = tmp_path / "release-0.2.0"
    if not old.exists():
        old.mkdir()
        with tarfile.open(PREVIOUS_RELEASE) as archive:
            archive.extractall(old, filter="data")
    code = f"import sys; sys.path.insert(0, {str(old)!r}); from pipelines.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=backfills_env(**env),
    )


def test_a_database_made_by_the_previous_release_keeps_working(sim: Simulator, tmp_path: Path) -> None:
    """Three polls by release 0.2.0, then three by this one: the raw and analytics tables equal
    those of a twin that this release made from the start (the models' new fingerprint makes the
    first build a full refresh)."""
    upgraded, twin = tmp_path / "upgraded" / "b.duckdb", tmp_path / "twin" / "b.duckdb"
    key = {"SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
    args = ["ingest", "--team-id", str(TEAM), "--base-url", sim.base_url]
    Api(sim).create(add_transfer(sim, failure_rate=0.5), days_ago(3), days_ago(1))
    # failed runs from the first poll on: the previous release stores error report rows, to which
    # this release adds a column (their load id)
    Api(sim).create(add_transfer(sim, failure_rate=1.0, run_seconds=60), days_ago(9), days_ago(1))
    for step in range(6):
        runner = run_previous_release if step < 3 else (lambda cwd, *a, **e: run_backfills(*a, cwd=cwd, **e))
        done = runner(tmp_path, *args, "--db", str(upgraded), **key)
        assert done.returncode == 0, done.stderr
        assert run_backfills(*args, "--db", str(twin), cwd=tmp_path, **key).returncode == 0
        sim.clock.advance(300)
        if step == 2:  # what the previous release stored holds error report rows
            with duckdb.connect(str(upgraded), read_only=True) as con:
                reports = "select count(*) > 0 from supermetrics.backfill_versions__error_report"
                assert con.execute(reports).fetchone() == (True,)
    upgraded_tables, twin_tables = tables(upgraded), tables(twin)
    assert [name for name in twin_tables if upgraded_tables[name] != twin_tables[name]] == []
    assert len(twin_tables["supermetrics.backfill_versions"]) >= 3
    with duckdb.connect(str(upgraded), read_only=True) as con:  # every report row has its version's load id
        assert con.execute(
            "select count(*) from supermetrics.backfill_versions__error_report as r "
            "join supermetrics.backfill_versions as v on v._dlt_id = r._dlt_parent_id "
            "where r._dlt_load_id is distinct from v._dlt_load_id"
        ).fetchone() == (0,)
    with duckdb.connect(str(upgraded), read_only=True) as con:
        reasons = [
            m
            for (m,) in con.execute("select mode from analytics.model_builds order by finished_at").fetchall()
        ]
    assert reasons[:4] == ["full", "incremental", "incremental", "full"]  # the new models: one full build


def test_the_docs_site_builds_strictly_and_its_home_is_the_readme(tmp_path: Path) -> None:
    """Every link and anchor of docs/ resolves (mkdocs --strict), and nothing refers outside the
    repository."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from docs_home import home

    assert (ROOT / "docs" / "index.md").read_text() == home((ROOT / "README.md").read_text()), "make docs"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**backfills_env(), "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "production.html").exists()  # the offline plugin: plain file names
    texts = [p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]]
    unreachable = ("../" + "shared", "the " + "tracker", "issue " + "#")  # places a reader cannot reach
    assert not any(word in text for text in texts for word in unreachable)
