"""Installed, not only cloned: the wheel carries its SQL and declares what the code imports."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from cli_process import backfills_env
from conftest import ROOT

DISTRIBUTION = "supermetrics-backfill-monitor"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_modules() -> set[str]:
    modules = set()
    for path in (ROOT / "pipelines").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"__future__", "pipelines"}


# imported only inside the functions that need them, and declared in an extra: module -> extra
OPTIONAL = {"pyspark": "spark", "matplotlib": "notebook", "deltalake": "lake", "pyarrow": "lake"}


def test_every_imported_package_is_a_declared_dependency() -> None:
    requirements = importlib.metadata.requires(DISTRIBUTION) or []

    def names(extra: str | None) -> set[str]:
        marker = f'extra == "{extra}"'
        return {
            _normalise(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])
            for requirement in requirements
            if (marker in requirement if extra else "extra ==" not in requirement)
        }

    declared = names(None)
    providers = importlib.metadata.packages_distributions()
    missing = {
        module: providers.get(module)
        for module in imported_top_level_modules() - set(OPTIONAL)
        if not {_normalise(d) for d in providers.get(module, [])} & declared
    }
    assert missing == {}
    assert {"pyyaml", "requests"} <= declared
    for module, extra in OPTIONAL.items():
        assert {_normalise(d) for d in providers.get(module, [])} & names(extra), module


@pytest.mark.slow
def test_the_installed_wheel_works_outside_the_checkout(tmp_path: Path) -> None:
    # build from a copy, so that the checkout gets no build/ or egg-info
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("pipelines", "sql"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            wheels,
            source,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("*.whl")

    # a fresh environment with only the wheel; its dependencies come from the test's environment
    env_dir = tmp_path / "env"
    venv.create(env_dir)  # no pip of its own: the test's pip installs into it (--python)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel],
        check=True,
        capture_output=True,
    )

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = backfills_env(SOURCES__SUPERMETRICS__API_KEY="sim-key")
    backfills = str(env_dir / "bin" / "backfills")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [backfills, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )

    where = subprocess.run(
        [python, "-c", "import pipelines.models as m; print(m.__file__); print(m.SQL_DIR)"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(path.startswith(site) for path in where), where  # the wheel's code and SQL, not the checkout's

    simulator = subprocess.Popen(
        [backfills, "simulate", "--port", "0", "--speed", "0", "--warmup-hours", "6"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = simulator.stdout.readline().split()[2]
        db = str(work / "data" / "b.duckdb")
        ingested = run("ingest", "--team-id", "936506", "--base-url", base_url, "--db", db)
        assert ingested.returncode == 0, ingested.stderr
        assert "built (full refresh: first build)" in ingested.stdout
    finally:
        simulator.terminate()
        simulator.wait()
    models = run("models", "--db", db)
    assert models.returncode == 0, models.stderr
    report = run("report", "--db", db)
    assert report.returncode == 0 and report.stdout.startswith("OK: newest successful poll of team 936506 ")
    assert run("check", "--db", db).returncode == 0

    # an install whose SQL went missing fails loudly instead of building nothing
    empty = tmp_path / "no-sql"
    empty.mkdir()
    broken = subprocess.run(
        [backfills, "models", "--db", db],
        cwd=work,
        env={**env, "BACKFILLS_SQL_DIR": str(empty)},
        capture_output=True,
        text=True,
    )
    assert broken.returncode == 70
    assert f"no SQL models in {empty}: the models are missing from this install" in broken.stderr
