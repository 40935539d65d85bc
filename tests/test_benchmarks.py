"""The GPU benchmark is run where device time is scarce: its --quick form must work on a CPU."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_prints_its_four_figures_on_a_cpu(tmp_path):
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_search.py", "--device", "cpu", "--quick", "--root", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for figure in ("1. first use per candidate", "2. training step", "3. train", "4. default search on cpu"):
        assert any(line.startswith(figure) for line in lines), proc.stdout
    assert "first use" in lines[2] and "epoch 2" in lines[2]  # one line per candidate
    assert len(list(tmp_path.glob("*/results.csv"))) == 1  # the search ran and wrote its table
