"""Fault injection: make chosen endpoints misbehave, by schedule ("the next 2 calls") or by chance."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

ENDPOINTS = ("list", "get", "latest", "create", "cancel", "transfers", "transfer", "runs", "run", "any")

# kind -> what the answer looks like
FAULT_KINDS = {
    "500": "500 INTERNAL_SERVER_ERROR envelope",
    "502": "502 BAD_GATEWAY envelope",
    "503": "503 SERVICE_UNAVAILABLE envelope",
    "429": "429 TOO_MANY_REQUESTS with Retry-After (--retry-after seconds)",
    "quota": "429 API_ROW_QUOTA_EXCEEDED (monthly quota; retrying does not help)",
    "400": "400 BAD_REQUEST",
    "401": "401 API_KEY_INVALID",
    "403": "403 ACCESS_DENIED",
    "404": "404 NOT_FOUND",
    "422": "422 UNPROCESSABLE_ENTITY",
    "slow": "the normal answer after a delay (--slow-seconds, real time)",
    "hang": "no answer at all until the server stops",
    "cut_off": "headers promise the whole body, the connection closes half-way",
    "bad_json": "200 whose JSON body is cut short",
    "non_json": "200 with a text/plain body",
    "html": "200 with an HTML maintenance page",
    "missing_field": "200 whose backfills lack a required field (`field`, default status; data drops data)",
    "extra_field": "200 whose backfills carry unknown extra fields (allowed by the spec)",
    "unknown_status": "200 whose first backfill has an unknown status value (PAUSED)",
}


@dataclass
class Fault:
    """One rule. With `times` it fires on the next `times` matching calls; with `probability`
    on each matching call by chance; with neither, on every matching call."""

    kind: str
    endpoint: str = "any"
    times: int | None = None
    probability: float | None = None
    retry_after: int = 30
    slow_seconds: float = 2.0
    field: str = "status"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(FAULT_KINDS)}")
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; known: {', '.join(ENDPOINTS)}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1")
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise ValueError("probability must be between 0 and 1")


def parse_fault(spec: str) -> Fault:
    """Parse the CLI form `ENDPOINT:KIND[:TIMES | @PROBABILITY]`.

    Example:
        >>> parse_fault("list:503:2").times
        2
    """
    probability = None
    if "@" in spec:
        spec, _, p = spec.partition("@")
        probability = float(p)
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"fault {spec!r} is not ENDPOINT:KIND[:TIMES] or ENDPOINT:KIND@PROBABILITY")
    times = int(parts[2]) if len(parts) == 3 else None
    return Fault(kind=parts[1], endpoint=parts[0], times=times, probability=probability)


class FaultInjector:
    """Holds the rules and decides, per call, which fault (if any) applies. Thread-safe."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[Fault] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, fault: Fault | None = None, **kwargs: object) -> Fault:
        fault = fault or Fault(**kwargs)  # type: ignore[arg-type]
        with self._lock:
            self._rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    def pick(self, endpoint: str) -> Fault | None:
        with self._lock:
            for fault in self._rules:
                if fault.endpoint not in ("any", endpoint):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._rules.remove(fault)
                    return fault
                if fault.probability is None or self._rng.random() < fault.probability:
                    return fault
            return None
