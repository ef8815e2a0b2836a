"""The filesystem: the raw history as Delta tables in `[destination.filesystem] bucket_url`
(pipelines.lake). A lock file beside dlt's working folder keeps runs apart (one machine loads a
bucket). The run loads, settles what dlt loaded twice (pipelines.lake_settle), makes an older
release's plain Parquet Delta (pipelines.lake_upgrade), compacts the tables when due
(pipelines.lake_compact), and stops there: its baseline is read from the tables' snapshots
through an in-memory DuckDB, and the models are built by Spark (`backfills models`,
pipelines.spark), so the run builds no SQL model, sends no alert, and report, check and query
have no tables to read."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..supermetrics.errors import StorageError
from ..supermetrics.settings import DATASET_NAME
from ..text import one_line
from .base import Connection, Warehouse
from .duckdb import DuckDBConnection

log = logging.getLogger(__name__)


class LakeWarehouse(Warehouse, name="filesystem"):
    loader_file_format = "parquet"
    table_format = "delta"
    builds_in_run = False

    @classmethod
    def configured_credentials(cls) -> Any:
        from ..lake import bucket_config

        return bucket_config()

    def refusals(self) -> dict[str, str]:
        return {
            "alerts": "alerts need a database (duckdb or postgres): with destination filesystem no model "
            "is built by the run; remove [alerts] or ingest into a database",
            "sql_models": f"destination is filesystem: the models of {self.label} are built by Spark, "
            "`backfills models --engine spark`",
            "read": f"destination is filesystem: {self.label} holds the raw history as Delta tables, not "
            "the analytics tables this command reads; build them with `backfills models --engine spark` "
            "(docs/lake.md)",
        }

    def prepare(self) -> None:
        from ..lake import require_deltalake
        from ..lake_compact import settings

        require_deltalake()
        settings()  # a bad [lake] setting stops the run before it polls

    @property
    def label(self) -> str:
        """The bucket's URL without a user or password it may carry (sftp://user:pw@host)."""
        url = urlsplit(str(self.credentials.bucket_url))
        host = url.hostname or ""
        return urlunsplit(url._replace(netloc=host + (f":{url.port}" if url.port else "")))

    def working_dir(self) -> Path:
        digest = zlib.crc32(str(self.credentials.bucket_url).encode())  # one folder per bucket
        return self.db_path.parent / f".filesystem-{digest:08x}.dlt"

    def dlt_destination(self) -> Any:
        import dlt

        # the bucket's credentials dlt resolves itself, from the same [destination.filesystem]
        return dlt.destinations.filesystem(bucket_url=self.credentials.bucket_url)

    def connect(self, read_only: bool = False) -> Connection:
        self.require("read")
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def session(self, started: float, wait_lock: float) -> Iterator[Connection]:
        import duckdb

        from ..lock import RunLock

        self.working_dir().parent.mkdir(parents=True, exist_ok=True)
        with RunLock(self.working_dir(), wait_lock), DuckDBConnection(duckdb.connect()) as con:
            yield con  # expose_raw attaches the snapshots, once the pending load is done

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        from ..lake import require_deltalake

        require_deltalake()
        from deltalake.exceptions import DeltaError

        try:
            yield
        except DeltaError as exc:  # the bucket cannot be read or written as a Delta table
            raise StorageError(f"{self.label}: {one_line(str(exc))}") from None

    def expose_raw(self, con: Connection) -> None:
        from ..lake import attach

        attach(con.raw, self.lake(), DATASET_NAME)

    def reloading(self, load_ids: list[str]) -> None:
        if load_ids:  # settled once loaded; until then a stop leaves the next run the same work
            unsettled = self._unsettled()
            listed = None if unsettled is None else sorted(set(unsettled + load_ids))
            temporary = self._to_settle().with_suffix(".tmp")
            temporary.write_text(json.dumps(listed))
            os.replace(temporary, self._to_settle())

    def settle(self, con: Connection, reloaded: list[str] | None = None) -> list[str]:
        from ..lake_settle import settle
        from ..settle import SettleResult

        unsettled = self._unsettled()
        load_ids = None if unsettled is None else sorted(set(unsettled + (reloaded or [])))
        removed = settle(self.lake(), load_ids) if load_ids != [] else {}
        self._to_settle().unlink(missing_ok=True)
        return [SettleResult(removed).describe()] if removed else []

    def discard(self, load_ids: list[str]) -> int:
        from ..lake_settle import discard

        lake = self.lake()
        return discard(lake, [load_id for load_id in load_ids if not lake.load_completed(load_id)])

    def upgrade_storage(self) -> list[str]:
        from ..lake_upgrade import upgrade

        converted = upgrade(self.lake())
        if not converted:
            return []
        return [f"made the plain Parquet of an older release Delta tables: {', '.join(converted)}"]

    def maintain(self) -> list[str]:
        from deltalake.exceptions import DeltaError

        from ..lake_compact import compact_due, settings

        rules = settings()
        try:
            return [f"compacted {done.describe()}" for done in compact_due(self.lake(), rules)]
        except (DeltaError, OSError) as exc:  # the load is done; the next run compacts again
            log.warning("compaction failed, the next run tries again: %s", one_line(str(exc)))
            return []

    def compact(self, wait_lock: float, retention_hours: int | None = None) -> list[str]:
        from ..lake_compact import compact_all, settings
        from ..lock import RunLock

        rules = settings()
        if retention_hours is not None:
            rules = dataclasses.replace(rules, retention_hours=retention_hours)
        self.working_dir().parent.mkdir(parents=True, exist_ok=True)
        with self.errors(), RunLock(self.working_dir(), wait_lock):
            done = compact_all(self.lake(), rules)
        if not done:
            return [f"{self.label} holds no Delta tables yet: run backfills ingest first"]
        return [f"compacted {line.describe()}" for line in done]

    def _to_settle(self) -> Path:
        return self.working_dir() / "loads-to-settle.json"

    def _unsettled(self) -> list[str] | None:
        """The loads to settle an earlier run left; None: every load (the file was cut short)."""
        try:
            listed = json.loads(self._to_settle().read_text())
        except FileNotFoundError:
            return []
        except ValueError:
            return None
        return listed if isinstance(listed, list) else None

    def lake(self) -> Any:
        """The bucket's dataset of raw tables (pipelines.lake)."""
        from ..lake import open_lake

        return open_lake(self.credentials, DATASET_NAME)

    def read_lake(self) -> Connection:
        """An in-memory DuckDB with the raw tables as views over their snapshots."""
        import duckdb

        con = DuckDBConnection(duckdb.connect())
        self.expose_raw(con)
        return con
