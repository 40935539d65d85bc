"""The GPU benchmark is run where device time is scarce: its --quick form must work on a CPU."""

import os
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
    """scripts/gpu_check.sh on a python that has nothing and a wheel folder that is empty:
    one line naming the missing package and how to get it, exit 1, no benchmark started."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (tmp_path / "wheels").mkdir()
    proc = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHON": str(venv / "bin" / "python"), "WHEELS": str(tmp_path / "wheels"), "DEVICE": "cpu"},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"gpu_check: setuptools is missing and {tmp_path / 'wheels'} has no setuptools-*; "
        f"run scripts/gpu_wheels.sh and carry {tmp_path / 'wheels'}"
    ]
    assert proc.stdout == ""
