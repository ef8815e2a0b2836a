"""Every kind of answer the simulator gives validates against the public OpenAPI file."""

from __future__ import annotations

import pytest
from conftest import OTHER_TEAM, TEAM, Api, add_transfer, days_ago
from openapi_contract import validate, validate_error_envelope
from openapi_core.validation.response.exceptions import InvalidData

from pipelines.simulator import ApiKey, Simulator


def test_success_answers_validate(sim: Simulator, api: Api) -> None:
    empty = api.get(f"/teams/{TEAM}/backfills")
    validate(empty)
    assert empty.json()["data"] == []

    transfer = add_transfer(sim, failure_rate=0.5)
    created = api.post(
        f"/teams/{TEAM}/transfers/{transfer}/backfills",
        {"range_start": str(days_ago(30)), "range_end": str(days_ago(1))},
    )
    validate(created)
    backfill_id = created.json()["data"]["transfer_backfill_id"]
    for seconds in (60, 60, 1000, 5000):  # CREATED, SCHEDULED, RUNNING with errors
        sim.clock.advance(seconds)
        validate(api.get(f"/teams/{TEAM}/backfills"))
        validate(api.get(f"/teams/{TEAM}/backfills/{backfill_id}"))
        validate(api.get(f"/teams/{TEAM}/transfers/{transfer}/backfills/latest"))
    cancelled = api.patch(f"/teams/{TEAM}/backfills/{backfill_id}", {"status": "CANCELLED"})
    validate(cancelled)
    assert cancelled.json()["data"]["removed_time"] is not None
    validate(api.get(f"/teams/{TEAM}/backfills/{backfill_id}"))

    sim.faults.add(kind="extra_field", endpoint="get", times=1)  # unknown fields are allowed by the spec
    extra = api.get(f"/teams/{TEAM}/backfills/{backfill_id}")
    validate(extra)
    assert extra.json()["data"]["priority"] == "NORMAL"


def test_error_answers_validate(sim: Simulator, api: Api) -> None:
    transfer = add_transfer(sim)
    created = api.create(transfer, days_ago(3), days_ago(1))
    cases = {
        "401 missing key": Api(sim, key="").session.get(
            api.url(f"/teams/{TEAM}/backfills"), headers={"Authorization": ""}
        ),
        "401 invalid key": Api(sim, key="wrong").get(f"/teams/{TEAM}/backfills"),
        "403 team": api.get("/teams/555/backfills"),
        "404 backfill": api.get(f"/teams/{TEAM}/backfills/99999"),
        "404 latest": api.get(f"/teams/{TEAM}/transfers/{add_transfer(sim)}/backfills/latest"),
        "400 create": api.post(f"/teams/{TEAM}/transfers/{transfer}/backfills", {}),
        "422 overlap": api.post(
            f"/teams/{TEAM}/transfers/{transfer}/backfills",
            {"range_start": str(days_ago(2)), "range_end": str(days_ago(2))},
        ),
        "400 patch": api.patch(f"/teams/{TEAM}/backfills/{created['transfer_backfill_id']}", {"status": "X"}),
    }
    for name, kind in (
        ("429 injected", "429"),
        ("429 quota", "quota"),
        ("500", "500"),
        ("403 injected", "403"),
    ):
        sim.faults.add(kind=kind, times=1)
        cases[name] = api.get(f"/teams/{TEAM}/backfills")
    for name, response in cases.items():
        assert response.status_code == int(name[:3]), name
        validate(response)
    assert cases["429 injected"].headers["Retry-After"] == "30"
    assert cases["429 quota"].json()["error"]["code"] == "API_ROW_QUOTA_EXCEEDED"
    assert cases["401 invalid key"].json()["error"]["code"] == "API_KEY_INVALID"
    assert cases["401 invalid key"].headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("status", [502, 503])
def test_gateway_errors_carry_the_error_envelope(sim: Simulator, api: Api, status: int) -> None:
    sim.faults.add(kind=str(status), endpoint="list", times=1)
    response = api.get(f"/teams/{TEAM}/backfills")
    assert response.status_code == status
    validate_error_envelope(response.json())


def test_rate_limited_answer_validates() -> None:
    with Simulator(speed=0, rate_limit=2) as sim:
        api = Api(sim)
        responses = [api.get(f"/teams/{TEAM}/backfills") for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 429]
        for response in responses:
            validate(response)


@pytest.mark.parametrize("kind", ["missing_field", "unknown_status"])
def test_broken_bodies_do_not_validate(sim: Simulator, api: Api, kind: str) -> None:
    """The validator is not a rubber stamp: the faults that break the contract are caught."""
    api.create(add_transfer(sim), days_ago(3), days_ago(1))
    sim.faults.add(kind=kind, endpoint="list", times=1)
    with pytest.raises(InvalidData):
        validate(api.get(f"/teams/{TEAM}/backfills"))


def test_read_only_key_and_team_isolation(sim: Simulator, api: Api) -> None:
    reader = Api(
        sim,
        sim.add_key(
            ApiKey(
                "reader", user_id=801, team_ids=frozenset({TEAM}), scopes=frozenset({"dwh_transfers_read"})
            )
        ).key,
    )
    theirs = add_transfer(sim, team=OTHER_TEAM)
    their_backfill = Api(sim).create(theirs, days_ago(2), days_ago(1), team=OTHER_TEAM)

    denied = reader.get(f"/teams/{OTHER_TEAM}/backfills")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "ACCESS_DENIED"
    validate(denied)
    no_write = reader.post(
        f"/teams/{TEAM}/transfers/{add_transfer(sim)}/backfills",
        {"range_start": str(days_ago(2)), "range_end": str(days_ago(1))},
    )
    assert no_write.status_code == 403 and "dwh_transfers_write" in no_write.json()["error"]["description"]
    validate(no_write)
    # a backfill of another team is not found through this team's path, and never listed here
    cross = api.get(f"/teams/{TEAM}/backfills/{their_backfill['transfer_backfill_id']}")
    assert cross.status_code == 404
    assert api.listing(TEAM) == [] and len(api.listing(OTHER_TEAM)) == 1
    assert reader.listing(TEAM) == []
