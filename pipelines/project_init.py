"""`backfills init`: the configuration a scheduled job needs, written into `.dlt/` of a folder.

`config.toml` holds what is not secret (the teams, the API's address); `secrets.toml` is a
template for the API key, readable by its owner only (0600) and ignored by git (a `.gitignore`
beside it). Nothing that exists is overwritten: a second `init` says what is already there.
"""

from __future__ import annotations

import os
from pathlib import Path

from .supermetrics.errors import ConfigError

PRODUCTION_URL = "https://dts-api.supermetrics.com/v1"

_CONFIG = """\
# Written by `backfills init`. Secrets go in secrets.toml beside it, or in environment variables.
[runtime]
dlthub_telemetry = false

[backfills]
# where the history lives: "duckdb" (the --db file), "postgres" or "filesystem"
destination = "duckdb"

[sources.supermetrics]
base_url = "{base_url}"
team_ids = [{team_ids}]
"""

_SECRETS = """\
# Written by `backfills init`: readable by its owner only, and ignored by git (.gitignore).
# The API key: create one in the Supermetrics Hub, with scope dwh_transfers_read (read only).
# Or leave this file out and set SOURCES__SUPERMETRICS__API_KEY in the job's environment.
[sources.supermetrics]
api_key = ""
"""


def init(folder: Path, team_ids: list[int], base_url: str = PRODUCTION_URL) -> list[Path]:
    """Write `.dlt/config.toml`, `.dlt/secrets.toml` and `.dlt/.gitignore` in `folder`; returns
    what was written. Raises ConfigError when one of them exists already."""
    dlt_dir = folder / ".dlt"
    config, secrets, ignore = dlt_dir / "config.toml", dlt_dir / "secrets.toml", dlt_dir / ".gitignore"
    existing = [p for p in (config, secrets) if p.exists()]
    if existing:
        raise ConfigError(
            f"{', '.join(str(p) for p in existing)} exists already: nothing was written; edit it, or "
            "remove it and run backfills init again"
        )
    dlt_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(_CONFIG.format(base_url=base_url, team_ids=", ".join(str(t) for t in team_ids)))
    # created 0600 from the start: the key is never readable by others, not even for a moment
    fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(_SECRETS)
    written = [config, secrets]
    if not ignore.exists() or "secrets.toml" not in ignore.read_text():
        with ignore.open("a") as file:
            file.write("secrets.toml\n")
        written.append(ignore)
    return written
