"""The outbox: `alerts.outbox`, one row per event of analytics.alert_events and channel.

A build records the events that are new to it in its own transaction, so an event is in the
outbox exactly when the analytics tables that make it true are committed: a run killed before
the commit records nothing (the next build finds the event again), a run killed after it leaves
the row pending for the next run to deliver. Delivery (pipelines.alerts.delivery) only updates
the row's state: pending -> delivered, or pending again later with its attempts counted.

Rows are recorded `suppressed` instead of `pending`, never to be sent, when their kind is not in
`[alerts] events`, when the team or transfer is filtered out, and, in a channel's first build, for
every event that had happened by the team's last poll that an earlier build had built: alerting
that starts on an existing history (or a new channel) announces what happens from then on, not
everything that ever happened, and not less (what the first build with the channel is the first
to see is sent).
"""

from __future__ import annotations

from typing import Any

from ..incremental import ensure_schema, table_exists
from .settings import AlertSettings

OUTBOX = "alerts.outbox"
_TABLE = f"""create table if not exists {OUTBOX} (
    event_id varchar not null,
    channel varchar not null,
    kind varchar not null,
    team_id bigint not null,
    transfer_id bigint,
    transfer_name varchar,
    transfer_backfill_id bigint,
    status varchar,
    occurred_at timestamp with time zone,
    detail varchar,
    state varchar not null,
    recorded_at timestamp with time zone not null,
    attempts bigint not null,
    next_attempt_at timestamp with time zone,
    delivered_at timestamp with time zone,
    last_error varchar
)"""
CHANNELS = "alerts.channels"  # when each channel started: its first build's events are not sent
_CHANNELS = (
    f"create table if not exists {CHANNELS} (channel varchar not null, started_at timestamp with time zone)"
)
COLUMNS = (
    "event_id",
    "channel",
    "kind",
    "team_id",
    "transfer_id",
    "transfer_name",
    "transfer_backfill_id",
    "status",
    "occurred_at",
    "detail",
)


def record(client: Any, settings: AlertSettings) -> None:
    """Inside the build's transaction, after its data tests: every event of analytics.alert_events
    not yet in the outbox, once per configured channel."""
    ensure_schema(client, "alerts")
    client.execute_sql(_TABLE)
    client.execute_sql(_CHANNELS)
    values = ", ".join("%s" if c == "channel" else f"events.{c}" for c in COLUMNS)
    built_before = table_exists(client, BUILDS)
    for channel in settings.urls:
        first = not client.execute_sql(f"select count(*) from {CHANNELS} where channel = %s", channel)[0][0]
        state = f"case when {_wanted(settings)} then 'pending' else 'suppressed' end"
        if first and not built_before:  # alerting starts on a history never built: all of it was true
            state = "'suppressed'"
        elif first:  # what was true by the last poll an earlier build had built is suppressed
            state = f"case when events.occurred_at <= ({_KNOWN_BEFORE}) then 'suppressed' else {state} end"
        client.execute_sql(
            f"""insert into {OUTBOX} ({", ".join(COLUMNS)}, state, recorded_at, attempts, next_attempt_at)
            select {values}, {state}, now(), 0, now()
            from analytics.alert_events as events
            where not exists (
                select 1 from {OUTBOX} as known where known.event_id = events.event_id and known.channel = %s
            )""",
            channel,
            channel,
        )
        if first:
            client.execute_sql(f"insert into {CHANNELS} (channel, started_at) values (%s, now())", channel)


BUILDS = "analytics.model_builds"
# the API's time of the team's latest successful poll that the last good build had built
_KNOWN_BEFORE = f"""select coalesce(max(known.polled_at), events.occurred_at) from analytics.polls as known
    where known.team_id = events.team_id and known.outcome = 'ok'
    and known.poll_id <= (select max(through_poll_id) from {BUILDS} where outcome = 'ok')"""


def _wanted(settings: AlertSettings) -> str:
    """The SQL condition on `events` of what this configuration sends (literals it validated)."""
    kinds = ", ".join(f"'{k}'" for k in settings.kinds)
    condition = f"events.kind in ({kinds})"
    if settings.team_ids:
        condition += f" and events.team_id in ({', '.join(str(int(t)) for t in settings.team_ids)})"
    if settings.transfer_ids:
        listed = ", ".join(str(int(t)) for t in settings.transfer_ids)
        condition += f" and (events.transfer_id is null or events.transfer_id in ({listed}))"
    return condition
