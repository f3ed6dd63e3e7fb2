"""benchmarks/gpu_pipeline.py at its --smoke size: the GPU script's whole code path runs on a CPU, so it cannot rot."""
import json
import subprocess
import sys
from pathlib import Path

import mini_unlearn as mu

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_pipeline_smoke_run_trains_unlearns_and_evaluates(tmp_path):
    out = tmp_path / "pipeline.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_pipeline.py"), "--smoke", "--json", str(out)],
                         check=False, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["device"].startswith("CPU") and figures["dtype"] == "fp32" and figures["preset"] == "tiny"
    train = figures["stages"]["train"]
    assert train["steps"] == 6 and train["reading_steps"] == 2 and train["mfu"] is None and train["seconds"] > 0
    assert list(figures["methods"]) == mu.methods.available()
    for method, row in figures["methods"].items():
        assert row["seconds"] > 0 and row["evaluate_seconds"] > 0 and 0 <= row["forget"] <= 1, method
        assert row["steps"] == (0 if method == "manu" else 2), method
    assert "mip_editor" in run.stdout and "peak" in run.stdout
