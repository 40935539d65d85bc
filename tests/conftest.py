"""Shared fixtures: run the CLI in-process or as the installed console script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scaler.cli import main

ROOT = Path(__file__).resolve().parents[1]
# The base of tests that exercise the engine, not the model: a search of it starts and trains in
# about a third of the time the smallest EfficientNet takes (4 convolutions at depth 1, against B0's 16 blocks).
TINY_NET_FILE = ROOT / "tests" / "tiny_net.py"
TINY_BASE = f"{TINY_NET_FILE}:make"
# A user's default study database must never reach the tests (nor their subprocesses).
os.environ.pop("SCALER_STORAGE", None)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # scripts/test.sh runs the suite in two pytest-xdist processes, one per core of the CI
    # machine: each test, and each process it starts, then takes one torch thread (unless it
    # asks for more) instead of every core, so the two do not compete.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    """Run `scaler ARGS` in this process; returns exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def console_script():
    """Run the installed `scaler` console script in a subprocess."""
    script = Path(sys.executable).parent / "scaler"
    assert script.exists(), f"console script missing: {script} (run scripts/setup.sh)"

    def run(*args: str, cwd: Path | None = None, timeout: float = 600) -> CliResult:
        proc = subprocess.run(
            [str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def postgres_url() -> str:
    """URL of the PostgreSQL server scripts/test.sh starts; skipped (failed in CI) without one."""
    url = os.environ.get("SCALER_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the PostgreSQL tests: SCALER_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL server: set SCALER_TEST_POSTGRES_URL (scripts/test.sh starts one)")
    return url


def sigint_default() -> None:
    """`preexec_fn` for a child that a test stops with SIGINT: a shell that starts the suite in
    the background (`bash .ci/run &`) passes SIGINT on as ignored, and Python then never raises
    KeyboardInterrupt; the child gets the default disposition back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
