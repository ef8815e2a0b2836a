"""Check API bodies against the documented shape and turn backfills into typed records.

A body that is not the documented shape fails its call (`InvalidResponseError`): nothing from it
is loaded. Unknown fields and unknown status values are not errors: they are kept (fields in
`extra_fields` as JSON, statuses as given) and reported as warnings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .errors import InvalidResponseError
from .settings import KNOWN_STATUSES


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an integer")
    return value


def _count(value: Any) -> int:
    if _int(value) < 0:
        raise TypeError("a non-negative integer")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("a non-empty string")
    return value


def _date(value: Any) -> date:
    try:
        return date.fromisoformat(_text(value))
    except ValueError as exc:
        raise TypeError("a date YYYY-MM-DD") from exc


def _timestamp(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(_text(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise TypeError("an ISO 8601 timestamp") from exc
    if parsed.tzinfo is None:
        raise TypeError("a timestamp with a time zone")
    return parsed


REQUIRED_FIELDS: dict[str, Callable[[Any], Any]] = {
    "transfer_backfill_id": _int,
    "transfer_id": _int,
    "range_start_date": _date,
    "range_end_date": _date,
    "status": _text,
    "created_time": _timestamp,
    "created_user_id": _int,
    "transfer_runs_total": _count,
    "transfer_runs_created": _count,
    "transfer_runs_completed": _count,
    "transfer_runs_failed": _count,
}
NULLABLE_FIELDS: dict[str, Callable[[Any], Any]] = {
    "start_time": _timestamp,
    "end_time": _timestamp,
    "removed_time": _timestamp,
    "removed_user_id": _int,
}
LIST_FIELDS = ("error_report",)


@dataclass
class BackfillRecord:
    """One backfill as the API gave it: typed fields, its sorted error report, and hashes of both."""

    fields: dict[str, Any]
    error_report: list[dict[str, Any]]
    extra_fields: dict[str, Any]
    state_hash: str
    error_report_hash: str
    warnings: list[str] = field(default_factory=list)

    @property
    def backfill_id(self) -> int:
        return self.fields["transfer_backfill_id"]

    @property
    def status(self) -> str:
        return self.fields["status"]


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def parse_backfill(item: Any, where: str) -> BackfillRecord:
    """Validate one backfill object; `where` names it in error messages."""
    if not isinstance(item, dict):
        raise InvalidResponseError(f"{where} is not a JSON object")
    fields: dict[str, Any] = {}
    for name, check in REQUIRED_FIELDS.items():
        if name not in item:
            raise InvalidResponseError(f"{where} lacks the required field {name}")
        fields[name] = _checked(check, item[name], name, where)
    for name, check in NULLABLE_FIELDS.items():
        value = item.get(name)
        fields[name] = None if value is None else _checked(check, value, name, where)
    errors = item.get("error_report", [])
    if not isinstance(errors, list):
        raise InvalidResponseError(f"{where}: error_report is not a list")
    error_report = []
    for n, entry in enumerate(errors):
        entry_where = f"{where} error_report[{n}]"
        if not isinstance(entry, dict) or "transfer_run_date" not in entry or "error" not in entry:
            raise InvalidResponseError(f"{entry_where} is not {{transfer_run_date, error}}")
        error_report.append(
            {
                "transfer_run_date": _checked(
                    _date, entry["transfer_run_date"], "transfer_run_date", entry_where
                ),
                "error": _checked(_text, entry["error"], "error", entry_where),
            }
        )
    # the API's order is not meaningful; sorting keeps an unchanged report from looking changed
    error_report.sort(key=lambda e: (e["transfer_run_date"], e["error"]))
    extra = {
        k: v
        for k, v in item.items()
        if k not in REQUIRED_FIELDS and k not in NULLABLE_FIELDS and k not in LIST_FIELDS
    }
    warnings = []
    if extra:
        warnings.append(f"{where} has unknown fields {', '.join(sorted(extra))} (kept in extra_fields)")
    if fields["status"] not in KNOWN_STATUSES:
        warnings.append(f"{where} has the unknown status {fields['status']!r} (kept as given)")
    canonical_errors = [[str(e["transfer_run_date"]), e["error"]] for e in error_report]
    canonical = {**{k: v for k, v in item.items() if k != "error_report"}, "error_report": canonical_errors}
    return BackfillRecord(
        fields, error_report, extra, _digest(canonical), _digest(canonical_errors), warnings
    )


def _checked(check: Callable[[Any], Any], value: Any, name: str, where: str) -> Any:
    try:
        return check(value)
    except TypeError as exc:
        raise InvalidResponseError(f"{where}: {name} is {value!r}, expected {exc}") from None


def envelope_data(body: Any, what: str) -> Any:
    """The `data` of a success envelope `{meta: {request_id}, data}`."""
    if not isinstance(body, dict):
        raise InvalidResponseError(f"{what}: the body is not a JSON object")
    if "data" not in body:
        raise InvalidResponseError(f"{what}: the body has no data field")
    return body["data"]


def parse_listing(body: Any, what: str) -> list[BackfillRecord]:
    """The records of a list answer. Any invalid item fails the whole answer."""
    data = envelope_data(body, what)
    if not isinstance(data, list):
        raise InvalidResponseError(f"{what}: data is not a list")
    records = [parse_backfill(item, f"{what}: data[{n}]") for n, item in enumerate(data)]
    ids = [r.backfill_id for r in records]
    if len(set(ids)) != len(ids):
        raise InvalidResponseError(f"{what}: the same transfer_backfill_id is listed twice")
    return records
