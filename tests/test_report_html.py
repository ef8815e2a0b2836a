"""The HTML report in a real headless Chromium: it draws every chart offline, logs nothing to the
console, asks the network for nothing, and shows hostile text from the API as text."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_process import ingest_args, run_backfills
from conftest import TEAM, Api, Warehouse, add_transfer, days_ago
from PIL import Image

from pipelines.simulator import Simulator

HOSTILE_NAME = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='img'\">Ads"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1400,2200",
]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("BACKFILLS_REQUIRE_CHROMIUM"):
            pytest.fail("Chromium is required (BACKFILLS_REQUIRE_CHROMIUM=1) but not on PATH")
        pytest.skip("the HTML report's browser test needs chromium: scripts/ensure-chromium installs it")
    return found


def open_in_chromium(page: Path, tmp_path: Path, *action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *action, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def report_page(sim: Simulator, api: Api, warehouse: Warehouse, tmp_path: Path) -> Path:
    """A FAILED backfill of a transfer whose name is markup, a running one, a finished one; the
    HTML report an ingest wrote beside the copy for BI tools."""
    failing = add_transfer(sim, failure_rate=1.0)
    sim.world.rename_transfer(TEAM, failing, HOSTILE_NAME)
    api.create(failing, days_ago(2), days_ago(1))
    api.create(add_transfer(sim), days_ago(30), days_ago(1))
    api.create(add_transfer(sim), days_ago(1), days_ago(1))
    for _ in range(4):
        warehouse.ingest()
        sim.clock.advance(300)
    page = warehouse.db_path.parent / "published" / f"{warehouse.db_path.stem}.html"
    assert page.exists()  # each ingest writes it
    return page


@pytest.mark.slow
def test_the_html_report_draws_offline_and_keeps_hostile_text_inert(
    report_page: Path, tmp_path: Path
) -> None:
    text = report_page.read_text()
    assert "Content-Security-Policy" in text and not re.search(r"""(src|href)=["']?https?:""", text)
    dom = open_in_chromium(report_page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<title>Backfill report</title>" in dom.stdout  # no script of the name ran
    assert 'data-charts="5"' in dom.stdout  # all five charts drawn
    assert "&lt;script&gt;document.title=" in dom.stdout  # the name, shown as the text it is
    assert "<img" not in dom.stdout and "Needs a person (1)" in dom.stdout
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no error, and no request the page's policy refused
    shot = tmp_path / "report.png"
    taken = open_in_chromium(report_page, tmp_path, f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # text, cards and charts, not a blank page


def test_html_to_a_file_or_stdout_and_off_by_setting(sim: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "b.duckdb"
    args = ingest_args(sim.base_url, db)
    off = run_backfills(
        *args, cwd=tmp_path, SOURCES__SUPERMETRICS__API_KEY=sim.api_key, BACKFILLS__HTML_REPORT="false"
    )
    assert off.returncode == 0, off.stderr
    assert not (tmp_path / "published" / "b.html").exists()
    written = run_backfills(
        "report", "--db", str(db), "--format", "html", "--output", str(tmp_path / "r.html"), cwd=tmp_path
    )
    assert written.returncode == 0 and written.stdout == f"wrote {tmp_path / 'r.html'}\n"
    printed = run_backfills("report", "--db", str(db), "--format", "html", cwd=tmp_path)
    assert printed.stdout.startswith("<!doctype html>") and printed.stdout.rstrip().endswith("</html>")
