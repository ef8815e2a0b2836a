"""Load the analytics tables into pandas and draw the plots of notebooks/backfill_health.ipynb.

The notebook only calls these functions, so that its logic is tested and reusable.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from .engines import warehouse
from .supermetrics.errors import ConfigError
from .text import transfer_label

TABLES = ("backfills", "backfill_progress", "transfer_failure_rates", "backfill_errors", "backfill_runs")


def load(db_path: str | Path, destination: str | None = None) -> dict[str, pd.DataFrame]:
    """The analytics tables as DataFrames, from what readers open (pipelines.engines): on DuckDB the
    published copy when there is one (it never blocks ingest), else the file; on PostgreSQL (the
    configured destination, or `destination`) its analytics schema."""
    try:
        source = warehouse(Path(db_path), destination).reader()
    except ConfigError as error:
        raise FileNotFoundError(str(error)) from None  # (`make demo` makes one)
    with source.connect(read_only=True) as con:
        return {table: con.frame(f"select * from analytics.{table}") for table in TABLES}


def _distinct_colours(count: int) -> list:
    """As many colours as lines, none repeated (matplotlib's cycle repeats after 10)."""
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:  # tab20's strong shades first, then their light twins
        order = [*range(0, 20, 2), *range(1, 20, 2)]
        return [colormaps["tab20"](order[i]) for i in range(count)]
    return [colormaps["turbo"](i / (count - 1)) for i in range(count)]


def _readable_dates(ax) -> None:
    """Date ticks a person reads at a glance ("Jan 07", "14:00"), not "01-07 14"."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def plot_burnup(progress: pd.DataFrame, ax, backfills: int = 12, final: pd.DataFrame | None = None) -> None:
    """Runs done (completed + failed) of the most recent backfills over time, one line each, labelled
    at its end. With `final` (analytics.backfills), a finished backfill's line ends at its final
    count when it finished: the list stops showing it before that."""
    recent = progress.groupby("transfer_backfill_id")["polled_at"].min().nlargest(backfills).index
    chosen = progress[progress["transfer_backfill_id"].isin(recent)]
    colours = _distinct_colours(len(recent))
    ends = {}
    if final is not None:
        finished = final[final["finished_at"].notna()]
        ends = {
            row.transfer_backfill_id: (
                row.finished_at,
                row.transfer_runs_completed + row.transfer_runs_failed,
            )
            for row in finished.itertuples()
        }
    for colour, (backfill_id, rows) in zip(colours, chosen.groupby("transfer_backfill_id"), strict=False):
        rows = rows.sort_values("polled_at")
        times = list(rows["polled_at"])
        done = list(rows["transfer_runs_completed"] + rows["transfer_runs_failed"])
        if backfill_id in ends and ends[backfill_id][0] > times[-1]:
            times.append(ends[backfill_id][0])
            done.append(ends[backfill_id][1])
        total = rows["transfer_runs_total"].iat[-1]
        ax.step(times, done, where="post", color=colour, label=f"{backfill_id} ({total} runs)")
        ax.annotate(
            str(backfill_id),
            (times[-1], done[-1]),
            color=colour,
            fontsize="x-small",
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
        )
    ax.set(title="Burn-up: runs done per backfill", xlabel="poll time (UTC)", ylabel="runs done")
    _readable_dates(ax)
    ax.legend(title="backfill (runs)", fontsize="x-small", ncol=2, loc="upper left")


def plot_run_times(backfills: pd.DataFrame, ax) -> None:
    """Run time of completed backfills per transfer, in hours, with each transfer's median and p95."""
    done = backfills[(backfills["status"] == "COMPLETED") & backfills["run_seconds"].notna()]
    groups = sorted(
        done.groupby(["transfer_id", "transfer_name"], dropna=False),
        key=lambda item: item[1]["run_seconds"].median(),
    )
    hours = [rows["run_seconds"] / 3600 for _, rows in groups]
    labels = [transfer_label(name, transfer) for (transfer, name), _ in groups]
    if hours:
        ax.boxplot(hours, tick_labels=labels, vert=False, whis=(5, 95))
        for y, values in enumerate(hours, start=1):
            ax.plot(values.quantile(0.95), y, "r|", markersize=14)
    ax.set(
        title="Run time of completed backfills (box: median and quartiles; red: p95)",
        xlabel="hours",
        ylabel="transfer",
    )


def plot_run_durations(runs: pd.DataFrame, ax) -> None:
    """Duration of each completed backfill run per transfer, in minutes, from the exact runs
    (analytics.backfill_runs: the API's total_duration), slowest median at the top."""
    done = runs[(runs["status"] == "COMPLETED") & runs["duration_seconds"].notna()]
    groups = sorted(
        done.groupby(["transfer_id", "transfer_name"], dropna=False),
        key=lambda item: item[1]["duration_seconds"].median(),
    )
    minutes = [rows["duration_seconds"] / 60 for _, rows in groups]
    if minutes:
        ax.boxplot(
            minutes, tick_labels=[transfer_label(n, t) for (t, n), _ in groups], vert=False, whis=(5, 95)
        )
    else:
        ax.set_title("no completed runs stored yet")
    ax.set(
        title="Duration of completed backfill runs (exact, runs endpoint; whiskers: p5 and p95)",
        xlabel="minutes",
        ylabel="transfer",
    )


def plot_failure_rates(rates: pd.DataFrame, ax) -> None:
    """Share of transfer runs that failed, per transfer with runs, worst at the top, each bar with
    its n (the runs it is out of)."""
    with_runs = rates[(rates["runs_completed"] + rates["runs_failed"]) > 0]
    ordered = with_runs.assign(failure_rate=with_runs["failure_rate"].fillna(0)).sort_values("failure_rate")
    labels = [
        transfer_label(n, t) for n, t in zip(ordered["transfer_name"], ordered["transfer_id"], strict=True)
    ]
    bars = ax.barh(labels, 100 * ordered["failure_rate"])
    runs = (ordered["runs_completed"] + ordered["runs_failed"]).astype(int)
    failed = ordered["runs_failed"].astype(int)
    ax.bar_label(
        bars, labels=[f"{f}/{n}" for f, n in zip(failed, runs, strict=True)], padding=3, fontsize="small"
    )
    ax.set(
        title="Failed transfer runs per transfer (label: failed/n)",
        xlabel="% of runs failed",
        ylabel="transfer",
    )
    ax.margins(x=0.15)  # room for the labels


def plot_error_patterns(errors: pd.DataFrame, ax, patterns: int = 6) -> None:
    """New errors per day, stacked by their most frequent normalised patterns."""
    if errors.empty:
        ax.set(title="Error patterns over time: no errors yet")
        return
    top = errors["error_pattern"].value_counts().index[:patterns]
    daily = errors.assign(
        day=errors["first_seen_at"].dt.tz_convert("UTC").dt.date,
        pattern=errors["error_pattern"].where(errors["error_pattern"].isin(top), "other"),
    ).pivot_table(index="day", columns="pattern", values="error", aggfunc="count", fill_value=0)
    daily.plot.bar(stacked=True, ax=ax, width=0.8, color=_distinct_colours(len(daily.columns)))
    ax.set(title="New errors per day by pattern", xlabel="day first seen (UTC)", ylabel="errors")
    ax.set_xticklabels([f"{day:%b %d}" for day in daily.index], rotation=0)
    labels = [textwrap.shorten(label, 70, placeholder=" …") for label in daily.columns]  # whole words
    ax.legend(fontsize="x-small", loc="upper left", labels=labels)
