"""`backfills alerts`: deliver, preview (--dry-run) and test the alert channels."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..supermetrics.errors import ConfigError
from ..text import clean

if TYPE_CHECKING:
    from ..alerts.settings import AlertSettings

from .app import main
from .options import (
    DB_OPTION,
    WAIT_LOCK_OPTION,
)


@main.command()
@DB_OPTION
@WAIT_LOCK_OPTION
@click.option(
    "--dry-run", is_flag=True, help="Print the pending alerts and what each would say; send nothing."
)
@click.option("--test", "send_test", is_flag=True, help="Send one test message to each configured channel.")
def alerts(db_path: Path, destination: str | None, wait_lock: float, dry_run: bool, send_test: bool) -> None:
    """Deliver the pending alerts now (ingest does it after every run), or check the channels.

    Channels: [alerts] webhook_url and slack_webhook_url in .dlt/secrets.toml. Exit 0 when every
    pending alert was delivered (or --test reached every channel), 69 when a receiver failed
    (the alerts stay pending), 78 when no channel is configured (--dry-run then shows the events
    true now, as alerts would word them).

    \b
    Example:
        backfills alerts --test
        backfills alerts --dry-run
    """
    from ..alerts import delivery
    from ..alerts import settings as alert_settings
    from ..supermetrics.errors import ApiUnavailableError

    settings = alert_settings.load()
    if not settings.enabled and dry_run:
        preview_alerts(db_path, destination, settings)
        return
    if not settings.enabled:
        raise ConfigError(
            "no alert channel is configured: set [alerts] webhook_url or slack_webhook_url in "
            ".dlt/secrets.toml (or ALERTS__WEBHOOK_URL, ALERTS__SLACK_WEBHOOK_URL)"
        )
    if send_test:
        import requests

        failed = []
        for channel, url in settings.urls.items():
            payload, key = delivery.test_message(channel)
            error = delivery.post(requests.Session(), url, payload, key, settings)
            click.echo(f"{channel}: {'test message sent' if error is None else 'failed: ' + error}")
            if error is not None:
                failed.append(f"{channel}: {error}")
        if failed:
            raise ApiUnavailableError(f"the test message did not reach {'; '.join(failed)}")
        return
    if dry_run:  # the outbox is in the database itself (the copy for BI tools has analytics only)
        from ..engines import warehouse

        target = warehouse(db_path, destination)
        target.require_existing()
        with target.connect(read_only=True) as con:
            rows = delivery.pending(con)
        for row in rows:
            tried = f" (tried {row['attempts']}x: {row['last_error']})" if row["attempts"] else ""
            click.echo(f"{row['channel']}: {clean(delivery.summary(row))}{tried}")
        click.echo(f"{len(rows)} pending alert(s); nothing sent (--dry-run)")
        return
    from ..ingest import target_of

    target = target_of(db_path, destination)
    target.require_existing()
    with target.errors(), target.session(time.monotonic(), wait_lock) as con:
        report = delivery.deliver(con, settings, max_seconds=float("inf"), due_only=False)
    click.echo(report.describe())
    if report.failures:
        raise ApiUnavailableError(
            f"{len(report.failures)} alert delivery(ies) failed ({'; '.join(sorted(set(report.failures)))}); "
            "they stay pending"
        )


def preview_alerts(db_path: Path, destination: str | None, settings: AlertSettings) -> None:
    """`alerts --dry-run` before any channel exists: the events that are true now, as a channel
    would word them (kinds and filters as configured)."""
    from ..alerts import delivery
    from ..engines import warehouse

    target = warehouse(db_path, destination)
    target.require_existing()
    with target.connect(read_only=True) as con:
        events = [e for e in con.records("select * from analytics.alert_events") if settings.wants(e)]
    events.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    for event in events:
        click.echo(clean(delivery.summary(event)))
    click.echo(
        f"{len(events)} event(s) true now, as alerts would say them; no channel is configured, nothing "
        "sent. A channel set up now sends what happens from its first run on."
    )
