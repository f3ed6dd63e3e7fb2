"""benchmarks/gpu_pipeline.py at its --smoke size: the GPU script's whole code path runs on a CPU, so it cannot rot."""
import json

import mini_unlearn as mu
from assertions import load_benchmark


def load_script():
    return load_benchmark("gpu_pipeline")


def test_the_gpu_pipeline_smoke_run_trains_unlearns_and_evaluates(tmp_path, capsys):
    out = tmp_path / "pipeline.json"
    load_script().main(["--smoke", "--json", str(out)])       # in-process: the script's own main()
    printed = capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert figures["device"].startswith("CPU") and figures["dtype"] == "fp32" and figures["preset"] == "tiny"
    assert figures["tasks"] == ["mcq_likelihood", "cloze"]
    train = figures["stages"]["train"]
    assert train["steps"] == 6 and train["reading_steps"] == 2 and train["mfu"] is None and train["seconds"] > 0
    assert list(figures["methods"]) == mu.methods.available()
    for method, row in figures["methods"].items():
        assert row["seconds"] > 0 and row["evaluate_seconds"] > 0 and 0 <= row["forget"] <= 1, method
        assert row["steps"] == (0 if method == "manu" else 2), method
    assert "mip_editor" in printed and "peak" in printed


def test_the_xl_recipe_runs_every_method_at_a_sixteenth_of_its_widths(tmp_path, capsys):
    """``--preset xl/16``: xl's depth (12 + 16 layers), heads and recipe (bf16 autocast, compiled
    blocks with the ``eager`` backend on a CPU, fused AdamW) at 1/16 of its widths: every method runs,
    and every unlearned model generates. Evaluated on cloze only (the tiny run above scores option
    likelihoods too, a plain forward pass: four fifths of the evaluation's time at this depth)."""
    out = tmp_path / "xl.json"
    load_script().main(["--smoke", "--preset", "xl/16", "--tasks", "cloze", "--json", str(out)])
    printed = capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert figures["preset"] == "xl/16" and 3e6 < figures["parameters"] < 5e6 and figures["tasks"] == ["cloze"]
    assert figures["speedups"] == {"autocast": "bf16", "compile": "eager", "fused": True}
    assert figures["stages"]["train"]["steps"] == 4 and figures["stages"]["train"]["reading_steps"] == 0
    assert list(figures["methods"]) == mu.methods.available()
    assert all(row["seconds"] > 0 and 0 <= row["retain"] <= 1 for row in figures["methods"].values())
    assert "training speedups: autocast bf16, compile eager, fused True" in printed


def test_the_sharded_mode_runs_every_method_that_shards_on_two_processes(tmp_path):
    """``--sharded`` under ``accelerate launch`` with the package's FSDP2 config (on two CPU processes):
    every method with a sharded form runs, with its measured peak and predicted memory per process."""
    import sys
    from pathlib import Path
    from mini_unlearn.distributed.runs import run_command
    from mini_unlearn.distributed.sharded_check import cpu_config
    out = tmp_path / "sharded.json"
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_pipeline.py"
    run_command([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cpu_config(tmp_path)),
                 "--num_processes", "2", "--main_process_port", "0", str(script), "--smoke", "--sharded",
                 "--json", str(out)], 2, timeout=600)
    figures = json.loads(out.read_text())
    assert figures["processes"] == 2 and figures["preset"] == "tiny"
    assert list(figures["methods"]) == ["ga", "ga_diff", "kl_min", "npo", "mmunlearner", "rmu", "mip_editor", "stranger"]
    for method, row in figures["methods"].items():
        assert row["steps"] == 2 and row["seconds"] > 0 and 0 < row["predicted_gib"] < 0.1, method


def test_the_sharded_mode_without_a_launcher_names_the_launch_command():
    import pytest
    with pytest.raises(SystemExit, match="accelerate launch --config_file"):
        load_script().main(["--smoke", "--sharded"])
