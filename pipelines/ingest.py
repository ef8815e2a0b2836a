"""One scheduled ingest run: lock, finish leftovers, diff against the database, poll, load.

with the engine's session:              # the run lock (overlapping cron ticks never run at
                                        # once) and a connection held for the run
    repair dlt's working folder         # whatever a stop left there (pipelines.working_folder)
    finish pending load packages        # a killed run's data loads before anything new
    settle loads                        # a job dlt loaded twice counts once (pipelines.settle)
    upgrade storage                     # what an older release stored (a bucket's plain Parquet)
    baseline = read from the database   # the only source of truth for change detection
    poll the API, load what changed     # the dlt source
    settle loads
    maintain storage                    # the bucket's Delta tables compacted when due
    build the models, publish           # where the engine builds in the run; a failed build is
                                        # recorded and published too
    deliver alerts                      # from the outbox the build filled (pipelines.alerts)

Each step asks the engine (pipelines.engines) how, never which engine it is. Ctrl-C or SIGTERM
at any step ends the run in one line, 130 or 143 (pipelines.stopping): a build cut short is
rolled back and not recorded, and the next run finishes the rest.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dlt
from dlt.common.configuration.exceptions import ConfigurationException
from dlt.common.exceptions import TerminalException
from dlt.pipeline.exceptions import PipelineStepFailed

from . import models, stopping
from .alerts import settings as alert_settings
from .alerts.delivery import DeliveryReport, deliver
from .alerts.settings import AlertSettings
from .engines import Connection, Warehouse, warehouse
from .models import BuildResult
from .publish import PublishResult
from .supermetrics import supermetrics
from .supermetrics.baseline import read_baseline
from .supermetrics.errors import ConfigError, ModelError, MonitorError, PublishError, causes
from .supermetrics.settings import DATASET_NAME, PIPELINE_NAME
from .supermetrics.snapshot import RunReport
from .working_folder import recover

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    report: RunReport
    db_path: Path
    built: BuildResult | None
    published: PublishResult | None  # None on PostgreSQL: BI tools read its analytics schema
    seconds: float
    database: str = ""  # what to call it: the file, or the PostgreSQL server and database
    alerts: DeliveryReport | None = None  # None: alerting is off


def working_dir(db_path: Path) -> Path:
    """dlt's local working folder belongs to one DuckDB file and lives beside it."""
    return Warehouse("duckdb", db_path).working_dir()


def target_of(db_path: Path, destination: str | None) -> Warehouse:
    """The configured warehouse, checked and made ready to be written."""
    target = warehouse(Path(db_path), destination)
    target.prepare()
    return target


def open_pipeline(target: Warehouse | Path) -> dlt.Pipeline:
    if not isinstance(target, Warehouse):
        target = Warehouse("duckdb", Path(target))
    target = target.for_dlt()
    return _pipeline_for(target.label, target)


@functools.cache  # one per database and process: `watch` and the demo reuse it run after run
def _pipeline_for(_label: str, target: Warehouse) -> dlt.Pipeline:
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=target.dlt_destination(),
        dataset_name=DATASET_NAME,
        pipelines_dir=str(target.working_dir()),
    )
    # The baseline comes from the tables themselves, never from dlt's pipeline state: syncing
    # that state with the destination on every run would cost time and buy nothing.
    pipeline.config.restore_from_destination = False
    # dlt's own handlers defer a first Ctrl-C or SIGTERM during normalize and load to checks that
    # a step may never reach, and then forget it: the run went on to the end. Without them the
    # signal stops the run at once, and the next run finishes its load (docs/exactly-once.md).
    pipeline.config.runtime.intercept_signals = False
    return pipeline


def ingest(
    db_path: Path,
    *,
    team_ids: list[int] | None = None,
    base_url: str | None = None,
    wait_lock: float = 0.0,
    rounds: int = 1,
    between_rounds: Callable[[], None] | None = None,
    build_models: bool = True,
    destination: str | None = None,
) -> IngestResult:
    """Poll every team once, load what changed, rebuild the models. Raises `MonitorError`.

    A run whose polls failed still loads the failed-poll rows (and rebuilds the models), then
    raises the first poll error. `rounds` and `between_rounds` are for the demo: see the source.
    `destination`: duckdb or postgres, else the configured one (pipelines.engines).
    """
    started = time.monotonic()
    target = target_of(db_path, destination)
    alerting = alert_settings.load()  # a bad [alerts] config stops the run before it polls
    if alerting.enabled:
        target.require("alerts")
    delivered = None
    with target.errors(), target.session(started, wait_lock) as con:
        with stopping.doing("finishing what an earlier run left"):
            pipeline = finish_earlier_runs(con, target)
        baseline = read_baseline(con, DATASET_NAME)
        report = RunReport()
        overrides = {k: v for k, v in (("team_ids", team_ids), ("base_url", base_url)) if v}
        source = _make_source(
            baseline=baseline, report=report, rounds=rounds, between_rounds=between_rounds, **overrides
        )
        with stopping.doing("polling and loading"):
            _run(
                target,
                lambda: pipeline.run(
                    source, loader_file_format=target.loader_file_format, table_format=target.table_format
                ),
            )
            for note in target.settle(con):
                log.warning(note)
        with stopping.doing("maintaining storage"):
            for note in target.maintain():
                log.info(note)
        built, published = None, None
        # after every run, a failed poll's included: it shows in analytics.polls at once
        if build_models and target.builds_in_run:
            built, published = _build_and_publish(pipeline, target, alerts=alerting)
            delivered = deliver_alerts(con, alerting)
    result = IngestResult(
        report,
        target.db_path,
        built,
        published,
        time.monotonic() - started,
        database=target.label,
        alerts=delivered,
    )
    if report.errors:
        error = report.errors[0]
        error.result = result  # what the other teams did, for the summary printed before the error
        raise error
    return result


def rebuild_models(
    db_path: Path,
    wait_lock: float = 0.0,
    full_refresh: bool = False,
    destination: str | None = None,
    alerts: bool = True,
) -> tuple[BuildResult, PublishResult | None]:
    """Build and publish the models of an existing database (`backfills models`), and deliver
    the alerts the build found (not with `alerts=False`: the demo's made-up history)."""
    started = time.monotonic()
    target = warehouse(Path(db_path), destination)
    target.require_existing()
    target.require("sql_models")
    alerting = alert_settings.load() if alerts else AlertSettings()
    with target.errors(), target.session(started, wait_lock) as con:
        with stopping.doing("finishing what an earlier run left"):
            pipeline = finish_earlier_runs(con, target)
        if read_baseline(con, DATASET_NAME).next_poll_id == 1:
            raise ConfigError(f"{target.label} holds no polls yet: run backfills ingest first")
        built = _build_and_publish(pipeline, target, full_refresh, alerting)
        deliver_alerts(con, alerting)
        return built


def deliver_alerts(con: Connection, alerting: AlertSettings) -> DeliveryReport | None:
    """Send what the build put in the alert outbox, within `max_seconds`; never fails the run (a
    receiver's trouble is a warning line, and the alerts stay pending for the next run)."""
    if not alerting.enabled:
        return None
    try:
        with stopping.doing("delivering alerts"):
            delivered = deliver(con, alerting)
    except Exception as exc:  # the run's data is committed: alerting must not turn it into a failure
        if stopping.received():  # a stop the database or HTTP library turned into its own error
            raise
        log.warning("alerts not delivered this run (%s); they stay pending", type(exc).__name__)
        return DeliveryReport(failures=[type(exc).__name__])
    if delivered.failures or delivered.left:
        log.warning(delivered.describe())
    return delivered


def _build_and_publish(
    pipeline: dlt.Pipeline, target: Warehouse, full_refresh: bool = False, alerts: AlertSettings | None = None
) -> tuple[BuildResult, PublishResult | None]:
    """Build the models and publish. A failed build is published too (analytics.model_builds says
    it failed, the other tables stay those of the last good build), then raised. What publishing
    means is the engine's: a copy for readers, or nothing where they read the database itself."""
    try:
        with stopping.doing("building the models"):
            built = _build_models(pipeline, target, full_refresh, alerts)
    except ModelError:
        with contextlib.suppress(PublishError):  # the failed build is the error to report
            _publish(target)
        raise
    published = _publish(target)
    if published is not None and html_report_wanted():
        _write_html_report(target)
    return built, published


def html_report_wanted() -> bool:
    """`[backfills] html_report` (BACKFILLS__HTML_REPORT), on unless set false."""
    value = dlt.config.get("backfills.html_report")
    return value is None or str(value).strip().lower() not in ("false", "0", "no", "off")


def _write_html_report(target: Warehouse) -> None:
    """The HTML report beside the copy for BI tools; trouble there is a warning, not a failure."""
    import duckdb

    from .report_html import html_path, write

    try:
        with stopping.doing("writing the HTML report"):
            write(target.db_path, html_path(target.db_path))
    except (OSError, MonitorError, duckdb.Error) as exc:
        log.warning("the HTML report was not written this run: %s", str(exc).splitlines()[0])


def _publish(target: Warehouse) -> PublishResult | None:
    with stopping.doing("publishing the copy for BI tools"):
        return target.publish(models.table_scopes())


def _build_models(
    pipeline: dlt.Pipeline, target: Warehouse, full_refresh: bool = False, alerts: AlertSettings | None = None
) -> BuildResult:
    try:
        return models.build(pipeline, DATASET_NAME, target, full_refresh=full_refresh, alerts=alerts)
    except MonitorError:
        raise
    except Exception as exc:
        known = target.known_error(exc)
        if known is not None:
            raise known from None
        raise


def finish_earlier_runs(con: Connection, target: Warehouse) -> dlt.Pipeline:
    """Finish what earlier runs left (a stopped one, a failed one), before the baseline is read,
    and say what was done in one warning line. Returns the run's dlt pipeline."""
    notes: list[str] = []
    pipeline, reloaded = finish_pending_loads(target, notes)
    notes += target.settle(con, reloaded)
    notes += target.upgrade_storage()
    target.expose_raw(con)
    if notes:
        log.warning("; ".join(notes))
    return pipeline


def finish_pending_loads(target: Warehouse, notes: list[str]) -> tuple[dlt.Pipeline, list[str]]:
    """Repair what a stopped run left in dlt's working folder (pipelines.working_folder), then
    load what it left pending. Returns the pipeline and the load ids of the packages that were
    pending in dlt's load folder: they may have been loaded before, and are settled again. Adds
    what it did to `notes`.

    A package that can never load (a terminal failure, or damaged files) would block every later
    run: it is dropped, saying why, and the rows it had loaded are removed.
    """
    recovery = recover(target.working_dir() / PIPELINE_NAME)
    notes += recovery.warnings
    if recovery.dropped_loads:
        target.discard(recovery.dropped_loads)
    pipeline = open_pipeline(target)
    if not pipeline.has_pending_data:
        return pipeline, []
    notes.append("loaded data a previous run left pending")
    pending = list(pipeline.list_normalized_load_packages())
    target.reloading(pending)
    try:
        _run(target, pipeline.run)
    except MonitorError:
        raise
    except PipelineStepFailed as failed:
        if not _is_terminal(failed):
            raise
        load_ids = list(pipeline.list_normalized_load_packages())
        pipeline.abort_packages()
        removed = target.discard(load_ids)
        notes.append(
            f"dropped a pending load package that cannot load ({removed} row(s) it had loaded "
            f"removed): {_root_cause(failed)}"
        )
    return pipeline, pending


def _make_source(**kwargs: object) -> dlt.sources.DltSource:
    try:
        return supermetrics(**kwargs)
    except ConfigurationException as exc:
        raise ConfigError(_config_message(exc)) from None


def _config_message(exc: ConfigurationException) -> str:
    missing = getattr(exc, "fields", None)
    if missing:
        names = ", ".join(missing)
        return (
            f"missing configuration: {names}. Set it under [sources.supermetrics] in .dlt/config.toml "
            f"(api_key in .dlt/secrets.toml) or as SOURCES__SUPERMETRICS__{missing[0].upper()}"
        )
    field = getattr(exc, "field_name", None)
    if field == "team_ids":
        return f"team_ids must be a list of team ids, such as team_ids = [936506], not {exc.field_value!r}"
    if field:
        expected = getattr(exc.hint, "__name__", exc.hint)
        return f"the configured {field} = {exc.field_value!r} is not of type {expected}"
    return f"bad configuration: {str(exc).splitlines()[0]}"


def _run(target: Warehouse, step: Callable[[], object]) -> None:
    """Run a dlt step; our own errors and a locked database come out as their `MonitorError`."""
    try:
        step()
    except PipelineStepFailed as failed:
        cause = _monitor_error(failed)
        if cause is not None:
            raise cause from None
        known = target.known_error(failed)
        if known is not None:
            raise known from None
        raise


def _monitor_error(exc: BaseException) -> MonitorError | None:
    return next((e for e in causes(exc) if isinstance(e, MonitorError)), None)


def _root_cause(exc: BaseException) -> str:
    root = list(causes(exc))[-1]
    return (str(root).strip().splitlines() or [type(root).__name__])[0]


def _is_terminal(exc: BaseException) -> bool:
    return any(isinstance(e, TerminalException) for e in causes(exc))
