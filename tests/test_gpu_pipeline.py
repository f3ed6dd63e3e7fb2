"""benchmarks/gpu_pipeline.py at its --smoke size: the GPU script's whole code path runs on a CPU, so it cannot rot."""
import importlib.util
import json
from pathlib import Path

import mini_unlearn as mu

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_pipeline", ROOT / "benchmarks" / "gpu_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gpu_pipeline_smoke_run_trains_unlearns_and_evaluates(tmp_path, capsys):
    out = tmp_path / "pipeline.json"
    load_script().main(["--smoke", "--json", str(out)])       # in-process: the script's own main()
    printed = capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert figures["device"].startswith("CPU") and figures["dtype"] == "fp32" and figures["preset"] == "tiny"
    train = figures["stages"]["train"]
    assert train["steps"] == 6 and train["reading_steps"] == 2 and train["mfu"] is None and train["seconds"] > 0
    assert list(figures["methods"]) == mu.methods.available()
    for method, row in figures["methods"].items():
        assert row["seconds"] > 0 and row["evaluate_seconds"] > 0 and 0 <= row["forget"] <= 1, method
        assert row["steps"] == (0 if method == "manu" else 2), method
    assert "mip_editor" in printed and "peak" in printed
