"""Transfers and transfer runs as the API gives them, checked and turned into raw-table rows.

The same rules as for backfills (validation.py): a body not of the documented shape fails its
call, so nothing from it is stored; fields the description marks nullable may be null.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidResponseError
from .validation import _checked, _date, _digest, _int, _text, _timestamp, envelope_data

RUN_TYPES = ("Recurring", "Backfill")


def _list_of_objects(body: Any, what: str) -> list[dict[str, Any]]:
    data = envelope_data(body, what)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise InvalidResponseError(f"{what}: data is not a list of objects")
    return data


def _optional(check: Any, item: dict[str, Any], name: str, where: str) -> Any:
    value = item.get(name)
    return None if value is None else _checked(check, value, name, where)


def _text_or_empty(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise TypeError("a non-negative number")
    return float(value)


def parse_transfers(body: Any, what: str) -> list[dict[str, Any]]:
    """Rows of the `transfers` table (without poll_id, team_id, observed_at), one per transfer."""
    rows = []
    for n, item in enumerate(_list_of_objects(body, what)):
        where = f"{what}: data[{n}]"
        if "dwh_transfer_id" not in item:
            raise InvalidResponseError(f"{where} lacks the required field dwh_transfer_id")
        source = item.get("data_source")
        service = source.get("service_name") if isinstance(source, dict) else None
        row = {
            "transfer_id": _checked(_int, item["dwh_transfer_id"], "dwh_transfer_id", where),
            "display_name": _optional(_text_or_empty, item, "display_name", where),
            "data_source": service if isinstance(service, str) else None,
            "status": _optional(_text_or_empty, item, "status", where),
            "state": _optional(_text_or_empty, item, "state", where),
            "schedule": _optional(_text_or_empty, item, "schedule", where),
        }
        row["state_hash"] = _digest(row)
        rows.append(row)
    return rows


def parse_runs(body: Any, what: str) -> list[dict[str, Any]]:
    """Rows of the `transfer_runs` table (without poll_id, team_id, transfer_id, observed_at)."""
    rows = []
    for n, item in enumerate(_list_of_objects(body, what)):
        where = f"{what}: data[{n}]"
        for name in ("id", "status", "type", "message"):
            if name not in item:
                raise InvalidResponseError(f"{where} lacks the required field {name}")
        run_type = _checked(_text, item["type"], "type", where)
        if run_type not in RUN_TYPES:
            raise InvalidResponseError(f"{where}: type is {run_type!r}, expected Recurring or Backfill")
        row = {
            "run_id": _checked(_int, item["id"], "id", where),
            "type": run_type,
            "status": _checked(_text, item["status"], "status", where),
            "data_date": _optional(_date, item, "data_date", where),
            "created_time": _optional(_timestamp, item, "created_time", where),
            "ended_time": _optional(_timestamp, item, "ended_time", where),
            "total_duration": _optional(_number, item, "total_duration", where),
            "total_rows": _optional(_int, item, "total_rows", where),
            "message": _checked(_text_or_empty, item["message"], "message", where),
        }
        row["state_hash"] = _digest({k: str(v) for k, v in row.items()})
        rows.append(row)
    return rows
