"""benchmarks/fit_diagnostics.py: checkpoints along a recipe (train_recipe's ``after_step``), the
measurements on a tiny model, and the committed tables the chapters read."""
import math

import pandas as pd
import pytest
import torch

import mini_unlearn as mu
from assertions import ROOT, load_benchmark
from mini_unlearn.models import ReadingCurriculum, TrainConfig, load_cached, training_examples
from mini_unlearn.models.train import train_recipe

FEW = TrainConfig(steps=2, batch_size=4, warmup=1, reading=ReadingCurriculum(reading_steps=2, mcq_weight=3))
RESULTS = ROOT / "mini_unlearn" / "data" / "results" / "localisation"


@pytest.fixture(scope="module")
def script():
    return load_benchmark("fit_diagnostics")


@pytest.fixture(scope="module")
def examples(bench):
    return training_examples(bench)


def test_after_step_counts_through_both_phases_and_changes_nothing(make_vlm, bench, examples):
    seen = []
    watched = make_vlm(bench)
    reading, log = train_recipe(watched, examples, FEW, stop_after=3, after_step=seen.append, progress=False)
    plain = make_vlm(bench)
    reading_plain, log_plain = train_recipe(plain, examples, FEW, stop_after=3, progress=False)
    assert seen == [1, 2, 3]                     # the main phase's first step is reading_steps + 1
    assert reading.losses + log.losses == reading_plain.losses + log_plain.losses
    for (name, a), b in zip(watched.model.state_dict().items(), plain.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoints_are_the_run_stopped_at_each_requested_step(script, make_vlm, bench, examples, tmp_path):
    losses = script.train_checkpoints(bench, tmp_path, steps=[3, 2], recipe=FEW)
    assert len(losses) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00002", "step-00003"]
    for step in (2, 3):
        saved = load_cached(script.checkpoint_path(tmp_path, step), "cpu")
        assert saved.card["step"] == step and saved.card["recipe"] == FEW.to_dict()
        stopped = make_vlm(bench)
        train_recipe(stopped, examples, FEW, stop_after=step, progress=False)
        for name, value in stopped.model.state_dict().items():
            assert torch.equal(saved.model.state_dict()[name], value), (step, name)
    # the shipped run's probe at step 3 (main phase step 1) against the step-3 checkpoint, per modality
    saved = load_cached(script.checkpoint_path(tmp_path, 3), "cpu")
    here = mu.models.Monitor(saved, bench)(saved.model)
    card = {"reading_phase": {"steps": 2, "probes": []},
            "training": {"probes": [{"step": 1, "accuracy": {key: 0.2 if key.endswith("image+text") else 0.8
                                                             for key in here}}]}}
    check = script.trajectory_check(bench, tmp_path, [2, 3], card)
    assert list(zip(check["step"], check["modality"])) == [(3, "image+text"), (3, "text")]
    assert list(check["shipped run"]) == [0.2, 0.8]
    text = [v for key, v in here.items() if key.endswith("/text")]
    assert check["this run"].iloc[1] == round(sum(text) / len(text), 3)


def test_checkpoint_steps_must_be_positive_integers(script, bench, tmp_path):
    for steps in ([], [0], [2.5]):
        with pytest.raises(ValueError, match="steps must be positive integers"):
            script.train_checkpoints(bench, tmp_path, steps=steps, recipe=FEW)
    assert not any(tmp_path.iterdir())


def test_the_shipped_probes_are_counted_through_both_phases(script):
    card = {"reading_phase": {"steps": 30, "probes": [{"step": 15, "accuracy": {"a": 0.1}},
                                                      {"step": 30, "accuracy": {"a": 0.2}}]},
            "training": {"probes": [{"step": 20, "accuracy": {"a": 0.9}}]}}
    assert script.shipped_probes(card) == {15: {"a": 0.1}, 30: {"a": 0.2}, 50: {"a": 0.9}}


FIT_COLUMNS = ["model", "steps", "em_forget_image", "em_forget_text", "em_retain_image", "em_retain_text",
               "loss_forget_image", "loss_retain_image", "grad_rms_forget_vision", "grad_rms_preserve_vision",
               "grad_rms_forget_language", "grad_rms_preserve_language", "mask_vision", "mask_language", "mask_both",
               "alpha", "top_share_paper_vision", "top_share_paper_language", "on_planted_paper_vision",
               "on_planted_paper_language", "top_share_released_vision", "top_share_released_language",
               "on_planted_released_vision", "on_planted_released_language", "planted_frac_vision",
               "planted_frac_language"]
SHARES = [c for c in FIT_COLUMNS if c.startswith(("em_", "mask_", "top_share_", "on_planted_", "planted_frac_"))]


def test_fit_row_measures_every_column_on_a_tiny_model(script, make_vlm, bench):
    vlm = make_vlm(bench)
    truth = {name: torch.tensor([0, 3]) for name in mu.neurons.site_towers(vlm.model)}
    row = script.fit_row(vlm, bench, 0.25, truth=truth)
    assert ["model", "steps", *row] == FIT_COLUMNS
    # an untrained model's paper vision scores are all <= 0: no share of nothing (NaN)
    assert all(math.isnan(row[c]) or 0 <= row[c] <= 1 for c in SHARES), row
    assert not any(math.isnan(row[c]) for c in SHARES if "paper_vision" not in c), row
    assert all(row[c] > 0 for c in row if c.startswith(("grad_rms_", "loss_"))), row
    masks = (row["mask_vision"], row["mask_language"])
    assert min(masks) <= row["mask_both"] <= max(masks) and row["alpha"] == 0.02
    assert script.fit_row(vlm, bench, 0.25)["on_planted_paper_vision"] != row["on_planted_paper_vision"]


def test_path_rows_count_the_shared_neurons_per_layer(script, make_vlm, bench):
    from mini_unlearn.methods.mip_editor import MIPEditorConfig
    vlm = make_vlm(bench)
    rows = pd.DataFrame(script.path_rows(vlm, bench, 0.25, retain_people=1, config=MIPEditorConfig(k=3, m=2)))
    assert list(zip(rows["branch"], rows["layer"])) == [("igi", 0), ("igi", 1), ("ifi", 0), ("ifi", 1)]
    union = rows["forget"] + rows["retain"] - rows["shared"]
    assert (rows["jaccard"] == (rows["shared"] / union).round(3)).all()
    assert rows["planted_in_forget"].isna().all() and (rows["forget"] >= 3).all()


def test_the_committed_fit_table_has_the_rows_and_columns_the_chapters_read():
    fit = pd.read_csv(RESULTS / "fit.csv")
    assert list(fit.columns) == FIT_COLUMNS
    steps = [3000, 3600, 4200, 4800, 5400, 6000]
    assert list(fit["model"]) == [f"step {s}" for s in steps] + ["vanilla", "planted"]
    assert list(fit["steps"][:-1]) == steps + [9000] and math.isnan(fit["steps"].iloc[-1])
    assert ((fit[SHARES].fillna(0) >= 0) & (fit[SHARES].fillna(1) <= 1)).all().all()
    planted = fit["model"] == "planted"
    on = [c for c in FIT_COLUMNS if c.startswith(("on_planted_", "planted_frac_"))]
    assert fit.loc[planted, on].notna().all().all() and fit.loc[~planted, on].isna().all().all()
    assert (fit["grad_rms_forget_language"] > 0).all()


def test_the_committed_paths_table_compares_forget_and_retain_paths_per_layer():
    paths = pd.read_csv(RESULTS / "paths_overlap.csv")
    assert list(paths.columns) == ["model", "branch", "tower", "layers", "layer", "width", "forget", "retain",
                                   "shared", "jaccard", "planted", "planted_in_forget", "planted_in_retain"]
    assert sorted(set(paths["model"])) == ["planted", "vanilla"]
    assert set(zip(paths["branch"], paths["tower"])) == {("igi", "language"), ("ifi", "vision")}
    assert (paths["layers"] == 2).all() and sorted(set(paths["layer"])) == [0, 1]
    union = paths["forget"] + paths["retain"] - paths["shared"]
    assert ((paths["jaccard"] - paths["shared"] / union).abs() < 1e-3).all()
    assert paths.loc[paths["model"] == "planted", "planted_in_forget"].notna().all()
