"""Each injected fault, as a client sees it over HTTP."""

from __future__ import annotations

import json

import pytest
import requests
from conftest import TEAM, Api, add_transfer, days_ago

from pipelines.simulator import Fault, Simulator, parse_fault

LIST = f"/teams/{TEAM}/backfills"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("500", 500, "INTERNAL_SERVER_ERROR"),
        ("502", 502, "BAD_GATEWAY"),
        ("503", 503, "SERVICE_UNAVAILABLE"),
        ("429", 429, "TOO_MANY_REQUESTS"),
        ("quota", 429, "API_ROW_QUOTA_EXCEEDED"),
        ("400", 400, "BAD_REQUEST"),
        ("404", 404, "NOT_FOUND"),
        ("422", 422, "UNPROCESSABLE_ENTITY"),
        ("401", 401, "API_KEY_INVALID"),
        ("403", 403, "ACCESS_DENIED"),
    ],
    ids=lambda v: str(v),
)
def test_error_faults_answer_with_the_envelope(
    sim: Simulator, api: Api, kind: str, status: int, code: str
) -> None:
    sim.faults.add(kind=kind, endpoint="list", times=1)
    response = api.get(LIST)
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code and len(body["meta"]["request_id"]) >= 8
    assert ("Retry-After" in response.headers) == (kind == "429")


def test_scheduled_faults_fire_exactly_n_times_on_their_endpoint(sim: Simulator, api: Api) -> None:
    created = api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.faults.add(parse_fault("list:503:2"))
    assert api.get(f"{LIST}/{created['transfer_backfill_id']}").status_code == 200  # other endpoint
    assert [api.get(LIST).status_code for _ in range(3)] == [503, 503, 200]
    assert sim.faults.rules == []


def test_probabilistic_faults_fire_by_chance(sim: Simulator, api: Api) -> None:
    sim.faults.add(kind="500", endpoint="any", probability=0.5)
    statuses = [api.get(LIST).status_code for _ in range(100)]
    assert 25 <= statuses.count(500) <= 75  # seeded: the same count every run
    sim.faults.clear()
    sim.faults.add(kind="500", probability=0.0)
    assert {api.get(LIST).status_code for _ in range(20)} == {200}


def test_slow_answer_arrives_late(sim: Simulator, api: Api) -> None:
    sim.faults.add(kind="slow", endpoint="list", times=2, slow_seconds=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.get(LIST, timeout=0.2)
    assert api.get(LIST, timeout=10).status_code == 200


def test_hung_answer_never_comes_and_stop_releases_it(sim: Simulator, api: Api) -> None:
    sim.faults.add(kind="hang", endpoint="list", times=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.get(LIST, timeout=0.3)
    sim.stop()  # returns although a request is hung


def test_cut_off_body_breaks_the_connection(sim: Simulator, api: Api) -> None:
    api.create(add_transfer(sim), days_ago(20), days_ago(1))
    sim.faults.add(kind="cut_off", endpoint="list", times=1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api.get(LIST)
    assert api.get(LIST).status_code == 200  # the next call is fine


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [
        ("bad_json", "application/json"),
        ("non_json", "text/plain"),
        ("html", "text/html; charset=utf-8"),
    ],
)
def test_bodies_that_are_not_json(sim: Simulator, api: Api, kind: str, content_type: str) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.faults.add(kind=kind, endpoint="list", times=1)
    response = api.get(LIST)
    assert response.status_code == 200 and response.headers["Content-Type"] == content_type
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_missing_field_extra_field_and_unknown_status(sim: Simulator, api: Api) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.faults.add(kind="missing_field", endpoint="list", times=1, field="transfer_runs_total")
    assert all("transfer_runs_total" not in b for b in api.listing())
    sim.faults.add(kind="missing_field", endpoint="list", times=1, field="data")
    assert "data" not in api.get(LIST).json()
    sim.faults.add(kind="extra_field", endpoint="list", times=1)
    assert all(b["labels"] == ["simulated"] for b in api.listing())
    sim.faults.add(kind="unknown_status", endpoint="list", times=1)
    assert [b["status"] for b in api.listing()] == ["PAUSED", "CREATED"]


def test_real_hourly_rate_limit_resets_with_the_clock() -> None:
    with Simulator(speed=0, rate_limit=3) as sim:
        api = Api(sim)
        sim.clock.advance(15 * 60)  # 08:15, 45 minutes before the window resets
        answers = [api.get(LIST) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
        assert answers[3].headers["Retry-After"] == str(45 * 60)
        sim.clock.advance(45 * 60)
        assert api.get(LIST).status_code == 200


def test_the_budget_counts_down_without_enforcement_and_on_every_answer(sim: Simulator, api: Api) -> None:
    sim.faults.add(kind="503", endpoint="list", times=1)
    sim.faults.add(kind="429", endpoint="get", times=1)
    answers = [
        api.get(LIST),
        api.get(LIST),
        api.get(f"/teams/{TEAM}/backfills/1"),
        api.get(f"/teams/{TEAM}/backfills/1"),
    ]
    assert [r.status_code for r in answers] == [503, 200, 429, 404]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["4999", "4998", "4997", "4996"]
    assert answers[2].headers["Retry-After"] == "30"  # the injected 429 keeps its own wait
    other = Api(sim, key="nobody")  # another key, even a wrong one, has its own budget
    assert other.get(LIST).headers["X-RateLimit-Remaining"] == "4999"


@pytest.mark.parametrize(
    "spec", ["list", "list:teapot", "nowhere:503", "list:503:0", "list:503@1.5", "a:b:c:d"]
)
def test_bad_fault_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_fault(spec)


def test_fault_spec_forms() -> None:
    assert parse_fault("get:429@0.25") == Fault(kind="429", endpoint="get", probability=0.25)
    assert parse_fault("any:hang:1") == Fault(kind="hang", endpoint="any", times=1)


def test_control_endpoints_steer_a_running_simulator(sim: Simulator, api: Api) -> None:
    control = sim.base_url.removesuffix("/v1") + "/_sim"
    status = requests.post(f"{control}/clock", json={"advance_seconds": 3600}, timeout=10).json()
    assert status["now"].startswith("2026-01-05T09:00:00")
    added = requests.post(
        f"{control}/faults", json={"kind": "503", "endpoint": "list", "times": 1}, timeout=10
    )
    assert added.status_code == 200
    assert api.get(LIST).status_code == 503
    assert requests.post(f"{control}/faults", json={"kind": "nope"}, timeout=10).status_code == 400
    assert requests.delete(f"{control}/faults", timeout=10).json() == {"faults": []}
