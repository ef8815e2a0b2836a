"""Alerts: the events of analytics.alert_events, recorded once in an outbox in the build's own
transaction, delivered after it to a JSON webhook and/or Slack, retried on later runs.

- `settings`: `[alerts]` in .dlt/config.toml, the webhook URLs as secrets.
- `outbox`: the table `alerts.outbox` (one row per event and channel) and how a build fills it.
- `delivery`: payloads, HTTP, retries with backoff; never longer than `max_seconds` in a run.
"""
