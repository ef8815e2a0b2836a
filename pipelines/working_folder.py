"""Put dlt's working folder right after a stopped run, before dlt reads it: never stuck.

A run's data moves through the pipeline's working folder (dlt 1.31), each move one rename:

    normalize/<tmp>/new/<id>     extract writes the poll's files here, then renames the package to
    normalize/extracted/<id>     a package to normalize; normalize writes
    load/new/<id>                and renames it to
    load/normalized/<id>         a package to load, THEN deletes normalize/extracted/<id>;
                                 its jobs move new_jobs/ -> started_jobs/ -> completed_jobs/
    load/loaded/<id>             the package once its load completed

A kill (or Ctrl-C, SIGTERM) between two moves leaves an intermediate state. Most of them dlt
finishes itself (a package in `normalize/extracted/` is normalized, `load/new/` rebuilt, a job in
`started_jobs/` loaded again and settled by pipelines.settle). These it does not, and every later
run would fail on them; `recover` decides, for each, which copy is authoritative:

- `normalize/extracted/<id>` beside `load/normalized/<id>` or `load/loaded/<id>`: normalize had
  committed, and the kill came before it deleted the extracted copy (in whole or in part). dlt
  would normalize it again into the folder that exists ("Directory not empty"). The normalized
  copy is whole (one rename made it): the extracted copy goes.
- `load/normalized/<id>` beside `load/loaded/<id>` (a power cut can undo or repeat a rename):
  the normalized copy wins. Loading it again is safe: rows loaded twice are settled.
- `normalize/<tmp>/` and `load/new/<id>`: an extract or a normalize that never committed. Their
  inputs are still where they were (the API is polled anew; the extracted package is still there),
  so they go.
- A pending package (extracted or normalized) with a file a power cut truncated or emptied
  (dlt writes without fsync): a JSON file that does not parse, a job file that is empty, a gzip
  stream cut short or a Parquet file without its footer, a missing `schema.json`. It can never
  load, so it is dropped (a normalized one with its extracted twin: normalized anew, its rows
  would get new dlt ids) with a warning naming it; the caller discards the rows of a dropped
  normalized package whose load did not complete (pipelines.settle.discard). A damaged `.restore`
  snapshot (read only to abort a package) is removed and the package kept. The pipeline's own
  `state.json` and schema files, when unreadable, go too: the baseline is read from the tables,
  and dlt makes them anew.
- Stray temporary files of dlt's atomic saves (written, not yet renamed) in the folders that
  should hold only packages go.

And every run keeps only the newest `KEEP_LOADED` loaded packages: dlt would keep them all.

Whatever is dropped is first renamed into `trash/` beside the pipeline's folder, then deleted:
a stop during the repair leaves nothing half-deleted where dlt looks. Only the run holding the run
lock calls this: no other run can be using the folder.
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

TRASH = "trash"
# dlt keeps every loaded package (about 100 KB each: its jobs, schema and state snapshot): one a
# run, some 10 GB a year at five minutes. Nothing reads them again; the newest few stay to look at.
KEEP_LOADED = 10


@dataclass
class Recovery:
    warnings: list[str] = field(default_factory=list)
    dropped_loads: list[str] = field(default_factory=list)  # normalized packages dropped: discard rows


def recover(pipeline_dir: Path) -> Recovery:
    """Repair `pipeline_dir` (dlt's working folder of one pipeline); returns what was done."""
    recovery = Recovery()
    trash = pipeline_dir.parent / TRASH
    if trash.exists():  # a repair stopped half-way: what it moved there is already out of dlt's way
        shutil.rmtree(trash, ignore_errors=True)
    if not pipeline_dir.is_dir():
        return recovery
    normalize, load = pipeline_dir / "normalize", pipeline_dir / "load"
    extracted, new = normalize / "extracted", load / "new"
    normalized, loaded = load / "normalized", load / "loaded"

    for folder in _dirs(normalize):
        if folder.name != "extracted":  # an extract's own temporary folder: never committed
            _drop(folder, trash)
    for package in _dirs(new):  # a normalize that never committed
        _drop(package, trash)
    for package in _dirs(normalized):
        if (loaded / package.name).exists():
            _drop(loaded / package.name, trash)
    for folder, pending in ((normalized, True), (extracted, False)):  # a damaged copy first: then
        for package in _dirs(folder):  # an intact extracted twin is normalized again
            damaged = _damage(package, trash)
            if damaged is None:
                continue
            _drop(package, trash)
            if pending:
                recovery.dropped_loads.append(package.name)
            recovery.warnings.append(f"dropped load package {package.name}: {damaged} (a power cut)")
        if pending:
            # a dropped load's twin too: normalized anew, its rows would get new dlt ids that no
            # settle could tell from those of the rows that had loaded
            done = set(recovery.dropped_loads)
            for package in _dirs(extracted):
                if (
                    package.name in done
                    or (normalized / package.name).exists()
                    or (loaded / package.name).exists()
                ):
                    _drop(package, trash)
                    recovery.warnings.append(
                        f"finished the normalize of load package {package.name} that a stopped run "
                        "left half-committed"
                    )
    for path in [pipeline_dir / "state.json", *sorted((pipeline_dir / "schemas").glob("*.json"))]:
        if path.is_file() and not _json_ok(path):
            _drop(path, trash)
            recovery.warnings.append(f"removed dlt's unreadable {path.name}; dlt makes it anew")
    for folder in (extracted, new, normalized):  # (loaded/ too may hold one: dlt lists only folders)
        for stray in _files(folder):  # an atomic save cut between its write and its rename
            stray.unlink(missing_ok=True)
    for package in _dirs(loaded)[:-KEEP_LOADED]:  # load ids sort by time: the oldest go
        _drop(package, trash)
    shutil.rmtree(trash, ignore_errors=True)
    return recovery


def _dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _files(folder: Path) -> list[Path]:
    return (
        [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")] if folder.is_dir() else []
    )


def _drop(path: Path, trash: Path) -> None:
    """Out of dlt's sight in one rename; deleted at the end of the repair (or of the next one)."""
    trash.mkdir(exist_ok=True)
    path.rename(trash / f"{path.parent.name}-{path.name}")


def _damage(package: Path, trash: Path) -> str | None:
    """What makes a pending package unreadable, or None. A damaged `.restore` (the snapshot dlt
    would restore its local state from if the package were aborted) is removed: the package loads
    without it."""
    restore = package / ".restore"
    if not all(_json_ok(path) for path in restore.rglob("*.json")):
        _drop(restore, trash)
    if not (package / "schema.json").is_file():
        return "its schema.json is missing"
    for path in sorted(package.glob("*.json")):
        if not _json_ok(path):
            return f"{path.name} is not JSON"
    for path in sorted(package.glob("*_jobs/*")):
        if path.is_file() and not _job_ok(path):
            return f"the job file {path.relative_to(package)} is cut short"
    return None


def _json_ok(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def _job_ok(path: Path) -> bool:
    """dlt writes no empty job file; a Parquet file ends with its magic bytes, a gzip stream must
    reach its end."""
    if path.stat().st_size == 0:
        return False
    if path.suffix == ".parquet":
        if path.stat().st_size < 12:  # a header and a footer at the least
            return False
        with path.open("rb") as file:
            file.seek(-4, 2)
            return file.read() == b"PAR1"
    if path.suffix != ".gz":
        return True
    try:
        with gzip.open(path) as stream:
            while stream.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error):
        return False
    return True
