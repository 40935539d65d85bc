"""The GPU benchmark is run where device time is scarce: its --quick form must work on a CPU."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_prints_its_five_figures_on_a_cpu(tmp_path):
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_search.py", "--device", "cpu", "--quick", "--root", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for figure in ("1. first use per candidate", "2. training step", "3. train", "4. default search on cpu",
                   "5. first use by backend"):
        assert any(line.startswith(figure) for line in lines), proc.stdout
    assert "first use" in lines[2] and "epoch 2" in lines[2]  # one line per candidate
    backends = [line for line in lines if "cuDNN" in line]
    assert len(backends) == 4 and all(line.count("first use") == 2 for line in backends)
    assert len(list(tmp_path.glob("*/results.csv"))) == 1  # the search ran and wrote its table


def test_gpu_check_names_the_wheel_it_lacks(tmp_path):
    """scripts/gpu_check.sh on a fresh python and a wheel folder that is empty: the last
    line names the first missing package and how to get it, exit 1, no benchmark started,
    nothing installed into that python."""
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    proc = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHON": str(venv / "bin" / "python"), "WHEELS": str(wheels), "DEVICE": "cpu",
             "SITE": str(tmp_path / "site")},
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"gpu_check: (\w+) is missing and {re.escape(str(wheels))} has no \w+ for this python; "
                        rf"run scripts/gpu_wheels.sh and carry {re.escape(str(wheels))}", last), proc.stderr
    assert proc.stdout == ""
    assert not list((tmp_path / "site").glob("*"))
