"""The evaluation and the audit on two CPU processes (gloo, launched by torchrun as ``accelerate launch`` does)
give one process's report, each process having scored only its share of the batches.

This file is also the script both runs execute (``python tests/test_distributed_evaluation.py OUT``, and the
same under ``torchrun --nproc_per_node=2``): a tiny untrained LLaVA is evaluated on every split and task
(``mu.evaluate``, batches of 4, 8 new tokens), another on a tiny CLEAR benchmark (every CLEAR task), the
audit's per-question attacks and the linear probes are run on small batches (the attacks' own functions,
which share their batches out on two processes), then the whole ``findings``. Rank 0 writes
what every process ended with, and how many forward passes each process ran.
"""
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SMALL = 4         # batch size of the shared attacks: several batches for each process
FIELDS = ("membership", "truth", "probes", "lens", "who", "what", "relearning")   # the findings compared


def run(out: str) -> None:
    """Evaluate and attack a tiny model on this process (and, under a launcher, on every other)."""
    import torch
    import mini_unlearn as mu
    from mini_unlearn import distributed
    from mini_unlearn.attacks import auditing
    from mini_unlearn.attacks.forget_quality import truth_ratios
    from mini_unlearn.attacks.logit_lens import logit_lens
    from mini_unlearn.attacks.membership import forget_vs_holdout, labelled_scores, people_names
    from mini_unlearn.attacks.linear_probe import what_probe, who_probe
    from mini_unlearn.attacks.probes import recall_probes
    from mini_unlearn.bench.clear import make_clear
    from mini_unlearn.models import VLM, build_model, build_processor, build_tokenizer, get_preset

    torch.set_num_threads(1)                  # the same kernels in both runs
    bench = mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1)
    vlm = VLM.tiny("llava", bench)
    passes = [0]
    vlm.model.register_forward_pre_hook(lambda *_: passes.__setitem__(0, passes[0] + 1))

    report = mu.evaluate(vlm, bench, 0.25, batch_size=SMALL, max_new_tokens=8, progress=False)
    evaluate_passes = passes[0]

    clear = make_clear(n_profiles=6, seed=0, n_images=2, n_perturbed=2, n_real_faces=2, n_real_world=2)
    preset = get_preset("tiny")
    tokenizer = build_tokenizer(clear, preset.vocab_size)
    clear_vlm = VLM(build_model(preset, tokenizer, seed=0), build_processor(tokenizer, preset))
    clear_passes = [0]
    clear_vlm.model.register_forward_pre_hook(lambda *_: clear_passes.__setitem__(0, clear_passes[0] + 1))
    clear_report = mu.evaluate(clear_vlm, clear, 0.05, batch_size=SMALL, max_new_tokens=6, progress=False)

    members, nonmembers = forget_vs_holdout(bench, 0.25)
    forget = bench.split("forget", 0.25).questions
    mcqs, cloze = [q for q in forget if q.task == "mcq"], [q for q in forget if q.task == "cloze"]
    names = people_names(bench)
    attacks = {
        "membership": labelled_scores(vlm, members, nonmembers, names=names, batch_size=SMALL),
        "truth": truth_ratios(vlm, bench, mcqs, SMALL),
        "probes": recall_probes(vlm, bench, 0.25, batch_size=SMALL),
        "lens": logit_lens(vlm, cloze, batch_size=SMALL),
        "who": who_probe(vlm, bench, 0.25, batch_size=SMALL),
        "what": what_probe(vlm, bench, 0.25, batch_size=SMALL)}
    attack_passes = passes[0] - evaluate_passes

    found = auditing.findings(vlm, bench, 0.25, progress=False)
    per_process = distributed.gather_objects({"evaluate": evaluate_passes, "attacks": attack_passes,
                                              "clear": clear_passes[0]})
    if distributed.is_main():
        result = {"processes": distributed.world_size(), "details": report.details, "settings": report.settings,
                  "clear": clear_report.details,
                  "attacks": attacks, "findings": {name: getattr(found, name) for name in FIELDS},
                  "passes": per_process}
        Path(out).write_bytes(pickle.dumps(result))


def launch(out: Path, processes: int) -> dict:
    from mini_unlearn.distributed.runs import run_command
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = (launcher if processes > 1 else [sys.executable]) + [str(Path(__file__).resolve()), str(out)]
    run_command(command, processes, timeout=300)
    return pickle.loads(out.read_bytes())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("distributed_evaluation")
    return launch(base / "one.pkl", 1), launch(base / "two.pkl", 2)


def largest_gap(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Same rows, same columns, the same non-numbers; the largest relative gap of the numbers."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    numbers = [c for c in a.columns if pd.api.types.is_float_dtype(a[c])]
    others = [c for c in a.columns if c not in numbers]
    pd.testing.assert_frame_equal(a[others].reset_index(drop=True), b[others].reset_index(drop=True))
    x, y = a[numbers].to_numpy(float), b[numbers].to_numpy(float)
    assert np.array_equal(np.isnan(x), np.isnan(y))
    finite = ~np.isnan(x)
    gaps = np.abs(x - y)[finite] / np.maximum(np.abs(x[finite]), 1e-12)
    return float(gaps.max(initial=0.0))


def test_both_runs_ran_with_the_processes_asked_for(runs):
    one, two = runs
    assert one["processes"] == 1 and two["processes"] == 2


def test_every_process_gets_the_one_process_report(runs):
    one, two = runs
    details = one["details"]
    assert len(details) == 288 and details["split"].nunique() == 4 and details["task"].nunique() == 4
    generated = details.loc[details["task"].isin(["gen", "cloze"]), "prediction"]
    assert generated.str.len().gt(0).mean() > 0.5            # texts to compare, not empty strings
    assert largest_gap(details, two["details"]) < 1e-6       # the texts identical (a non-number column)
    assert one["settings"] == two["settings"]


def test_every_process_gets_the_one_process_clear_report(runs):
    """CLEAR's evaluation (its generations and its answer losses) shares its batches out too."""
    one, two = runs
    details = one["clear"]
    assert len(details) > 50 and details["task"].nunique() > 5
    assert largest_gap(details, two["clear"]) == 0


def test_each_process_ran_only_its_share_of_the_batches(runs):
    """Every batch is the one a single process runs (so the same generation lengths): the two processes'
    forward passes add up to one process's, and neither ran them all."""
    one, two = runs
    for stage in ("evaluate", "attacks", "clear"):
        total = one["passes"][0][stage]
        mine = [process[stage] for process in two["passes"]]
        assert sum(mine) == total and all(0 < n < total for n in mine), (stage, total, mine)


def test_the_shared_attacks_give_one_process_s_findings(runs):
    """Every question's values come back from the batch one process runs: the same numbers, to the bit."""
    one, two = runs
    for name in ("membership", "probes", "lens", "who", "what"):
        assert largest_gap(one["attacks"][name], two["attacks"][name]) == 0, name
    np.testing.assert_array_equal(two["attacks"]["truth"], one["attacks"]["truth"])
    for name in FIELDS:          # the whole audit: the shared attacks, and those every process runs whole
        assert largest_gap(one["findings"][name], two["findings"][name]) < 1e-6, name


if __name__ == "__main__":
    run(sys.argv[1])
