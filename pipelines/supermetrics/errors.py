"""Every failure the monitor reports: a class name for its one-line message and an exit code.

The tree (exit codes after sysexits.h):

- MonitorError: root, exit 1
  - UsageError: an unknown subcommand or flag, a bad option value, an invalid query, 64 (EX_USAGE)
  - ConfigError: bad or missing configuration, 78 (EX_CONFIG)
  - Interrupted: Ctrl-C (SIGINT) 130, SIGTERM 143 (the shell's 128 + the signal's number)
  - LockedError: another run, or another process, holds the database, 73 (EX_CANTCREAT)
  - ModelError: a SQL model failed to build, or a data test failed, 70 (EX_SOFTWARE)
  - PublishError: the copy for BI tools could not be written, 74 (EX_IOERR)
  - StorageError: the database's folder or lock file cannot be created (read-only), 74 (EX_IOERR)
  - ApiError: the API said no, or could not be understood
    - AuthError: 401 / 403, 77 (EX_NOPERM)
    - RateLimitError: 429 past the Retry-After cap, or the monthly quota, 75 (EX_TEMPFAIL)
    - ApiUnavailableError: 5xx, timeouts, connection errors after retries, 69 (EX_UNAVAILABLE)
    - RequestRejectedError: 400 / 404 / 422 on a call we made, 78 (EX_CONFIG)
    - InvalidResponseError: a body that is not the documented shape, 65 (EX_DATAERR)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ..text import shorten


class MonitorError(Exception):
    """Root of the monitor's errors. `str()` is the one line printed on stderr."""

    exit_code = 1
    failure_class = "error"
    result = None  # a failed poll's: the run's IngestResult (the other teams), set by ingest()


class UsageError(MonitorError):
    """The command was used wrongly: an unknown subcommand or flag, an invalid query."""

    exit_code = 64
    failure_class = "usage error"


class ConfigError(MonitorError):
    exit_code = 78
    failure_class = "config error"


class Interrupted(MonitorError):
    """Stopped from outside: Ctrl-C (SIGINT) or SIGTERM, with the shell's code for the signal;
    whatever was cut short is finished by the next run (pipelines.stopping)."""

    exit_code = 130
    failure_class = "interrupted"

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class LockedError(MonitorError):
    exit_code = 73
    failure_class = "locked"


class ModelError(MonitorError):
    exit_code = 70
    failure_class = "model error"


class PublishError(MonitorError):
    exit_code = 74
    failure_class = "publish error"


class StorageError(MonitorError):
    """A file the run must write cannot be created: a read-only or missing folder."""

    exit_code = 74
    failure_class = "storage error"


class ApiError(MonitorError):
    """An API call failed. Carries what the API said, for the poll log."""

    exit_code = 69
    failure_class = "API error"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
        server_time: datetime | None = None,
        api_message: str | None = None,
    ) -> None:
        if request_id:
            message = f"{message} (request_id {shorten(request_id, 60)})"
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code
        self.request_id = request_id
        self.server_time = server_time  # the answer's Date header, when there was an answer
        self.api_message = api_message  # the API's error.message, whole and as sent (untrusted)


class AuthError(ApiError):
    exit_code = 77
    failure_class = "auth error"


class RateLimitError(ApiError):
    exit_code = 75
    failure_class = "rate limited"


class ApiUnavailableError(ApiError):
    exit_code = 69
    failure_class = "API unavailable"


class RequestRejectedError(ApiError):
    exit_code = 78
    failure_class = "request rejected"


class InvalidResponseError(ApiError):
    exit_code = 65
    failure_class = "invalid response"


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what caused it, outermost first (dlt keeps its cause in `.exception`)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "exception", None) or exc.__cause__ or exc.__context__
