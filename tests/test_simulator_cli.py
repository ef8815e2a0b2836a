"""`backfills simulate` as a user runs it: a subprocess serving a live, changing workload."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from email.utils import parsedate_to_datetime

import pytest
import requests
from cli_process import BACKFILLS, backfills_env, start_simulator

AUTH = {"Authorization": "Bearer sim-key"}


def test_simulate_serves_a_live_changing_workload() -> None:
    process, base_url = start_simulator("--speed", "600", "--seed", "3", "--fault", "list:503:1")
    try:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        url = f"{base_url}/teams/936506/backfills"
        assert requests.get(url, headers=AUTH, timeout=10).status_code == 503  # the injected fault
        first = requests.get(url, headers=AUTH, timeout=10)
        assert first.status_code == 200 and first.json()["data"], "the warm-up left work in progress"
        deadline = time.monotonic() + 30  # at 600x, 30 s is five simulated hours: runs finish long before
        while time.monotonic() < deadline:
            later = requests.get(url, headers=AUTH, timeout=10)
            if later.json()["data"] != first.json()["data"]:
                break
            time.sleep(0.05)
        assert later.json()["data"] != first.json()["data"], "the workload moves"
        assert parsedate_to_datetime(later.headers["Date"]) > parsedate_to_datetime(first.headers["Date"])
        assert requests.get(url, headers={"Authorization": "Bearer other"}, timeout=10).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    log = process.stderr.read()
    assert "GET /v1/teams/936506/backfills" in log and "sim-key" not in log


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--fault", "list:teapot"), "unknown fault kind 'teapot'"),
        (("--speed", "-5"), "Invalid value for '--speed'"),
        (("--transfers", "0"), "Invalid value for '--transfers'"),
        (("--port", "70000"), "Invalid value for '--port'"),
        (("--host", "0.0.0.0"), "--host 0.0.0.0 is not loopback, and /_sim"),
    ],
)
def test_simulate_rejects_bad_options(args: tuple[str, ...], words: str) -> None:
    result = subprocess.run(
        [BACKFILLS, "simulate", "--port", "0", *args],
        capture_output=True,
        text=True,
        env=backfills_env(),
        timeout=30,
    )
    assert result.returncode == 64, result.stderr  # a usage error (sysexits EX_USAGE)
    assert words in result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr


def test_a_busy_port_is_one_line_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [BACKFILLS, "simulate", "--port", str(port), "--warmup-hours", "0"],
            capture_output=True,
            text=True,
            env=backfills_env(),
            timeout=30,
        )
    assert result.returncode == 78
    assert result.stderr.splitlines() == [
        f"backfills: config error: cannot listen on 127.0.0.1:{port} (Address already in use): "
        "choose another --port, or 0 for a free one"
    ]


def test_help_shows_an_example() -> None:
    result = subprocess.run([BACKFILLS, "simulate", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "backfills simulate --port 8765 --speed 600" in result.stdout
