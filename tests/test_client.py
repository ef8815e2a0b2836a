"""The HTTP client against the simulator: retries, waits and error mapping (waits are recorded, not slept)."""

from __future__ import annotations

import socket

import pytest
from conftest import TEAM

from pipelines.simulator import Simulator
from pipelines.supermetrics.client import SupermetricsClient, check_base_url
from pipelines.supermetrics.errors import (
    ApiUnavailableError,
    AuthError,
    ConfigError,
    RateLimitError,
    RequestRejectedError,
)


class Waits(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(base_url: str, waits: Waits, **kwargs) -> SupermetricsClient:
    return SupermetricsClient(base_url, "sim-key", sleep=waits, **kwargs)


def test_retry_after_within_the_cap_is_honoured(sim: Simulator) -> None:
    sim.faults.add(kind="429", endpoint="list", times=2, retry_after=7)
    waits = Waits()
    response = client(sim.base_url, waits).list_backfills(TEAM)
    assert response.http_status == 200 and waits == [7, 7]


def test_retry_after_over_the_cap_stops_at_once(sim: Simulator) -> None:
    sim.faults.add(kind="429", endpoint="list", retry_after=3600)
    waits = Waits()
    with pytest.raises(RateLimitError, match="asks to wait 3600 s, over the 60 s cap"):
        client(sim.base_url, waits).list_backfills(TEAM)
    assert waits == []


def test_server_errors_back_off_exponentially(sim: Simulator) -> None:
    sim.faults.add(kind="502", endpoint="list", times=3)
    waits = Waits()
    assert client(sim.base_url, waits).list_backfills(TEAM).http_status == 200
    assert waits == [1, 2, 4]


def test_gives_up_after_max_attempts(sim: Simulator) -> None:
    sim.faults.add(kind="500", endpoint="list")
    waits = Waits()
    api = client(sim.base_url, waits, max_attempts=3, backoff_factor=0.5)
    with pytest.raises(ApiUnavailableError, match="after 3 attempt") as failed:
        api.list_backfills(TEAM)
    assert waits == [0.5, 1.0] and api.requests_made == 3
    assert failed.value.http_status == 500 and failed.value.request_id


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits = Waits()
    with pytest.raises(ApiUnavailableError, match="refused the connection after 2 attempt"):
        client(f"http://127.0.0.1:{port}/v1", waits, max_attempts=2).list_backfills(TEAM)
    assert waits == [1]


def test_a_host_that_cannot_be_resolved_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(host: str, *args: object, **kwargs: object) -> list:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)  # the resolver, without asking a DNS server
    with pytest.raises(ApiUnavailableError, match="the host name api.example.test could not be resolved"):
        client("https://api.example.test/v1", Waits(), max_attempts=1).list_backfills(TEAM)


def test_a_malformed_base_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="is not a valid URL"):
        client("https://no..such..host/v1", Waits())


@pytest.mark.parametrize(
    ("kind", "error"), [("401", AuthError), ("403", AuthError), ("quota", RateLimitError)]
)
def test_not_retried(sim: Simulator, kind: str, error: type) -> None:
    sim.faults.add(kind=kind, endpoint="list")
    waits = Waits()
    with pytest.raises(error):
        client(sim.base_url, waits).list_backfills(TEAM)
    assert waits == []


def test_404_lookup_is_rejected_with_its_status(sim: Simulator) -> None:
    with pytest.raises(RequestRejectedError) as rejected:
        client(sim.base_url, Waits()).get_backfill(TEAM, 123)
    assert rejected.value.http_status == 404 and rejected.value.error_code == "NOT_FOUND"


def test_success_carries_what_the_poll_log_needs(sim: Simulator) -> None:
    response = client(sim.base_url, Waits()).list_backfills(TEAM)
    assert response.server_time == sim.clock.now().replace(microsecond=0)
    assert response.rate_limit_remaining == 4999 and len(response.request_id) == 32  # its first call
    assert response.duration_ms > 0


@pytest.mark.parametrize(
    "url",
    [
        "https://dts-api.supermetrics.com/v1",
        "http://127.0.0.1:8765/v1",
        "http://localhost/v1",
        "http://[::1]:80/v1",
        "http://127.1.2.3/v1",
    ],
)
def test_allowed_base_urls(url: str) -> None:
    assert check_base_url(url + "/") == url


@pytest.mark.parametrize(
    "url",
    [
        "http://dts-api.supermetrics.com/v1",
        "http://10.0.0.5/v1",
        "ftp://x/v1",
        "dts-api.supermetrics.com/v1",
        "",
    ],
)
def test_refused_base_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        check_base_url(url)


def test_empty_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="API key is empty"):
        SupermetricsClient("https://dts-api.supermetrics.com/v1", " ")


def test_a_retry_past_the_run_deadline_ends_the_call_with_the_same_failure(sim: Simulator) -> None:
    sim.faults.add(kind="429", endpoint="list", times=1)  # Retry-After: 30 s
    waits = Waits()
    with pytest.raises(RateLimitError, match="no time left to retry before the run's deadline"):
        client(sim.base_url, waits, max_run_seconds=10).list_backfills(TEAM)
    assert waits == []  # it did not wait 30 s into a 10 s budget
