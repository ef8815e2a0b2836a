"""The simulator's HTTP face: the backfill endpoints of the OpenAPI subset under /v1, plus /_sim
control endpoints. Standard library only (http.server), one thread per connection."""

from __future__ import annotations

import json
import logging
import re
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from . import runs_query
from .faults import Fault
from .world import ApiError

if TYPE_CHECKING:
    from . import Simulator

log = logging.getLogger("pipelines.simulator")

_ID = r"(\d+)"
# (method, path pattern, endpoint name used by fault rules)
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(rf"/v1/teams/{_ID}/backfills"), "list"),
    ("GET", re.compile(rf"/v1/teams/{_ID}/backfills/{_ID}"), "get"),
    ("PATCH", re.compile(rf"/v1/teams/{_ID}/backfills/{_ID}"), "cancel"),
    ("POST", re.compile(rf"/v1/teams/{_ID}/transfers/{_ID}/backfills"), "create"),
    ("GET", re.compile(rf"/v1/teams/{_ID}/transfers/{_ID}/backfills/latest"), "latest"),
    ("GET", re.compile(rf"/v1/teams/{_ID}/transfers"), "transfers"),
    ("GET", re.compile(rf"/v1/teams/{_ID}/transfers/{_ID}"), "transfer"),
    ("GET", re.compile(rf"/v1/teams/{_ID}/transfers/{_ID}/runs"), "runs"),
    ("GET", re.compile(rf"/v1/teams/{_ID}/transfer_runs/{_ID}"), "run"),
)
READ_SCOPE, WRITE_SCOPE = "dwh_transfers_read", "dwh_transfers_write"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STATUS_TEXT = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    422: "UNPROCESSABLE_ENTITY",
    500: "INTERNAL_SERVER_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
}


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    cut_off: bool = False  # send only half the body, then drop the connection


@dataclass(frozen=True)
class Answered:
    """One answer to a read of the API, kept in `Simulator.answers` when the ledger is on."""

    at: datetime  # the simulated clock when it was answered
    endpoint: str  # list, get or latest
    ids: tuple[int, ...]  # team id, then the backfill or transfer id
    status: int
    fault: str | None  # the injected fault's kind, if one was
    listed: tuple[int, ...] = ()  # a list answer's backfill ids, in order


def json_answer(status: int, payload: object, **headers: str) -> Answer:
    return Answer(status, json.dumps(payload).encode(), headers=dict(headers))


def error_answer(err: ApiError, request_id: str, **headers: str) -> Answer:
    error = {"code": err.code, "message": err.message}
    if err.description:
        error["description"] = err.description
    return json_answer(err.status, {"meta": {"request_id": request_id}, "error": error}, **headers)


def bad_request(description: str) -> ApiError:
    return ApiError(400, "BAD_REQUEST", "The request was invalid.", description)


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as production; every answer carries Content-Length
    server: SimulatorHTTPServer
    server_version = "backfill-simulator"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle plus delayed ACKs add ~40 ms a call
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.info("%s %s", self.address_string(), format % args)

    # -- dispatch ---------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        sim = self.server.simulator
        request_id = uuid.uuid4().hex.upper()
        path = urlsplit(self.path).path.rstrip("/")
        self.query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        body = self._read_body()
        if path.startswith("/_sim"):
            answer = self._control(method, path, body, request_id)
            if answer is not None:
                self._send(answer)
            return
        with sim.answering():
            answer = self._api(sim, method, path, body, request_id)
            if answer is not None:
                self._send(answer)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _api(self, sim: Simulator, method: str, path: str, body: bytes, request_id: str) -> Answer | None:
        route = self._route(method, path)
        if isinstance(route, ApiError):
            return error_answer(route, request_id)
        endpoint, ids = route
        # every call counts against its key's budget, failed and faulted ones too, and every
        # answer says what is left
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        limit_headers = sim.rate_limiter.hit(bearer, sim.clock.now())
        answer = self._answer(sim, endpoint, ids, body, request_id, limit_headers)
        if answer is not None:
            answer.headers = {**limit_headers, **answer.headers}
        return answer

    def _answer(
        self,
        sim: Simulator,
        endpoint: str,
        ids: tuple[int, ...],
        body: bytes,
        request_id: str,
        limit_headers: dict[str, str],
    ) -> Answer | None:
        fault = sim.faults.pick(endpoint)
        if fault is not None:
            early = self._early_fault(sim, fault, request_id)
            if early is not None or fault.kind == "hang":
                if early is not None:
                    self._keep(sim, endpoint, ids, early.status, fault)
                return early
        try:
            key = sim.authenticate(self.headers.get("Authorization"))
            if "Retry-After" in limit_headers:
                raise _RateLimited(limit_headers)
            sim.world.sync()
            payload = self._call(sim, key, endpoint, ids, body)
            answer = json_answer(200, {"meta": {"request_id": request_id}, "data": payload}, **limit_headers)
        except _RateLimited as limited:
            err = ApiError(429, "TOO_MANY_REQUESTS", "Rate limit exceeded. Retry later.")
            self._keep(sim, endpoint, ids, err.status, fault)
            return error_answer(err, request_id, **limited.headers)
        except ApiError as err:
            extra = {"WWW-Authenticate": 'Bearer realm="supermetrics"'} if err.status == 401 else {}
            self._keep(sim, endpoint, ids, err.status, fault)
            return error_answer(err, request_id, **extra)
        listed = tuple(b["transfer_backfill_id"] for b in payload) if endpoint == "list" else ()
        self._keep(sim, endpoint, ids, 200, fault, listed)
        return late_fault(fault, answer) if fault is not None else answer

    @staticmethod
    def _keep(
        sim: Simulator,
        endpoint: str,
        ids: tuple[int, ...],
        status: int,
        fault: Fault | None,
        listed: tuple[int, ...] = (),
    ) -> None:
        if sim.answers is not None and endpoint in ("list", "get", "latest", "runs"):
            kind = fault.kind if fault is not None else None
            sim.answers.append(Answered(sim.clock.now(), endpoint, ids, status, kind, listed))

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, tuple[int, ...]] | ApiError:
        path_matched = False
        for route_method, pattern, endpoint in ROUTES:
            match = pattern.fullmatch(path)
            if match:
                path_matched = True
                if route_method == method:
                    ids = tuple(int(g) for g in match.groups())
                    if min(ids) < 1:
                        return bad_request("Path ids must be positive integers.")
                    return endpoint, ids
        if path_matched:
            return ApiError(405, "METHOD_NOT_ALLOWED", "Method not allowed.")
        return ApiError(404, "NOT_FOUND", "Not Found", f"No endpoint at {path}.")

    def _call(self, sim: Simulator, key: ApiKey, endpoint: str, ids: tuple[int, ...], body: bytes) -> object:
        team_id = ids[0]
        writes = endpoint in ("create", "cancel")
        sim.authorize(key, team_id, WRITE_SCOPE if writes else READ_SCOPE)
        world = sim.world
        if endpoint == "list":
            return [b.to_api() for b in world.list_incomplete(team_id)]
        if endpoint == "get":
            return world.get(team_id, ids[1]).to_api()
        if endpoint == "latest":
            return world.latest(team_id, ids[1]).to_api()
        if endpoint == "transfers":
            return [t.to_api() for t in sorted(world.team(team_id).transfers.values(), key=lambda t: t.id)]
        if endpoint == "transfer":
            return world.transfer(team_id, ids[1]).configuration()
        if endpoint == "runs":
            query = runs_query.parse(self.query)
            return [r.to_api() for r in query.page(world.transfer_runs(team_id, ids[1]))]
        if endpoint == "run":
            return world.transfer_run(team_id, ids[1]).detail()
        request = parse_json_object(body)
        if endpoint == "cancel":
            if request.get("status") != "CANCELLED":
                raise bad_request('The only supported update is {"status": "CANCELLED"}.')
            return world.cancel(team_id, ids[1], key.user_id).to_api()
        start, end = (parse_date(request, name) for name in ("range_start", "range_end"))
        return world.create(team_id, ids[1], start, end, key.user_id).to_api()

    def _early_fault(self, sim: Simulator, fault: Fault, request_id: str) -> Answer | None:
        """Faults that replace the answer before any work is done; None lets the call go on."""
        kind = fault.kind
        if kind in ("500", "502", "503"):
            status = int(kind)
            return error_answer(
                ApiError(status, _STATUS_TEXT[status], "An unexpected error occurred."), request_id
            )
        if kind == "429":
            err = ApiError(429, "TOO_MANY_REQUESTS", "Rate limit exceeded. Retry later.")
            return error_answer(err, request_id, **{"Retry-After": str(fault.retry_after)})
        if kind == "quota":
            err = ApiError(
                429,
                "API_ROW_QUOTA_EXCEEDED",
                "Row quota exceeded",
                "You have exceeded your row-quota limit of rows for this month.",
            )
            return error_answer(err, request_id)
        if kind == "401":
            err = ApiError(401, "API_KEY_INVALID", "Invalid API key", "Provided API key was invalid.")
            return error_answer(err, request_id, **{"WWW-Authenticate": 'Bearer realm="supermetrics"'})
        if kind == "403":
            err = ApiError(
                403, "ACCESS_DENIED", "Access Denied", "You do not have permission to perform this operation."
            )
            return error_answer(err, request_id)
        if kind in ("400", "404", "422"):
            status = int(kind)
            return error_answer(
                ApiError(status, _STATUS_TEXT[status], "The request was rejected."), request_id
            )
        if kind == "slow":
            sim.stopping.wait(fault.slow_seconds)
        elif kind == "hang":
            sim.stopping.wait(3600)  # until the server stops; then drop the connection unanswered
            self.close_connection = True
        return None

    def _control(self, method: str, path: str, body: bytes, request_id: str) -> Answer:
        """/_sim endpoints: inspect and steer a running simulator (no auth: loopback dev tool)."""
        sim = self.server.simulator
        try:
            request = parse_json_object(body) if body else {}
            if (method, path) == ("GET", "/_sim/status"):
                return json_answer(200, sim.status())
            if (method, path) == ("POST", "/_sim/clock"):
                if "speed" in request:
                    sim.clock.set_speed(float(request["speed"]))
                if "advance_seconds" in request:
                    sim.clock.advance(float(request["advance_seconds"]))
                sim.world.sync()
                return json_answer(200, sim.status())
            if (method, path) == ("POST", "/_sim/faults"):
                fault = sim.faults.add(Fault(**request))
                return json_answer(200, asdict(fault))
            if (method, path) == ("DELETE", "/_sim/faults"):
                sim.faults.clear()
                return json_answer(200, {"faults": []})
            match = re.fullmatch(rf"/_sim/teams/{_ID}/backfills/{_ID}/(retry|forget)", path)
            if method == "POST" and match:
                team_id, backfill_id = int(match[1]), int(match[2])
                sim.world.sync()
                if match[3] == "retry":
                    return json_answer(200, sim.world.retry(team_id, backfill_id).to_api())
                sim.world.forget(team_id, backfill_id)
                return json_answer(200, {"forgotten": backfill_id})
            raise ApiError(404, "NOT_FOUND", "Not Found", f"No control endpoint {method} {path}.")
        except (TypeError, ValueError) as exc:
            return error_answer(bad_request(str(exc)), request_id)
        except ApiError as err:
            return error_answer(err, request_id)

    # -- output -----------------------------------------------------------------------------

    def _send(self, answer: Answer) -> None:
        sim = self.server.simulator
        self.send_response_only(answer.status)
        self.send_header("Date", format_datetime(sim.clock.now().replace(microsecond=0), usegmt=True))
        self.send_header("Server", self.server_version)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        headers = {**sim.rate_limiter.peek_headers(), **answer.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if answer.cut_off:
            self.wfile.write(answer.body[: len(answer.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(answer.body)
        self.log_request(answer.status, len(answer.body))


class _RateLimited(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


@dataclass(frozen=True)
class ApiKey:
    """A bearer key: the user it acts as, the teams it may see (None: all), its scopes."""

    key: str
    user_id: int = 789
    team_ids: frozenset[int] | None = None
    scopes: frozenset[str] = frozenset({READ_SCOPE, WRITE_SCOPE})


def parse_json_object(body: bytes) -> dict:
    try:
        request = json.loads(body or b"null")
    except ValueError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(request, dict):
        raise bad_request("The request body must be a JSON object.")
    return request


def parse_date(request: dict, name: str) -> date:
    value = request.get(name)
    if not isinstance(value, str) or not _DATE.match(value):
        raise bad_request(f"{name} is required, as YYYY-MM-DD.")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise bad_request(f"{name} is not a valid date: {value}.") from exc


def late_fault(fault: Fault, answer: Answer) -> Answer:
    """Faults that spoil a computed answer's body."""
    kind = fault.kind
    if kind == "cut_off":
        answer.cut_off = True
    elif kind == "bad_json":
        answer.body = answer.body[: max(1, len(answer.body) // 2)]
    elif kind == "non_json":
        return Answer(200, b"Service temporarily unavailable, please try again later.", "text/plain")
    elif kind == "html":
        page = b"<!DOCTYPE html><html><head><title>Maintenance</title></head><body>Back soon</body></html>"
        return Answer(200, page, "text/html; charset=utf-8")
    elif kind in ("missing_field", "extra_field", "unknown_status"):
        payload = json.loads(answer.body)
        if "data" in payload:
            _spoil_data(payload, fault)
            answer.body = json.dumps(payload).encode()
    return answer


def _spoil_data(payload: dict, fault: Fault) -> None:
    data = payload["data"]
    items = data if isinstance(data, list) else [data]
    if fault.kind == "missing_field":
        if fault.field == "data":
            del payload["data"]
        for item in items:
            item.pop(fault.field, None)
    elif fault.kind == "extra_field":
        for item in items:
            item["priority"] = "NORMAL"
            item["labels"] = ["simulated"]
    elif items:
        items[0]["status"] = "PAUSED"
