"""bf16 end to end on CPU (chapter 11): fp32 masters keep small updates, every method and the evaluation run on
bf16 models of two families, masks and path rows still hold bit-exactly, sums stay fp32, checkpoints keep
their dtype."""
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.models import VLM, load_vlm
from mini_unlearn.models.precision import MasterAdamW
from mini_unlearn.models.train import train
from mini_unlearn.models.train_data import training_examples
from mini_unlearn.neurons.paths import find_paths
from mini_unlearn.neurons.saliency import compute_saliency

from assertions import assert_mask_held, assert_only_path_rows_moved

RATIO = 0.25


def adam_steps(optimizer_for, dtype, steps=50):
    weight = torch.nn.Parameter(torch.ones(4, dtype=dtype))
    optimizer = optimizer_for([weight])
    for _ in range(steps):
        optimizer.zero_grad()
        weight.grad = torch.full_like(weight, 0.5)
        optimizer.step()
    return weight.detach()


def test_fp32_masters_keep_updates_a_bf16_weight_would_round_away():
    plain = adam_steps(lambda ps: torch.optim.AdamW(ps, lr=1e-4, weight_decay=0.0), torch.bfloat16)
    master = adam_steps(lambda ps: MasterAdamW(ps, lr=1e-4), torch.bfloat16)
    assert torch.equal(plain, torch.ones(4, dtype=torch.bfloat16))   # each 1e-4 step is under bf16's spacing at 1
    assert master.dtype == torch.bfloat16 and float(master[0]) == pytest.approx(1 - 50 * 1e-4, abs=4e-3)


def test_for_an_fp32_model_the_masters_are_plain_adamw():
    plain = adam_steps(lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.0), torch.float32)
    master = adam_steps(lambda ps: MasterAdamW(ps, lr=1e-3), torch.float32)
    assert torch.equal(plain, master)
    weight = torch.nn.Parameter(torch.ones(2))
    assert MasterAdamW([weight], lr=1e-3).copies == 0 and MasterAdamW([weight.bfloat16()], lr=1e-3).copies == 1


@pytest.fixture(scope="module", params=["llava", "qwen2_5_vl"])
def bf16(request, bench):
    vlm = VLM.tiny(request.param, bench)
    vlm.model.to(torch.bfloat16)
    return vlm, {n: p.detach().clone() for n, p in vlm.model.named_parameters()}


@pytest.mark.parametrize("method, options", [
    ("ga_diff", dict(steps=2)), ("kl_min", dict(steps=2)), ("npo", dict(steps=2, reference="initial")),
    ("manu", dict(alpha=0.05)), ("rmu", dict(steps=2))])
def test_every_kind_of_method_runs_in_bf16(bf16, bench, method, options):
    vlm, before = bf16
    result = mu.unlearn(vlm, bench, method, RATIO, progress=False, **options)
    assert {p.dtype for p in result.vlm.model.parameters()} == {torch.bfloat16}
    assert result.touched["changed"].sum() > 0
    assert all(torch.isfinite(torch.tensor(v)) for row in result.log.losses for v in row.values())
    assert all(torch.equal(before[n], p) for n, p in vlm.model.named_parameters())


def test_mmunlearner_in_bf16_keeps_mask_zero_entries_and_sums_saliency_in_fp32(bf16, bench):
    vlm, before = bf16
    saliency = compute_saliency(vlm, bench, RATIO, "language")
    assert {s.dtype for s in saliency.forget.values()} == {torch.float32}
    result = mu.unlearn(vlm, bench, "mmunlearner", RATIO, progress=False, preset="both", forget_steps=2,
                        retain_per_forget=1, lr=1e-3)
    assert_mask_held(before, result.vlm.model, result.log.details["mask"].masks)


def test_mip_editor_in_bf16_finds_paths_and_edits_only_path_rows(bf16, bench):
    vlm, before = bf16
    forget, _ = mu.methods.unlearning_sets(bench, RATIO, "text")
    paths = find_paths(vlm, forget[:2], "igi", k=2, m=2)
    assert len(paths) > 0 and all(torch.isfinite(s).all() and s.abs().sum() > 0 for s in paths.scores.values())
    result = mu.unlearn(vlm, bench, "mip_editor", RATIO, progress=False, steps=2, k=2, m=2, lr=1e-2)
    assert_only_path_rows_moved(before, result.vlm.model, result.log.details["selection"])


def test_evaluation_and_training_run_in_bf16(bf16, bench):
    vlm, _ = bf16
    report = mu.evaluate(vlm, bench, RATIO, splits="forget", progress=False, max_new_tokens=4)
    assert report.details["score"].notna().all()
    copy = vlm.copy()
    log = train(copy, training_examples(bench)[:8], steps=3, batch_size=4, lr=1e-4, warmup=0, progress=False,
                monitor=None)
    assert len(log.losses) == 3 and all(torch.isfinite(torch.tensor(log.losses)))
    assert {p.dtype for p in copy.model.parameters()} == {torch.bfloat16}
    assert any(not torch.equal(a, b) for a, b in zip(copy.model.parameters(), vlm.model.parameters()))


def test_a_checkpoint_loads_in_the_dtype_it_was_saved_in_unless_told(bf16, tmp_path):
    vlm, _ = bf16
    vlm.save_pretrained(tmp_path / "ckpt")
    assert {p.dtype for p in load_vlm(tmp_path / "ckpt", device="cpu").model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in load_vlm(tmp_path / "ckpt", device="cpu", dtype=torch.float32).model.parameters()} \
        == {torch.float32}
