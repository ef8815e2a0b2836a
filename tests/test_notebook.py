"""notebooks/backfill_health.ipynb executes against a demo database and draws its plots."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from pipelines.demo import run_demo

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "backfill_health.ipynb"


def test_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_notebook_executes_and_plots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "data" / "demo.duckdb"
    run_demo(db, days=0.5)
    monkeypatch.setenv("BACKFILLS_DB", str(db))  # the kernel inherits the environment
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) == 5  # burn-up, run times, exact run durations, failure rates, error patterns


@pytest.mark.slow
def test_the_plots_end_lines_at_the_truth_and_keep_series_apart(tmp_path: Path) -> None:
    """A finished backfill's burn-up ends at its final count, every line has its own colour,
    the failure rates leave out transfers without runs and say each bar's n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipelines import analysis

    db = tmp_path / "data" / "demo.duckdb"
    run_demo(db, days=1)
    tables = analysis.load(db)
    backfills = tables["backfills"].set_index("transfer_backfill_id")
    fig, ax = plt.subplots()
    analysis.plot_burnup(tables["backfill_progress"], ax, backfills=15, final=tables["backfills"])
    lines = ax.get_lines()
    assert len(lines) > 10 and len({line.get_color() for line in lines}) == len(lines)
    finished = 0
    for line in lines:
        row = backfills.loc[int(line.get_label().split()[0])]
        if row["finished_at"] is not None and row["status"] in ("COMPLETED", "CANCELLED"):
            finished += 1
            assert line.get_ydata()[-1] == row["transfer_runs_completed"] + row["transfer_runs_failed"]
    assert finished > 0
    fig, ax = plt.subplots()
    analysis.plot_failure_rates(tables["transfer_failure_rates"], ax)
    rates = tables["transfer_failure_rates"]
    with_runs = rates[(rates["runs_completed"] + rates["runs_failed"]) > 0]
    shown = [text.get_text() for text in ax.texts]
    assert len(ax.patches) == len(with_runs) and all("/" in text for text in shown)
    plt.close("all")
