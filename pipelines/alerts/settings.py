"""`[alerts]` in .dlt/config.toml (ALERTS__<NAME>); the webhook URLs are secrets (secrets.toml).

Alerting is on when at least one channel's URL is set. The thresholds of the events
(running_long_factor, polls_failing_after, no_success_minutes, rate_limit_below) are variables
of the model analytics.alert_events, read by pipelines.models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..supermetrics.client import is_loopback
from ..supermetrics.errors import ConfigError

KINDS = (
    "failed",
    "completed",
    "cancelled",
    "stalled",
    "running_long",
    "polls_failing",
    "no_success",
    "rate_budget_low",
)
DEFAULT_KINDS = ("failed", "stalled", "running_long", "polls_failing", "no_success", "rate_budget_low")
CHANNELS = {"webhook": "webhook_url", "slack": "slack_webhook_url"}  # channel -> its secret


@dataclass(frozen=True)
class AlertSettings:
    urls: dict[str, str] = field(default_factory=dict)  # channel -> URL (a secret: never printed)
    kinds: tuple[str, ...] = DEFAULT_KINDS
    team_ids: tuple[int, ...] = ()  # only these teams' events are sent (empty: all)
    transfer_ids: tuple[int, ...] = ()  # only these transfers' backfill events (empty: all)
    max_seconds: float = 10.0  # delivery's share of an ingest run, at most
    request_timeout: float = 5.0
    retry_after_seconds: float = 60.0  # the first retry's wait; doubled each time, at most an hour

    def wants(self, event: dict) -> bool:
        """Whether an event of analytics.alert_events is one this configuration sends (its kind,
        team and transfer), as the outbox's SQL condition decides it."""
        if event["kind"] not in self.kinds:
            return False
        if self.team_ids and event["team_id"] not in self.team_ids:
            return False
        return not (
            self.transfer_ids
            and event["transfer_id"] is not None
            and event["transfer_id"] not in self.transfer_ids
        )

    @property
    def enabled(self) -> bool:
        return bool(self.urls)


def load() -> AlertSettings:
    """The configured settings; `ConfigError` naming the setting and where to fix it."""
    import dlt

    urls = {}
    for channel, secret in CHANNELS.items():
        url = dlt.secrets.get(f"alerts.{secret}")
        if url:
            urls[channel] = _checked_url(str(url), secret)
    kinds = tuple(_list(dlt.config.get("alerts.events"), "events", str) or DEFAULT_KINDS)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ConfigError(
            f"alerts.events names unknown kinds {unknown}: choose from {', '.join(KINDS)} "
            "([alerts] events in .dlt/config.toml or ALERTS__EVENTS)"
        )
    return AlertSettings(
        urls=urls,
        kinds=kinds,
        team_ids=tuple(_list(dlt.config.get("alerts.team_ids"), "team_ids", int)),
        transfer_ids=tuple(_list(dlt.config.get("alerts.transfer_ids"), "transfer_ids", int)),
        max_seconds=_number("max_seconds", 10.0),
        request_timeout=_number("request_timeout", 5.0, above_zero=True),  # 0 would never connect
        retry_after_seconds=_number("retry_after_seconds", 60.0),
    )


def _checked_url(url: str, secret: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"alerts.{secret} is not an http(s) URL (not shown: it is a secret)")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"alerts.{secret} must use https unless it points at this machine (not shown)")
    return url


def _list(value: object, name: str, kind: type) -> list:
    if value is None:
        return []
    if isinstance(value, str):  # ALERTS__EVENTS='["failed"]' arrives as text when dlt cannot tell
        import json

        try:
            value = json.loads(value)
        except ValueError:
            value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple):
        raise ConfigError(f"alerts.{name} must be a list, such as {name} = [...], not {value!r}")
    try:
        return [kind(v) for v in value]
    except (TypeError, ValueError):
        raise ConfigError(f"alerts.{name} must be a list of {kind.__name__}, not {value!r}") from None


def _number(name: str, default: float, above_zero: bool = False) -> float:
    import dlt

    value = dlt.config.get(f"alerts.{name}")
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0 or (above_zero and number == 0) or number != number:  # NaN is no number either
        wanted = "more than zero" if above_zero else "zero or more"
        raise ConfigError(
            f"alerts.{name} = {value!r} is not a number of {wanted}: set [alerts] {name} in "
            f".dlt/config.toml or ALERTS__{name.upper()}"
        )
    return number
