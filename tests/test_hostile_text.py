"""Text from outside never reaches a terminal raw: every control character is shown visibly, an
error stays one line with the API's text capped, and the database keeps the original."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest
from cli_process import BACKFILLS, backfills_env, ingest_args, run_backfills
from conftest import TEAM, Api, add_transfer, days_ago

from pipelines.simulator import Simulator

# clear screen, a window title, a hyperlink, bell, backspace, CR/LF, a bidi override, 3 KB
HOSTILE = (
    "\x1b[2J\x1b]0;owned\x07\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\"
    "\x07\x08\x08\r\nFAKE: all good\u202e" + "A" * 3000
)
ENV = {"SOURCES__SUPERMETRICS__MAX_ATTEMPTS": "1", "SOURCES__SUPERMETRICS__API_KEY": "k"}


def assert_safe(output: str) -> None:
    """No control character but the line ends, no raw escape sequence, nothing hidden."""
    assert not [c for c in output if ord(c) < 32 and c != "\n" or ord(c) == 0x7F or c == "\u202e"]


class _Rejecting(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # a 400 whose error message is hostile
        body = json.dumps(
            {"meta": {"request_id": "R1"}, "error": {"code": "BAD\x1b[31m", "message": HOSTILE}}
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Rejecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_hostile_error_message_is_one_visible_capped_line(hostile_api: str, tmp_path: Path) -> None:
    db = tmp_path / "b.duckdb"
    result = run_backfills(*ingest_args(hostile_api, db), cwd=tmp_path, **ENV)
    assert result.returncode == 78, result.stderr  # the request was rejected: 400
    assert_safe(result.stdout + result.stderr)
    [line] = result.stderr.splitlines()
    assert "\\x1b[2J" in line and "\\r\\nFAKE: all good\\u202e" in line  # shown, not acted on
    assert "…" in line and len(line) < 600  # 3 KB capped

    with duckdb.connect(str(db), read_only=True) as con:  # the database keeps the original
        [(api_message, error_code)] = con.execute(
            "select api_message, error_code from supermetrics.polls"
        ).fetchall()
    assert api_message == HOSTILE and error_code == "BAD\x1b[31m"

    shown = run_backfills(
        "query", "--db", str(db), "select api_message, error_code from supermetrics.polls", cwd=tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    assert_safe(shown.stdout)
    assert "\\x1b]0;owned\\x07" in shown.stdout


def test_hostile_error_reports_are_shown_visibly_by_report_and_query(
    sim: Simulator, api: Api, tmp_path: Path
) -> None:
    created = api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.clock.advance(60)
    backfill = sim.world.get(TEAM, created["transfer_backfill_id"])
    backfill.errors.append({"transfer_run_date": days_ago(1).isoformat(), "error": HOSTILE})
    db = tmp_path / "b.duckdb"
    env = {"SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
    assert run_backfills(*ingest_args(sim.base_url, db), cwd=tmp_path, **env).returncode == 0

    shown = ";owned\\x07"  # near the start (query cuts long values), and no number the pattern masks
    for args, expected in (
        (("report", "--db", str(db)), None),  # no error in the default sections
        (("report", "--db", str(db), "--format", "json"), shown.replace("\\", "\\\\")),  # JSON-escaped
        (("report", "--db", str(db), "--format", "csv", "--section", "errors"), shown),
        (("query", "--db", str(db), "select error, error_pattern from analytics.backfill_errors"), shown),
    ):
        result = run_backfills(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert_safe(result.stdout + result.stderr)
        assert expected is None or expected in result.stdout, args


def test_watch_shows_a_hostile_failure_visibly(hostile_api: str, tmp_path: Path) -> None:
    watching = subprocess.Popen(
        [
            BACKFILLS,
            "watch",
            "--every",
            "1h",
            "--team-id",
            str(TEAM),
            "--base-url",
            hostile_api,
            "--db",
            str(tmp_path / "b.duckdb"),
        ],
        cwd=tmp_path,
        env=backfills_env(**ENV),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    line = watching.stderr.readline().decode()  # the failed run's line: the watch carries on
    watching.send_signal(signal.SIGTERM)
    stdout, stderr = watching.communicate(timeout=60)
    assert watching.returncode == 0
    assert line.startswith("backfills: request rejected: listing backfills") and "(next try in 1h)" in line
    assert "\\x1b[2J" in line and "…" in line
    assert_safe(line + stdout.decode() + stderr.decode())
