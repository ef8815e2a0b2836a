"""Delivering the outbox: a JSON webhook (one POST per event) and Slack (one message per event,
grouped when many are due at once). At least once: a run killed after a receiver accepted an
event but before its row was marked sends it again, with the same `Idempotency-Key` (the
event_id) for the receiver to drop it.

Never more than `max_seconds` in a run, each request at most `request_timeout`; redirects are
not followed (a webhook URL is a secret: it is never sent elsewhere, printed or logged; failures
name the channel and the HTTP status or the kind of network error only). A failed delivery stays
pending with its attempt counted, and is tried again after `retry_after_seconds`, doubling with
each attempt up to an hour.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from ..engines import Connection
from ..text import MAX_TEXT, shorten
from .outbox import OUTBOX
from .settings import AlertSettings

SLACK_GROUP_OVER = 3  # more due Slack events than this go out as grouped messages
SLACK_GROUP_SIZE = 20  # events per grouped message
MAX_BACKOFF = timedelta(hours=1)
USER_AGENT = "supermetrics-backfill-monitor-alerts"


@dataclass
class DeliveryReport:
    delivered: int = 0
    failures: list[str] = field(default_factory=list)  # "webhook: HTTP 500", one per failed request
    left: int = 0  # due, not tried: the run's time for alerts was up

    def describe(self) -> str:
        text = f"alerts: {self.delivered} delivered"
        if self.failures:
            text += (
                f", {len(self.failures)} failed ({'; '.join(sorted(set(self.failures)))}; tried again later)"
            )
        if self.left:
            text += f", {self.left} left for the next run (max_seconds)"
        return text


def deliver(
    con: Connection, settings: AlertSettings, max_seconds: float | None = None, due_only: bool = True
) -> DeliveryReport:
    """Send the pending rows that are due (all pending ones when not `due_only`)."""
    report, now = DeliveryReport(), datetime.now(UTC)
    deadline = time.monotonic() + (settings.max_seconds if max_seconds is None else max_seconds)
    due = pending(con, now if due_only else None)
    session = requests.Session()
    for channel, url in settings.urls.items():
        rows = [r for r in due if r["channel"] == channel]
        for batch in _batches(channel, rows):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                report.left += len(batch)
                continue
            error = post(session, url, _payload(channel, batch), batch[0]["event_id"], settings, remaining)
            if error is None:
                _mark_delivered(con, channel, batch)
                report.delivered += len(batch)
            else:
                _mark_failed(con, channel, batch, error, settings, now)
                report.failures.append(f"{channel}: {error}")
    return report


def pending(con: Connection, due_at: datetime | None = None) -> list[dict[str, Any]]:
    """The pending rows, oldest event first; those due by `due_at` when given."""
    if not con.rows(
        "select count(*) from information_schema.tables "
        "where table_schema = 'alerts' and table_name = 'outbox'"
    )[0][0]:
        return []
    due = "" if due_at is None else "and next_attempt_at <= %s"
    return con.records(
        f"select * from {OUTBOX} where state = 'pending' {due} order by occurred_at, event_id, channel",
        *([due_at] if due_at is not None else []),
    )


def post(
    session: requests.Session,
    url: str,
    payload: dict[str, Any],
    key: str,
    settings: AlertSettings,
    remaining: float | None = None,
) -> str | None:
    """POST one payload; None when the receiver took it (2xx), else why not, without the URL."""
    timeout = (
        settings.request_timeout if remaining is None else max(0.1, min(settings.request_timeout, remaining))
    )
    try:
        response = session.post(
            url,
            json=payload,
            headers={"Idempotency-Key": key, "User-Agent": USER_AGENT},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.Timeout:
        return f"no answer within {timeout:g} s"
    except requests.ConnectionError:
        return "cannot connect"
    except requests.RequestException as exc:
        return type(exc).__name__
    if 300 <= response.status_code < 400:
        return f"HTTP {response.status_code}: a redirect, not followed"
    if not 200 <= response.status_code < 300:
        return f"HTTP {response.status_code}"
    return None


def test_message(channel: str) -> tuple[dict[str, Any], str]:
    """`backfills alerts --test`: one message that says what it is, and its idempotency key (the
    same in the header and the body, as for every alert; new each time, so that a receiver which
    deduplicates by it takes every test)."""
    text = "Test message from the Supermetrics backfill monitor: alerts reach this channel."
    key = f"test:{datetime.now(UTC):%Y%m%dT%H%M%S.%f}"
    if channel == "slack":
        return {"text": text}, key
    return {"idempotency_key": key, "event": "test", "text": text}, key


def summary(row: dict[str, Any]) -> str:
    """One line for people (untrusted text stripped of control characters and capped)."""
    kind, detail = row["kind"], plain(row["detail"] or "")
    if row["transfer_backfill_id"] is None:
        what = {"polls_failing": "polls failing", "no_success": "no successful poll"}.get(kind, kind)
        if kind == "rate_budget_low":
            what = "rate-limit budget low"
        return f"Team {row['team_id']}: {what}: {detail}"
    transfer = plain(row["transfer_name"] or "", 60) or "transfer"
    verb = {
        "failed": "FAILED",
        "completed": "COMPLETED",
        "cancelled": "was CANCELLED",
        "stalled": "is stalled",
        "running_long": "is running long",
    }[kind]
    return (
        f"Backfill {row['transfer_backfill_id']} of {transfer} ({row['transfer_id']}), "
        f"team {row['team_id']}, {verb}: {detail}"
    )


def webhook_payload(row: dict[str, Any]) -> dict[str, Any]:
    occurred = row["occurred_at"]
    return {
        "idempotency_key": row["event_id"],
        "event": row["kind"],
        "occurred_at": occurred.astimezone(UTC).isoformat().replace("+00:00", "Z") if occurred else None,
        "team_id": row["team_id"],
        "transfer_id": row["transfer_id"],
        "transfer_name": plain(row["transfer_name"]) if row["transfer_name"] else None,
        "transfer_backfill_id": row["transfer_backfill_id"],
        "backfill": (
            f"{row['team_id']}/{row['transfer_backfill_id']}"
            if row["transfer_backfill_id"] is not None
            else None
        ),
        "status": row["status"],
        "detail": plain(row["detail"] or ""),
        "text": summary(row),
    }


def plain(text: str, limit: int = MAX_TEXT) -> str:
    """Outside text for a message: control and format characters removed, capped at `limit`."""
    kept = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in str(text))
    return shorten(" ".join(kept.split()), limit)


def _slack_text(text: str) -> str:
    """Slack's three control characters escaped: API text can never mention @channel or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _payload(channel: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    if channel == "webhook":
        return webhook_payload(batch[0])
    if len(batch) == 1:
        return {"text": _slack_text(summary(batch[0]))}
    lines = [f"{len(batch)} backfill alerts:"] + [f"• {_slack_text(summary(row))}" for row in batch]
    return {"text": "\n".join(lines)}


def _batches(channel: str, rows: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    if channel != "slack" or len(rows) <= SLACK_GROUP_OVER:
        return ([row] for row in rows)
    return (rows[i : i + SLACK_GROUP_SIZE] for i in range(0, len(rows), SLACK_GROUP_SIZE))


def _mark_delivered(con: Connection, channel: str, batch: list[dict[str, Any]]) -> None:
    with con.transaction():
        for row in batch:
            con.run(
                f"update {OUTBOX} set state = 'delivered', delivered_at = %s, attempts = attempts + 1, "
                "last_error = null where event_id = %s and channel = %s",
                datetime.now(UTC),
                row["event_id"],
                channel,
            )


def _mark_failed(
    con: Connection,
    channel: str,
    batch: list[dict[str, Any]],
    error: str,
    settings: AlertSettings,
    now: datetime,
) -> None:
    with con.transaction():
        for row in batch:
            wait = min(timedelta(seconds=settings.retry_after_seconds * 2 ** row["attempts"]), MAX_BACKOFF)
            con.run(
                f"update {OUTBOX} set attempts = attempts + 1, next_attempt_at = %s, last_error = %s "
                "where event_id = %s and channel = %s",
                now + wait,
                error,
                row["event_id"],
                channel,
            )
