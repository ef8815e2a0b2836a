"""Alerts arrive at a real receiver on 127.0.0.1: each event once, after outages and kills, and
never at the cost of the run.

Timings (conftest.FIXED_TIMING): a backfill created at T is SCHEDULED at T+60 and RUNNING at
T+120; each of its runs (the transfer's median, 100 s here) ends 110 s after the previous; it
finishes at T+130+n*110. So a one-day backfill created at START is COMPLETED (or FAILED) at
START+240, and its first run is the only progress a 3000-second run makes until START+3130.
"""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cli_process import BACKFILLS, backfills_env, ingest_args, run_backfills
from conftest import START, TEAM, Api, Warehouse, add_transfer, days_ago
from receiver import Receiver

from pipelines.alerts.settings import KINDS
from pipelines.engines import Warehouse as Target
from pipelines.simulator import Simulator
from pipelines.supermetrics.errors import ApiUnavailableError

ALL_KINDS = json.dumps(KINDS)


def poll_at(sim: Simulator, warehouse: Warehouse, seconds: float) -> None:
    sim.clock.advance(START + timedelta(seconds=seconds) - sim.clock.now())
    warehouse.ingest()


@pytest.fixture
def receiver() -> Receiver:
    with Receiver() as running:
        yield running


@pytest.fixture
def alerting(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Both channels at the receiver, every kind, retries due at once (no test waits)."""
    env = {
        "ALERTS__WEBHOOK_URL": f"{receiver.url}/hook",
        "ALERTS__SLACK_WEBHOOK_URL": f"{receiver.url}/slack",
        "ALERTS__EVENTS": ALL_KINDS,
        "ALERTS__RETRY_AFTER_SECONDS": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def events(receiver: Receiver) -> list[tuple[str, int | None]]:
    """(kind, backfill) of every webhook delivery the receiver accepted, in arrival order."""
    return [(r.body["event"], r.body["transfer_backfill_id"]) for r in receiver.accepted("/hook")]


def outbox(warehouse: Warehouse) -> list[tuple]:
    return warehouse.rows(
        "select channel, kind, transfer_backfill_id, state, attempts from alerts.outbox "
        "order by channel, kind, transfer_backfill_id"
    )


def test_every_backfill_event_arrives_once(
    sim: Simulator, api: Api, warehouse: Warehouse, receiver: Receiver, alerting: dict, monkeypatch
) -> None:
    monkeypatch.setenv("MODELS__STALL_AFTER_HOURS", "0.1")  # 360 s without progress
    monkeypatch.setenv("ALERTS__RUNNING_LONG_FACTOR", "1.5")  # 1.5 x the transfer's median run time
    warehouse.ingest()  # alerting starts on an empty history
    steady, failing, slow = (
        add_transfer(sim),
        add_transfer(sim, failure_rate=1.0),
        add_transfer(sim, run_seconds=3000),
    )
    completed = api.create(steady, days_ago(1), days_ago(1))["transfer_backfill_id"]
    failed = api.create(failing, days_ago(1), days_ago(1))["transfer_backfill_id"]
    stalled = api.create(slow, days_ago(1), days_ago(1))["transfer_backfill_id"]
    cancelled = api.create(steady, days_ago(5), days_ago(4), team=TEAM)["transfer_backfill_id"]
    poll_at(sim, warehouse, 60)
    sim.clock.advance(40)
    sim.world.cancel(TEAM, cancelled, 789)  # queued behind the three others: it never ran
    poll_at(sim, warehouse, 300)  # completed and failed at 240; cancelled at 100
    assert sorted(events(receiver)) == sorted(
        [("completed", completed), ("failed", failed), ("cancelled", cancelled)]
    )

    # the steady transfer's median run time is now 120 s (RUNNING at 120, COMPLETED at 240):
    # a three-day backfill created at 300 runs from 420 and passes 1.5 x 120 s at 600
    long_running = api.create(steady, days_ago(3), days_ago(1))["transfer_backfill_id"]
    poll_at(sim, warehouse, 620)
    poll_at(sim, warehouse, 700)  # the slow one: first seen RUNNING at 300, no progress for 400 s
    poll_at(sim, warehouse, 720)  # nothing new: nothing sent again
    assert sorted(events(receiver)) == sorted(
        [
            ("completed", completed),
            ("failed", failed),
            ("cancelled", cancelled),
            ("stalled", stalled),
            ("running_long", long_running),
        ]
    )
    assert len(receiver.accepted("/slack")) == 5  # one message each: never more than 3 at once
    assert {r.headers["Idempotency-Key"] for r in receiver.accepted("/hook")} == {
        r.body["idempotency_key"] for r in receiver.accepted("/hook")
    }
    assert all(state == "delivered" and attempts == 1 for *_, state, attempts in outbox(warehouse))


def test_team_events_arrive_once(
    sim: Simulator, api: Api, warehouse: Warehouse, receiver: Receiver, alerting: dict, monkeypatch
) -> None:
    monkeypatch.setenv("ALERTS__POLLS_FAILING_AFTER", "2")
    monkeypatch.setenv("ALERTS__NO_SUCCESS_MINUTES", "10")
    monkeypatch.setenv("ALERTS__RATE_LIMIT_BELOW", "100")
    poll_at(sim, warehouse, 0)
    sim.faults.add(kind="503", endpoint="list", times=100)  # every attempt of every poll fails
    for seconds in (300, 600, 900):  # two failed polls in a row at 600; no success for 15 min at 900
        with pytest.raises(ApiUnavailableError):
            poll_at(sim, warehouse, seconds)
    assert events(receiver) == [("polls_failing", None), ("no_success", None)]
    polls_failing, no_success = receiver.accepted("/hook")
    assert polls_failing.body["text"].startswith(f"Team {TEAM}: polls failing: 2 polls failed in a row")
    assert no_success.body["detail"] == "no successful poll for 15 minutes (3 failed polls)"

    sim.faults.clear()
    sim.rate_limiter.limit = 105  # the next answers say X-RateLimit-Remaining under 100
    poll_at(sim, warehouse, 1200)
    poll_at(sim, warehouse, 1500)  # still low: the same episode, no new event
    kinds = [kind for kind, _ in events(receiver)]
    assert kinds == ["polls_failing", "no_success", "rate_budget_low"]


def test_a_receiver_that_is_down_gets_each_event_once_later(
    sim: Simulator, api: Api, warehouse: Warehouse, receiver: Receiver, alerting: dict
) -> None:
    warehouse.ingest()
    failed = api.create(add_transfer(sim, failure_rate=1.0), days_ago(1), days_ago(1))["transfer_backfill_id"]
    receiver.statuses = [503, 503]  # the webhook's and Slack's first attempts
    poll_at(sim, warehouse, 300)
    assert events(receiver) == [] and len(receiver.requests) == 2
    assert outbox(warehouse) == [
        ("slack", "failed", failed, "pending", 1),
        ("webhook", "failed", failed, "pending", 1),
    ]
    cli = {**alerting, "SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
    db = ["--db", str(warehouse.db_path)]
    dry = run_backfills("alerts", "--dry-run", *db, cwd=warehouse.db_path.parent, **cli)
    line = f"Backfill {failed} of transfer (456001), team {TEAM}, FAILED: 1 of 1 runs failed"
    line += " (tried 1x: HTTP 503)"
    assert dry.returncode == 0 and dry.stdout.splitlines() == [
        f"slack: {line}",
        f"webhook: {line}",
        "2 pending alert(s); nothing sent (--dry-run)",
    ]
    assert len(receiver.requests) == 2
    now = run_backfills("alerts", *db, cwd=warehouse.db_path.parent, **cli)  # up again: deliver now
    assert now.returncode == 0 and now.stdout == "alerts: 2 delivered\n", now.stderr
    poll_at(sim, warehouse, 600)
    poll_at(sim, warehouse, 900)
    assert events(receiver) == [("failed", failed)] and len(receiver.accepted("/slack")) == 1
    assert [state for *_, state, _ in outbox(warehouse)] == ["delivered", "delivered"]


def test_a_hanging_receiver_never_holds_the_run(
    sim: Simulator, api: Api, warehouse: Warehouse, receiver: Receiver, alerting: dict, monkeypatch
) -> None:
    monkeypatch.setenv("ALERTS__REQUEST_TIMEOUT", "1")
    warehouse.ingest()
    api.create(add_transfer(sim, failure_rate=1.0), days_ago(1), days_ago(1))
    receiver.hold()  # the first request never gets an answer
    poll_at(sim, warehouse, 300)  # returns although the receiver still holds that request
    assert receiver.waiting.is_set() and receiver.accepted("/hook") == []
    states = {channel: (state, attempts) for channel, _, _, state, attempts in outbox(warehouse)}
    assert states["webhook"] == ("pending", 1)  # no answer in time: tried again next run
    receiver.release()
    poll_at(sim, warehouse, 600)
    assert [kind for kind, _ in events(receiver)].count("failed") >= 1


def test_alerting_started_on_an_old_history_sends_only_what_happens_next(
    sim: Simulator, api: Api, warehouse: Warehouse, receiver: Receiver, monkeypatch
) -> None:
    old = api.create(add_transfer(sim, failure_rate=1.0), days_ago(1), days_ago(1))["transfer_backfill_id"]
    poll_at(sim, warehouse, 60)
    poll_at(sim, warehouse, 300)  # FAILED, with no alerting configured
    monkeypatch.setenv("ALERTS__WEBHOOK_URL", f"{receiver.url}/hook")
    monkeypatch.setenv("ALERTS__RETRY_AFTER_SECONDS", "0")
    poll_at(sim, warehouse, 600)
    assert receiver.requests == []
    assert outbox(warehouse) == [("webhook", "failed", old, "suppressed", 0)]
    new = api.create(add_transfer(sim, failure_rate=1.0), days_ago(1), days_ago(1))["transfer_backfill_id"]
    poll_at(sim, warehouse, 900)
    poll_at(sim, warehouse, 1200)
    assert events(receiver) == [("failed", new)]


def test_slack_gets_readable_grouped_messages_that_cannot_ping_anyone(
    sim: Simulator, api: Api, warehouse: Warehouse, receiver: Receiver, alerting: dict
) -> None:
    transfer = add_transfer(sim, failure_rate=1.0)
    sim.world.rename_transfer(TEAM, transfer, "Ads <!channel> \x1b[31mEU")
    warehouse.ingest()  # the transfer list names it
    sim.world.max_running = 10
    for day in range(1, 6):
        api.create(transfer, days_ago(day), days_ago(day))
    poll_at(sim, warehouse, 1000)  # five FAILED at once: one grouped message
    [message] = receiver.accepted("/slack")
    assert set(message.body) == {"text"}
    lines = message.body["text"].splitlines()
    assert lines[0] == "5 backfill alerts:" and len(lines) == 6
    assert all(line.startswith("• Backfill ") and " FAILED: 1 of 1 runs failed" in line for line in lines[1:])
    assert lines[1].startswith(
        "• Backfill 10001 of Ads &lt;!channel&gt; [31mEU (456001), team 936506, FAILED"
    )
    assert "<!channel>" not in message.body["text"]
    assert "\x1b" not in message.body["text"]
    hook = receiver.accepted("/hook")
    assert len(hook) == 5 and hook[0].body["transfer_name"] == "Ads <!channel> [31mEU"


@pytest.mark.slow
def test_a_run_killed_while_delivering_sends_again_with_the_same_key(
    sim: Simulator, api: Api, tmp_path: Path, receiver: Receiver, alerting: dict, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "data" / "b.duckdb"
    env = {**alerting, "SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
    assert run_backfills(*ingest_args(sim.base_url, db), cwd=tmp_path, **env).returncode == 0
    failed = api.create(add_transfer(sim, failure_rate=1.0), days_ago(1), days_ago(1))["transfer_backfill_id"]
    sim.clock.advance(300)
    receiver.hold()
    victim = subprocess.Popen(
        [BACKFILLS, *ingest_args(sim.base_url, db)],
        cwd=tmp_path,
        env=backfills_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert receiver.waiting.wait(timeout=120)  # committed, and the first delivery under way
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    receiver.release()
    again = run_backfills(*ingest_args(sim.base_url, db), cwd=tmp_path, **env)
    assert again.returncode == 0, again.stderr
    keys = [r.headers["Idempotency-Key"] for r in receiver.accepted("/hook")]
    assert len(keys) == 2 and len(set(keys)) == 1 and keys[0].startswith(f"failed:{TEAM}:{failed}:")
    with Target("duckdb", db).connect(read_only=True) as con:
        assert con.rows("select state from alerts.outbox where channel = 'webhook'") == [("delivered",)]


def test_the_alerts_command_dry_run_test_and_bad_config(tmp_path: Path, receiver: Receiver) -> None:
    env = {"ALERTS__WEBHOOK_URL": f"{receiver.url}/hook/s3cret"}
    sent = run_backfills("alerts", "--test", cwd=tmp_path, **env)
    assert sent.returncode == 0 and sent.stdout == "webhook: test message sent\n"
    assert run_backfills("alerts", "--test", cwd=tmp_path, **env).returncode == 0
    first, second = receiver.accepted("/hook/s3cret")
    assert first.body["event"] == "test"
    for test in (first, second):  # header and body agree, as for every alert; each test is new
        assert test.headers["Idempotency-Key"] == test.body["idempotency_key"]
    assert first.body["idempotency_key"] != second.body["idempotency_key"]
    no_timeout = run_backfills("alerts", "--test", cwd=tmp_path, **env, ALERTS__REQUEST_TIMEOUT="0")
    assert no_timeout.returncode == 78 and len(no_timeout.stderr.splitlines()) == 1
    assert "alerts.request_timeout = '0' is not a number of more than zero" in no_timeout.stderr
    receiver.statuses = [500]
    refused = run_backfills("alerts", "--test", cwd=tmp_path, **env)
    assert refused.returncode == 69 and "webhook: HTTP 500" in refused.stderr
    none = run_backfills("alerts", "--test", cwd=tmp_path)
    assert none.returncode == 78 and "no alert channel is configured" in none.stderr
    plain_http = run_backfills(
        "alerts", "--test", cwd=tmp_path, ALERTS__WEBHOOK_URL="http://example.com/s3cret"
    )
    assert plain_http.returncode == 78 and "https" in plain_http.stderr
    bad_kind = run_backfills("alerts", "--dry-run", cwd=tmp_path, **env, ALERTS__EVENTS='["exploded"]')
    assert bad_kind.returncode == 78 and "exploded" in bad_kind.stderr
    receiver.statuses = [302]  # a redirect is not followed: the URL never goes elsewhere
    redirected = run_backfills("alerts", "--test", cwd=tmp_path, **env)
    assert redirected.returncode == 69 and "HTTP 302: a redirect, not followed" in redirected.stderr
    assert len(receiver.requests) == 4
    for done in (sent, refused, none, plain_http, bad_kind, redirected, no_timeout):
        assert "s3cret" not in done.stdout + done.stderr


def test_rules_pick_the_teams_and_transfers_alerts_are_sent_for(
    sim: Simulator, api: Api, warehouse: Warehouse, receiver: Receiver, alerting: dict, monkeypatch
) -> None:
    watched, ignored = add_transfer(sim, failure_rate=1.0), add_transfer(sim, failure_rate=1.0)
    monkeypatch.setenv("ALERTS__TRANSFER_IDS", f"[{watched}]")
    warehouse.ingest()
    sent = api.create(watched, days_ago(1), days_ago(1))["transfer_backfill_id"]
    quiet = api.create(ignored, days_ago(1), days_ago(1))["transfer_backfill_id"]
    poll_at(sim, warehouse, 300)
    assert events(receiver) == [("failed", sent)]
    assert ("webhook", "failed", quiet, "suppressed", 0) in outbox(warehouse)
    monkeypatch.setenv("ALERTS__TEAM_IDS", "[424242]")  # another team only: this one's events are kept quiet
    monkeypatch.delenv("ALERTS__TRANSFER_IDS")
    again = api.create(watched, days_ago(2), days_ago(2))["transfer_backfill_id"]
    poll_at(sim, warehouse, 700)
    assert events(receiver) == [("failed", sent)]
    assert ("webhook", "failed", again, "suppressed", 0) in outbox(warehouse)


def test_an_event_keeps_the_text_of_the_moment_it_happened(
    sim: Simulator, api: Api, warehouse: Warehouse, receiver: Receiver, alerting: dict
) -> None:
    """A FAILED backfill retried to COMPLETED before a build first saw it failed (a build that
    catches up, as the demo's rounds): its failed event still says how many runs had failed."""
    warehouse.ingest()  # alerting starts on an empty history
    failing = add_transfer(sim, failure_rate=1.0)
    backfill = api.create(failing, days_ago(2), days_ago(1))["transfer_backfill_id"]  # FAILED at 350
    poll_at(sim, warehouse, 60)
    warehouse.build_models = False  # polls load; the models are built when next read
    poll_at(sim, warehouse, 400)  # FAILED: 2 of 2 runs failed
    sim.world.transfer(TEAM, failing).failure_rate = 0.0
    sim.world.retry(TEAM, backfill)  # the retry resets transfer_runs_failed to 0
    poll_at(sim, warehouse, 1000)  # COMPLETED
    assert warehouse.rows("select kind, detail from analytics.alert_events order by kind") == [
        ("completed", "2 of 2 runs completed"),
        ("failed", "2 of 2 runs failed"),
    ]
    assert [r.body["detail"] for r in receiver.accepted("/hook")] == [
        "2 of 2 runs failed",
        "2 of 2 runs completed",
    ]


def test_a_cancelled_event_keeps_the_runs_done_when_it_was_cancelled(
    sim: Simulator, api: Api, warehouse: Warehouse, receiver: Receiver, alerting: dict
) -> None:
    """A run in flight at the cancel finishes and counts later, and the recheck stores a second
    CANCELLED state: the event is the first one's, as sent."""
    warehouse.ingest()  # alerting starts on an empty history
    backfill = api.create(add_transfer(sim), days_ago(10), days_ago(1))["transfer_backfill_id"]
    poll_at(sim, warehouse, 240)  # RUNNING, 1 run done at T+230, the 2nd started at T+240
    sim.clock.advance(10)
    api.patch(f"/teams/{TEAM}/backfills/{backfill}", {"status": "CANCELLED"})  # the 2nd run is in flight
    poll_at(sim, warehouse, 260)  # the lookup: CANCELLED, 1 of 10 runs completed
    poll_at(sim, warehouse, 400)  # the recheck: 2 of 10, the run in flight counted
    assert warehouse.rows(
        "select transfer_runs_completed from supermetrics.backfill_versions "
        "where transfer_backfill_id = ? and status = 'CANCELLED' order by poll_id",
        backfill,
    ) == [(1,), (2,)]
    assert warehouse.rows("select kind, detail from analytics.alert_events") == [
        ("cancelled", "1 of 10 runs completed")
    ]
    assert [r.body["detail"] for r in receiver.accepted("/hook")] == ["1 of 10 runs completed"]


def test_a_new_channel_sends_what_happened_since_the_last_build_without_it(
    sim: Simulator, api: Api, warehouse: Warehouse, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    steady = add_transfer(sim)
    done = api.create(steady, days_ago(1), days_ago(1))["transfer_backfill_id"]  # COMPLETED at 240
    later = api.create(steady, days_ago(9), days_ago(2))["transfer_backfill_id"]  # still running at 300
    poll_at(sim, warehouse, 60)
    poll_at(sim, warehouse, 300)  # no channel yet: this build saw `done` COMPLETED
    sim.world.cancel(TEAM, later, 789)
    monkeypatch.setenv("ALERTS__WEBHOOK_URL", f"{receiver.url}/hook")
    monkeypatch.setenv("ALERTS__EVENTS", '["completed", "cancelled"]')
    poll_at(sim, warehouse, 400)  # the channel's first build: `later` was cancelled since the last one
    assert events(receiver) == [("cancelled", later)]
    assert ("webhook", "completed", done, "suppressed", 0) in outbox(warehouse)
