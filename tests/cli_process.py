"""Running the real `backfills` console script as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BACKFILLS = str(Path(sys.executable).with_name("backfills"))
KILL_AT = str(Path(__file__).with_name("kill_at.py"))  # `backfills` stopped at one moment inside dlt


def backfills_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__", "RUNTIME__"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_simulator(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `backfills simulate --port 0 ...`; returns the process and the base URL it printed."""
    process = subprocess.Popen(
        [BACKFILLS, "simulate", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=backfills_env(),
    )
    first = process.stdout.readline()
    if "serving" not in first:
        process.kill()
        raise AssertionError(f"simulator did not start: {first}{process.stderr.read()}")
    return process, first.split()[2]


def run_backfills(
    *args: str, cwd: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `backfills ARGS` to completion in `cwd` (so no repository .dlt/ applies)."""
    return subprocess.run(
        [BACKFILLS, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=backfills_env(**env)
    )


def ingest_args(base_url: str, db: Path, *extra: str) -> list[str]:
    """The arguments of `backfills ingest` for the test team against `base_url`, into `db`."""
    return ["ingest", "--team-id", "936506", "--base-url", base_url, "--db", str(db), *extra]
