"""Fixtures for the Python package's tests: the installed `sieve`, the CLI it must agree with, the model.

Paths come from the environment scripts/test.sh sets (SIEVE_CLI, SIEVE_DEFAULT_MODEL), else the
repository's build/sieve and models/all-MiniLM-L6-v2. A missing one skips the tests that need it,
unless SIEVE_REQUIRE_REFERENCE=1 (CI), where it fails them.
"""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        message = f"{what} not found: {path}"
        if os.environ.get("SIEVE_REQUIRE_REFERENCE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def cli() -> Path:
    return _need(Path(os.environ.get("SIEVE_CLI", ROOT / "build" / "sieve")), "the sieve CLI (build/sieve)")


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return _need(Path(os.environ.get("SIEVE_DEFAULT_MODEL", ROOT / "models" / "all-MiniLM-L6-v2")), "the default model")


@pytest.fixture(scope="session")
def encoder(model_dir):
    import sieve

    return sieve.Encoder(model_dir, threads=2)


def run_cli(cli: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli), *args], capture_output=True, text=True, check=True)
