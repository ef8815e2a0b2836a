"""The simulator's state machine over real HTTP, with a manual clock and hand-computed times."""

from __future__ import annotations

from datetime import timedelta

from conftest import FIXED_TIMING, START, TEAM, Api, add_transfer, days_ago

from pipelines.simulator import Simulator


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_lifecycle_to_completed(sim: Simulator, api: Api) -> None:
    transfer = add_transfer(sim, run_seconds=100)
    created = api.create(transfer, days_ago(3), days_ago(1))  # 3 runs
    assert created["status"] == "CREATED"
    assert (created["transfer_runs_total"], created["transfer_runs_created"]) == (3, 0)
    assert created["created_time"] == at(0) and created["start_time"] is None

    sim.clock.advance(60)
    [scheduled] = api.listing()
    assert scheduled["status"] == "SCHEDULED" and scheduled["transfer_runs_created"] == 3

    sim.clock.advance(60)  # T+120
    [running] = api.listing()
    assert running["status"] == "RUNNING" and running["start_time"] == at(120)
    assert running["transfer_runs_completed"] == 0

    sim.clock.advance(110)  # T+230: first run done
    assert api.listing()[0]["transfer_runs_completed"] == 1
    sim.clock.advance(220)  # T+450: third run done, backfill finishes 10 s later
    [last] = api.listing()
    assert (last["status"], last["transfer_runs_completed"]) == ("RUNNING", 3)

    sim.clock.advance(10)  # T+460 = T+130 + 3*110
    assert api.listing() == []
    done = api.backfill(created["transfer_backfill_id"])
    assert done["status"] == "COMPLETED" and done["end_time"] == at(460)
    assert (done["transfer_runs_completed"], done["transfer_runs_failed"], done["error_report"]) == (3, 0, [])
    assert "removed_time" not in done


def test_runs_go_newest_day_first_and_failures_are_reported(sim: Simulator, api: Api) -> None:
    transfer = add_transfer(sim, failure_rate=1.0)
    created = api.create(transfer, days_ago(5), days_ago(2))
    sim.clock.advance(120 + 2 * 110)  # two runs done
    [running] = api.listing()
    assert [e["transfer_run_date"] for e in running["error_report"]] == [str(days_ago(2)), str(days_ago(3))]
    assert all(e["error"] for e in running["error_report"])

    sim.clock.advance(2 * 110 + 10)  # all four done: FAILED stays listed
    [failed] = api.listing()
    assert failed["status"] == "FAILED" and failed["end_time"] is None
    assert (failed["transfer_runs_completed"], failed["transfer_runs_failed"]) == (0, 4)
    assert api.backfill(created["transfer_backfill_id"])["status"] == "FAILED"


def test_failed_backfill_retried_goes_back_to_running(sim: Simulator, api: Api) -> None:
    transfer = add_transfer(sim, failure_rate=1.0)
    created = api.create(transfer, days_ago(2), days_ago(1))
    sim.clock.advance(130 + 2 * 110)
    assert api.listing()[0]["status"] == "FAILED"

    sim.world.teams[TEAM].transfers[transfer].failure_rate = 0.0  # the user fixed the credentials
    retried = api.session.post(
        f"http://{sim.base_url.split('/')[2]}/_sim/teams/{TEAM}/backfills/"
        f"{created['transfer_backfill_id']}/retry",
        timeout=10,
    ).json()
    assert retried["status"] == "RUNNING" and retried["transfer_runs_failed"] == 0
    assert retried["error_report"] == [] and retried["start_time"] == at(120)  # first start is kept

    sim.clock.advance(10 + 2 * 110 + 10)
    done = api.backfill(created["transfer_backfill_id"])
    assert (done["status"], done["transfer_runs_completed"], done["transfer_runs_failed"]) == (
        "COMPLETED",
        2,
        0,
    )


def test_cancel_sets_final_state_and_leaves_the_list(sim: Simulator, api: Api) -> None:
    transfer = add_transfer(sim, run_seconds=100)
    created = api.create(transfer, days_ago(10), days_ago(1))
    sim.clock.advance(120 + 110 + 50)  # one run done, the second in flight
    backfill_id = created["transfer_backfill_id"]
    response = api.patch(f"/teams/{TEAM}/backfills/{backfill_id}", {"status": "CANCELLED"})
    assert response.status_code == 200
    cancelled = response.json()["data"]
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["end_time"] == cancelled["removed_time"] == at(280)
    assert cancelled["removed_user_id"] == 789
    assert api.listing() == []

    sim.clock.advance(3600)  # the run in flight still finishes and counts; nothing else runs
    final = api.backfill(backfill_id)
    assert (final["transfer_runs_completed"], final["status"]) == (2, "CANCELLED")

    again = api.patch(f"/teams/{TEAM}/backfills/{backfill_id}", {"status": "CANCELLED"})
    assert again.status_code == 422 and again.json()["error"]["code"] == "UNPROCESSABLE_ENTITY"


def test_overlapping_range_of_an_active_backfill_is_refused(sim: Simulator, api: Api) -> None:
    transfer = add_transfer(sim)
    first = api.create(transfer, days_ago(20), days_ago(10))
    overlapping = api.post(
        f"/teams/{TEAM}/transfers/{transfer}/backfills",
        {"range_start": str(days_ago(12)), "range_end": str(days_ago(5))},
    )
    assert overlapping.status_code == 422
    assert str(first["transfer_backfill_id"]) in overlapping.json()["error"]["description"]
    # adjacent ranges and other transfers are fine
    api.create(transfer, days_ago(9), days_ago(5))
    api.create(add_transfer(sim), days_ago(12), days_ago(5))


def test_queue_runs_at_most_max_running_per_team(sim: Simulator, api: Api) -> None:
    for _ in range(5):
        api.create(add_transfer(sim), days_ago(3), days_ago(1))
        sim.clock.advance(1)
    sim.clock.advance(300)
    statuses = [b["status"] for b in api.listing()]  # newest first
    assert statuses == ["SCHEDULED", "SCHEDULED", "RUNNING", "RUNNING", "RUNNING"]


def test_list_is_capped_at_100_newest_first(sim: Simulator, api: Api) -> None:
    transfer = add_transfer(sim)
    ids = []
    for n in range(120):  # 120 one-day backfills on distinct days
        ids.append(api.create(transfer, days_ago(n + 1), days_ago(n + 1))["transfer_backfill_id"])
        sim.clock.advance(1)
    listed = api.listing()
    assert len(listed) == 100
    assert [b["transfer_backfill_id"] for b in listed] == ids[::-1][:100]
    # the oldest are still there by id, just not listed
    assert api.backfill(ids[0])["status"] in ("CREATED", "SCHEDULED", "RUNNING")


def test_latest_backfill_of_a_transfer(sim: Simulator, api: Api) -> None:
    transfer = add_transfer(sim)
    none_yet = api.get(f"/teams/{TEAM}/transfers/{transfer}/backfills/latest")
    assert none_yet.status_code == 404
    api.create(transfer, days_ago(9), days_ago(5))
    sim.clock.advance(5)
    newer = api.create(transfer, days_ago(3), days_ago(1))
    latest = api.get(f"/teams/{TEAM}/transfers/{transfer}/backfills/latest").json()["data"]
    assert latest["transfer_backfill_id"] == newer["transfer_backfill_id"]
    assert api.get(f"/teams/{TEAM}/transfers/999/backfills/latest").status_code == 404


def test_forgotten_and_unknown_backfills_are_404(sim: Simulator, api: Api) -> None:
    created = api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.world.forget(TEAM, created["transfer_backfill_id"])
    response = api.get(f"/teams/{TEAM}/backfills/{created['transfer_backfill_id']}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"


def test_retention_forgets_finished_backfills() -> None:
    with Simulator(seed=1, speed=0, start=START, timing=FIXED_TIMING, retention=timedelta(days=1)) as sim:
        api = Api(sim)
        created = api.create(add_transfer(sim), days_ago(1), days_ago(1))
        sim.clock.advance(240)  # finished at T+240
        assert api.backfill(created["transfer_backfill_id"])["status"] == "COMPLETED"
        sim.clock.advance(86_401)  # one day and a second after it ended
        assert api.get(f"/teams/{TEAM}/backfills/{created['transfer_backfill_id']}").status_code == 404


def test_bad_create_requests(sim: Simulator, api: Api) -> None:
    transfer = add_transfer(sim)
    path = f"/teams/{TEAM}/transfers/{transfer}/backfills"
    assert api.post(path, {"range_start": "2025-01-01"}).status_code == 400
    assert api.post(path, {"range_start": "01/01/2025", "range_end": "2025-01-02"}).status_code == 400
    assert api.session.post(api.url(path), data=b"{not json", timeout=10).status_code == 400
    assert api.post(path, {"range_start": "2025-02-01", "range_end": "2025-01-01"}).status_code == 422
    future = api.post(
        path, {"range_start": str(START.date()), "range_end": str(START.date() + timedelta(days=3))}
    )
    assert future.status_code == 422
    assert (
        api.post(
            f"/teams/{TEAM}/transfers/999/backfills", {"range_start": "2025-01-01", "range_end": "2025-01-02"}
        ).status_code
        == 404
    )
    assert api.patch(f"/teams/{TEAM}/backfills/1", {"status": "CANCELLED"}).status_code == 404
    created = api.create(transfer, days_ago(2), days_ago(1))
    bad_patch = api.patch(f"/teams/{TEAM}/backfills/{created['transfer_backfill_id']}", {"status": "RUNNING"})
    assert bad_patch.status_code == 400


def test_unknown_paths_and_methods(sim: Simulator, api: Api) -> None:
    assert api.get("/teams/1/nothing").status_code == 404
    assert api.session.delete(api.url(f"/teams/{TEAM}/backfills"), timeout=10).status_code == 405


def test_the_ledger_keeps_every_change_at_its_exact_time_and_the_log_every_answer() -> None:
    with Simulator(seed=7, speed=0, start=START, teams=(TEAM,), timing=FIXED_TIMING, keep_ledger=True) as sim:
        api = Api(sim)
        transfer = add_transfer(sim, run_seconds=100)
        backfill_id = api.create(transfer, days_ago(2), days_ago(1))["transfer_backfill_id"]  # 2 runs
        sim.clock.advance(400)
        assert api.listing() == []
        api.backfill(backfill_id)
        sim.world.forget(TEAM, backfill_id)
        assert api.get(f"/teams/{TEAM}/backfills/{backfill_id}").status_code == 404

    changes = [
        (c.at - START, c.state["status"], c.state["transfer_runs_completed"]) for c in sim.world.ledger
    ]
    seconds = [(int(d.total_seconds()), status, done) for d, status, done in changes]
    # created at T, SCHEDULED at +60, RUNNING at +120, runs done at +230 and +340, COMPLETED at
    # +130 + 2*110 = +350; the forgotten backfill stays in the ledger
    assert seconds == [
        (0, "CREATED", 0),
        (60, "SCHEDULED", 0),
        (120, "RUNNING", 0),
        (230, "RUNNING", 1),
        (340, "RUNNING", 2),
        (350, "COMPLETED", 2),
    ]
    answers = [(a.endpoint, a.status, a.listed, int((a.at - START).total_seconds())) for a in sim.answers]
    assert answers == [("list", 200, (), 400), ("get", 200, (), 400), ("get", 404, (), 400)]
    assert sim.answers[1].ids == (TEAM, backfill_id)
