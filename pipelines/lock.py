"""One ingest at a time per database: an advisory lock file beside the DuckDB file."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from .supermetrics.errors import LockedError, StorageError


class RunLock:
    """`with RunLock(db_path, wait_seconds):` holds `<db>.lock` or raises `LockedError`.

    The OS releases the lock when the holder dies, so a killed run never leaves it stuck.
    """

    def __init__(self, db_path: Path, wait_seconds: float = 0.0) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self.wait_seconds = wait_seconds
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(
                f"cannot write in the database's folder {self.path.parent} ({exc.strerror}): "
                "choose a writable place with --db or BACKFILLS_DB"
            ) from None
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise LockedError(
                        f"another ingest (pid {holder}) is running on {self.path.with_suffix('')}: this run "
                        f"exits; use --wait-lock SECONDS to wait for it instead"
                    ) from None
                time.sleep(0.2)  # polling a lock held by another process: there is nothing to observe
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
