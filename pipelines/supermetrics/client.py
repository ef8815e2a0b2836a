"""HTTP client for the backfill endpoints: bearer auth, retries, and errors mapped to classes.

Retried with exponential backoff: 5xx, connection errors, timeouts, broken connections. A 429
`TOO_MANY_REQUESTS` waits `Retry-After` when that is within `max_retry_after`; beyond it the run
stops and says when to try again. Not retried: 401, 403, 400/404/422, the monthly row quota.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from ..text import one_line, shorten
from . import settings
from .errors import (
    ApiError,
    ApiUnavailableError,
    AuthError,
    ConfigError,
    InvalidResponseError,
    RateLimitError,
    RequestRejectedError,
)

log = logging.getLogger(__name__)
_CONNECTION_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


@dataclass
class ApiResponse:
    """A 200 answer with a JSON body, and what the poll log wants to know about it."""

    http_status: int
    body: Any
    request_id: str | None
    server_time: datetime | None  # the Date header: the API's clock
    received_at: datetime  # this machine's clock
    duration_ms: float
    rate_limit_remaining: int | None

    @property
    def observed_at(self) -> datetime:
        return self.server_time or self.received_at


def check_base_url(base_url: str) -> str:
    """Refuse URLs over which the key would travel in clear text to another machine."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base_url {base_url!r} is not an http(s) URL")
    try:
        parts.hostname.encode("idna")  # what the resolver will do: empty or overlong labels fail
        parts.port  # noqa: B018 - a port that is not a number fails here
    except (UnicodeError, ValueError) as exc:
        raise ConfigError(f"base_url {base_url!r} is not a valid URL: {one_line(str(exc), 120)}") from None
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"base_url {base_url!r} is plain http to a host that is not loopback: "
            "the API key would travel in clear text; use https"
        )
    return base_url.rstrip("/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SupermetricsClient:
    """Calls the API. `sleep` is injectable so that tests can observe waits instead of waiting."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = settings.REQUEST_TIMEOUT_SECONDS,
        max_attempts: int = settings.MAX_ATTEMPTS,
        backoff_factor: float = settings.BACKOFF_FACTOR_SECONDS,
        max_retry_after: float = settings.MAX_RETRY_AFTER_SECONDS,
        max_run_seconds: float = settings.MAX_RUN_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ConfigError(
                "the API key is empty: set SOURCES__SUPERMETRICS__API_KEY or "
                "[sources.supermetrics] api_key in .dlt/secrets.toml"
            )
        for name, value, least, above in (
            ("request_timeout", timeout, 0, True),
            ("max_attempts", max_attempts, 1, False),
            ("backoff_factor", backoff_factor, 0, False),
            ("max_retry_after", max_retry_after, 0, False),
            ("max_run_seconds", max_run_seconds, 0, True),
        ):
            check_setting(name, value, least, above)
        self.base_url = check_base_url(base_url)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_factor = backoff_factor
        self.max_retry_after = max_retry_after
        self.max_run_seconds = max_run_seconds
        self.deadline = time.monotonic() + max_run_seconds  # for every call of this run together
        self.sleep = sleep
        self.requests_made = 0
        self._lock = threading.Lock()  # teams are polled from several threads
        self._paused_until = 0.0  # a 429's Retry-After holds the other threads' next request
        self._own_pause = threading.local()  # the thread that got the 429 waits in _wait instead
        self._session = requests.Session()
        self._session.headers.update(
            {
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": "supermetrics-backfill-monitor",
            }
        )

    def list_backfills(self, team_id: int) -> ApiResponse:
        return self.get(settings.LIST_PATH.format(team_id=team_id), f"listing backfills of team {team_id}")

    def get_backfill(self, team_id: int, backfill_id: int) -> ApiResponse:
        path = settings.GET_PATH.format(team_id=team_id, backfill_id=backfill_id)
        return self.get(path, f"looking up backfill {backfill_id} of team {team_id}")

    def latest_backfill(self, team_id: int, transfer_id: int) -> ApiResponse:
        path = settings.LATEST_PATH.format(team_id=team_id, transfer_id=transfer_id)
        return self.get(path, f"asking for the latest backfill of transfer {transfer_id} of team {team_id}")

    def list_transfers(self, team_id: int) -> ApiResponse:
        return self.get(
            settings.TRANSFERS_PATH.format(team_id=team_id), f"listing transfers of team {team_id}"
        )

    def list_runs(
        self, team_id: int, transfer_id: int, start: datetime, end: datetime, limit: int, offset: int
    ) -> ApiResponse:
        """One page of a transfer's runs created in [start, end], newest first."""
        query = urlencode(
            {
                "start_date": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end_date": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "sort_field": "created_time",
                "sort_direction": "DESC",
                "limit": limit,
                "offset": offset,
            }
        )
        path = settings.RUNS_PATH.format(team_id=team_id, transfer_id=transfer_id) + "?" + query
        return self.get(path, f"listing runs of transfer {transfer_id} of team {team_id} (offset {offset})")

    def get(self, path: str, what: str) -> ApiResponse:
        """GET with retries; raises an `ApiError` subclass naming `what` failed and why."""
        url = self.base_url + path
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            self._hold()
            started = time.monotonic()
            response = None
            try:
                # streamed, so that the headers (the server's Date) survive a body cut off half-way
                response = self._session.get(url, timeout=self._timeout(what), stream=True)
                self._count()
                content = response.content  # a cut-off body fails here
            except _CONNECTION_ERRORS as exc:
                if response is None:  # counted above when the headers came
                    self._count()
                error = ApiUnavailableError(
                    f"{what}: {_describe_connection_error(exc, url)} after {attempt} attempt(s)",
                    http_status=None if response is None else response.status_code,
                    server_time=None if response is None else _server_time(response),
                )
                if response is not None:
                    response.close()
                if last:
                    raise error from None
                self._wait(self._backoff(attempt), error, attempt)
                continue
            duration_ms = (time.monotonic() - started) * 1000
            if response.status_code == 200:
                return self._success(response, content, duration_ms, what)
            error = _error_for(response, what, attempt)
            retry_in = self._retry_delay(response, error, attempt, what)
            if retry_in is None or last:
                raise error
            if response.status_code == 429:  # the API's limit is per key: every thread waits
                with self._lock:
                    self._paused_until = max(self._paused_until, time.monotonic() + retry_in)
                    self._own_pause.until = self._paused_until
            self._wait(retry_in, error, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _count(self) -> None:
        with self._lock:
            self.requests_made += 1

    def _hold(self) -> None:
        """Wait while another thread's 429 asks to (never past the run's deadline)."""
        with self._lock:
            paused_until = self._paused_until
        if paused_until == getattr(self._own_pause, "until", None):
            return
        wait = min(paused_until, self.deadline) - time.monotonic()
        if wait > 0:
            self.sleep(wait)

    def _timeout(self, what: str) -> float:
        """The request's timeout: request_timeout, or less when the run's deadline is nearer."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ApiUnavailableError(
                f"{what}: not tried, the run's deadline passed (max_run_seconds = "
                f"{self.max_run_seconds:g}); what the run got before is kept"
            )
        return min(self.timeout, remaining)

    def _success(
        self, response: requests.Response, content: bytes, duration_ms: float, what: str
    ) -> ApiResponse:
        try:
            body = response.json() if content else None
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            snippet = content[:60].decode("utf-8", "replace").replace("\n", " ")
            raise InvalidResponseError(
                f"{what}: the answer is not JSON ({kind}): {snippet!r}",
                http_status=response.status_code,
                server_time=_server_time(response),
            ) from None
        meta = body.get("meta") if isinstance(body, dict) else None
        request_id = meta.get("request_id") if isinstance(meta, dict) else None
        return ApiResponse(
            http_status=200,
            body=body,
            request_id=request_id if isinstance(request_id, str) else None,
            server_time=_server_time(response),
            received_at=datetime.now(UTC),
            duration_ms=duration_ms,
            rate_limit_remaining=_int_header(response, "X-RateLimit-Remaining"),
        )

    def _retry_delay(
        self, response: requests.Response, error: ApiError, attempt: int, what: str
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when retrying cannot help."""
        if isinstance(error, ApiUnavailableError):
            return self._backoff(attempt)
        if response.status_code == 429 and error.error_code != "API_ROW_QUOTA_EXCEEDED":
            retry_after = _retry_after_seconds(response)
            if retry_after is None:
                return self._backoff(attempt)
            if retry_after > self.max_retry_after:
                resume = (datetime.now(UTC) + timedelta(seconds=retry_after)).strftime("%Y-%m-%d %H:%M UTC")
                raise RateLimitError(
                    f"{what}: HTTP 429 {error.error_code or ''}; the API asks to wait {retry_after:g} s, "
                    "over the "
                    f"{self.max_retry_after:g} s cap (max_retry_after): try again after {resume}",
                    http_status=429,
                    error_code=error.error_code,
                    request_id=error.request_id,
                    server_time=error.server_time,
                )
            return retry_after
        return None

    def _backoff(self, attempt: int) -> float:
        return self.backoff_factor * 2 ** (attempt - 1)

    def _wait(self, seconds: float, error: ApiError, attempt: int) -> None:
        """Say why and for how long, then wait: a retrying run is never silent."""
        if time.monotonic() + seconds >= self.deadline:
            raise type(error)(  # the same failure (a 429 stays rate limited), said to be final
                f"{error}; no time left to retry before the run's deadline "
                f"(max_run_seconds = {self.max_run_seconds:g})",
                http_status=error.http_status,
                error_code=error.error_code,
                server_time=error.server_time,
                api_message=error.api_message,
            ) from None
        log.warning(
            "%s; attempt %d of %d, retrying in %.1f s",
            one_line(str(error), 600),
            attempt + 1,
            self.max_attempts,
            seconds,
        )
        self.sleep(seconds)


def check_setting(name: str, value: object, least: float, above: bool = False) -> None:
    """A numeric setting of [sources.supermetrics] within its range, or a ConfigError naming it."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and (value > least if above else value >= least):
        return
    bound = f"above {least:g}" if above else f"at least {least:g}"
    raise ConfigError(
        f"{name} = {value!r} must be a number {bound}: set [sources.supermetrics] {name} in "
        f".dlt/config.toml or SOURCES__SUPERMETRICS__{name.upper()}"
    )


def _error_for(response: requests.Response, what: str, attempt: int) -> ApiError:
    """Map a non-200 answer to its error class, with a message that says what to do."""
    status = response.status_code
    code, message, request_id = _envelope(response)
    # the API's text is capped in the line (printers make its control characters visible); the
    # poll log keeps it whole in api_message
    said = (
        f"HTTP {status}"
        + (f" {shorten(code, 60)}" if code else "")
        + (f" ({shorten(message.rstrip('.'))})" if message else "")
    )
    kwargs = {
        "http_status": status,
        "error_code": code,
        "request_id": request_id,
        "server_time": _server_time(response),
        "api_message": message,
    }
    if status == 401:
        return AuthError(
            f"{what}: {said}. The API key was rejected: set a valid key in "
            "SOURCES__SUPERMETRICS__API_KEY or .dlt/secrets.toml",
            **kwargs,
        )
    if status == 403:
        return AuthError(
            f"{what}: {said}. The account needs the dwh.transfer.view permission for this team "
            "and the API key the dwh_transfers_read scope",
            **kwargs,
        )
    if status == 429 and code == "API_ROW_QUOTA_EXCEEDED":
        return RateLimitError(
            f"{what}: {said}. The monthly row quota is used up: retrying will not help "
            "until it resets or the plan is upgraded in Supermetrics Hub",
            **kwargs,
        )
    if status == 429:
        return RateLimitError(f"{what}: {said}", **kwargs)
    if status >= 500:
        return ApiUnavailableError(f"{what}: {said} after {attempt} attempt(s)", **kwargs)
    return RequestRejectedError(f"{what}: {said}. Check team_ids and base_url", **kwargs)


def _envelope(response: requests.Response) -> tuple[str | None, str | None, str | None]:
    """(error.code, error.message, meta.request_id) of an error body, where present."""
    try:
        body = response.json()
    except ValueError:
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    as_text = lambda v: v if isinstance(v, str) else None  # noqa: E731
    return as_text(error.get("code")), as_text(error.get("message")), as_text(meta.get("request_id"))


def _describe_connection_error(exc: Exception, url: str) -> str:
    """The host and the cause, in words: what an operator needs to fix a network problem."""
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    if isinstance(exc, requests.Timeout):
        return f"no answer from {where} in time"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"the connection to {where} broke while the answer was being read"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"the TLS handshake with {where} failed (does it speak https?)"
    chain = []  # requests wraps urllib3's error (in args[0]), which holds the socket's (reason)
    cause: object = exc
    while isinstance(cause, BaseException) and len(chain) < 10:
        chain.append(cause)
        first_arg = cause.args[0] if cause.args else None
        cause = cause.__cause__ or getattr(cause, "reason", None) or first_arg or cause.__context__
    if any(isinstance(c, ConnectionRefusedError) for c in chain):
        return f"{where} refused the connection"
    if any(isinstance(c, socket.gaierror) for c in chain) or "NameResolution" in repr(exc):
        return f"the host name {parts.hostname} could not be resolved"
    return f"could not connect to {where} ({type(chain[-1]).__name__})"


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date
        return max(
            0.0,
            (parsedate_to_datetime(value) - (_server_time(response) or datetime.now(UTC))).total_seconds(),
        )
    except (TypeError, ValueError):
        return None


def _server_time(response: requests.Response) -> datetime | None:
    try:
        return parsedate_to_datetime(response.headers["Date"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return None


def _int_header(response: requests.Response, name: str) -> int | None:
    try:
        return int(response.headers[name])
    except (KeyError, ValueError):
        return None
