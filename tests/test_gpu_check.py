"""benchmarks/gpu_check.py runs anywhere: on a machine without CUDA it records the versions, says
that every CUDA step was skipped, writes its JSON and markdown summaries and exits 0."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path; on a GPU run the script itself")
def test_gpu_check_on_cpu_skips_the_cuda_steps_with_a_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--out", str(tmp_path), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CUDA is not available" in proc.stdout and "no step failed" in proc.stdout
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["versions"]["status"] == "ok" and result["versions"]["value"]["torch"] == torch.__version__
    for step in ("cuda_tests", "env_throughput", "train_throughput", "end_to_end"):
        assert result[step]["status"] == "skipped" and "CUDA is not available" in result[step]["reason"]
    assert "| end_to_end | skipped |" in (tmp_path / "gpu_check.md").read_text()
