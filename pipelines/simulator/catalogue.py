"""Realistic transfer-run error messages, drawn at random with the world's seeded RNG."""

from __future__ import annotations

import random

DATA_SOURCES = (
    "Google Ads",
    "Facebook Ads",
    "Google Analytics 4",
    "LinkedIn Ads",
    "Microsoft Advertising",
    "TikTok Ads",
    "Search Console",
    "HubSpot",
)

# (weight, template). Placeholders are filled per occurrence, so the same kind of error
# appears with different ids, numbers and names, as real ones do.
_TEMPLATES: tuple[tuple[int, str], ...] = (
    (5, "Connection timeout to data source after {seconds} seconds"),
    (3, "Data source credentials have expired. Reconnect the {source} login '{login}' in Supermetrics Hub."),
    (3, "API quota exceeded for {source}: {calls} calls in the last 24 hours. Retry later."),
    (2, "Account {account} not found or access has been revoked"),
    (2, "{source} API returned HTTP 500 for report request {request}"),
    (1, "Field '{field}' is not available for report type {report}"),
    (1, "Destination write failed: BigQuery dataset 'marketing_raw' returned 503 Service Unavailable"),
    (1, "Rate limit reached for {source} property {account} (retry after {seconds} s)"),
)

_FIELDS = ("conversions_value", "cost_micros", "video_views", "engagement_rate", "search_impression_share")
_REPORTS = ("CAMPAIGN_PERFORMANCE", "AD_GROUP_PERFORMANCE", "KEYWORDS_PERFORMANCE", "GEO_PERFORMANCE")
_LOGINS = ("marketing@example.com", "ads-team@example.com", "analytics@example.org")


def random_error(rng: random.Random, source: str) -> str:
    """One error message as a failed transfer run would report it."""
    weights = [w for w, _ in _TEMPLATES]
    template = rng.choices([t for _, t in _TEMPLATES], weights=weights)[0]
    return template.format(
        seconds=rng.choice((30, 60, 120, 300, 600)),
        source=source,
        login=rng.choice(_LOGINS),
        calls=rng.randrange(10_000, 500_000),
        account=f"{rng.randrange(100, 999)}-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
        request=f"req_{rng.getrandbits(48):012x}",
        field=rng.choice(_FIELDS),
        report=rng.choice(_REPORTS),
    )
