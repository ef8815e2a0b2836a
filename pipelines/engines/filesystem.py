"""The filesystem: the raw history as Parquet files in `[destination.filesystem] bucket_url`
(pipelines.lake). A lock file beside dlt's working folder keeps runs apart (one machine loads a
bucket); the run loads and stops there: its baseline is read from the committed files through an
in-memory DuckDB, nothing needs settling (a repeated load rewrites its own files), and the models
are built by Spark (`backfills models`, pipelines.spark), so the run builds no SQL model, sends no
alert, and report, check and query have no tables to read."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..supermetrics.settings import DATASET_NAME
from .base import Connection, Warehouse
from .duckdb import DuckDBConnection


class LakeWarehouse(Warehouse, name="filesystem"):
    loader_file_format = "parquet"
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
            "read": f"destination is filesystem: {self.label} holds the raw history as Parquet, not the "
            "analytics tables this command reads; build them with `backfills models --engine spark` "
            "(docs/lake.md)",
        }

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
            yield con  # expose_raw attaches the committed files, once the pending load is done

    def expose_raw(self, con: Connection) -> None:
        from ..lake import attach

        attach(con.raw, self.lake(), DATASET_NAME)

    def settle(self, con: Connection, reloaded: list[str] | None = None) -> list[str]:
        return []  # a load dlt repeats rewrites the same files: never doubled

    def discard(self, load_ids: list[str]) -> int:
        return 0  # the files of a load that never completes are never read (pipelines.lake)

    def lake(self) -> Any:
        """The bucket's dataset of raw tables (pipelines.lake)."""
        from ..lake import open_lake

        return open_lake(self.credentials, DATASET_NAME)

    def read_lake(self) -> Connection:
        """An in-memory DuckDB with the raw tables as views over the bucket's committed files."""
        import duckdb

        con = DuckDBConnection(duckdb.connect())
        self.expose_raw(con)
        return con
