"""Every method and the evaluation on a tiny random model of every family (chapter 11): each runs through
the one registry, leaves its input untouched and keeps its promise on any architecture — MANU prunes and
undoes bit-exact, MMUnlearner leaves mask-0 entries bit-identical, MIP-Editor changes only path rows, a
GA_Diff step lowers the forget likelihood, evaluate returns every split × modality × task."""
import random

import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.methods.data import unlearning_sets
from mini_unlearn.models.anatomy import part_of
from mini_unlearn.models import VLM
from mini_unlearn.models.families import FAMILIES
from mini_unlearn.models.train import answer_log_likelihoods
from mini_unlearn.models.train_data import canonical_batch
from mini_unlearn.neurons.edit import prune_neurons

from assertions import assert_mask_held, assert_only_path_rows_moved

NAMES = sorted(FAMILIES)
RATIO = 0.25
QUICK = {name: mu.methods.get(name).quick for name in mu.methods.available()}   # each method's run of seconds
VARIANTS = [("manu", dict(variant="released", batch_size=8)),   # batches of 4 would leave one sample alone
            *[("mmunlearner", dict(preset=p, lora_rank=r, forget_steps=2, retain_per_forget=1))
              for p in ("vision", "language", "both") for r in (0, 4)]]
VARIANT_FAMILIES = ("llava", "qwen2_5_vl", "idefics3")   # flat pixels, packed patches, per-row images


@pytest.fixture(scope="module", params=NAMES)
def family(request, bench):
    """(name, a tiny model of the family, its parameters before anything ran)."""
    vlm = VLM.tiny(request.param, bench)
    return request.param, vlm, {n: p.detach().clone() for n, p in vlm.model.named_parameters()}


def unchanged(vlm, before) -> bool:
    return all(torch.equal(before[n], p) for n, p in vlm.model.named_parameters())


def test_every_registered_method_registers_a_quick_setting():
    assert all(QUICK.values()), [name for name, options in QUICK.items() if not options]


def check_run(vlm, before, bench, method, options):
    result = mu.unlearn(vlm, bench, method, RATIO, progress=False, **options)
    assert type(result.vlm.model) is type(vlm.model) and unchanged(vlm, before)
    assert result.touched["changed"].sum() > 0, f"{method} changed nothing on {type(vlm.model).__name__}"
    assert {"vision", "language"} <= set(result.touched_by_part().index)


@pytest.mark.parametrize("method", list(QUICK))
def test_every_method_runs_on_every_family_and_leaves_its_input_alone(family, bench, method):
    _, vlm, before = family
    check_run(vlm, before, bench, method, QUICK[method])


@pytest.fixture(scope="module")
def layouts(bench):
    """One tiny model per processor layout: flat pixels (LLaVA), packed patches (Qwen-VL), per-row images (Idefics)."""
    models = {name: VLM.tiny(name, bench) for name in VARIANT_FAMILIES}
    return {name: (vlm, {n: p.detach().clone() for n, p in vlm.model.named_parameters()}) for name, vlm in models.items()}


@pytest.mark.parametrize("name", VARIANT_FAMILIES)
@pytest.mark.parametrize("method, options", VARIANTS,
                         ids=[f"{m}-{o.get('preset', o.get('variant'))}-lora{o.get('lora_rank', 0)}" for m, o in VARIANTS])
def test_every_variant_runs_on_each_processor_layout(layouts, bench, name, method, options):
    check_run(*layouts[name], bench, method, options)


def test_manu_prunes_and_undoes_bit_exact(family, bench):
    _, vlm, before = family
    question = next(q for q in bench.questions[bench.profiles[0].id] if q.modality == "image+text")
    batch = vlm.encode([mu.models.question_prompt(question)], [question.image.load()])
    with torch.no_grad():
        logits = vlm.model(**batch).logits.clone()
    result = mu.unlearn(vlm, bench, "manu", RATIO, progress=False, alpha=0.05)
    selection = result.log.details["selection"]
    assert {s.tower for s in mu.models.find_mlp_neurons(vlm.model) if len(selection.get(s.name, ())) > 0} \
        == {"vision", "language"}                                   # both towers pruned
    pruning = prune_neurons(vlm, selection)
    assert any(not torch.equal(before[n], p) for n, p in vlm.model.named_parameters())
    pruning.undo()
    assert unchanged(vlm, before)
    with torch.no_grad():
        assert torch.equal(vlm.model(**batch).logits, logits)


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_mmunlearner_leaves_mask_zero_entries_bit_identical(family, bench, lora_rank):
    _, vlm, before = family
    result = mu.unlearn(vlm, bench, "mmunlearner", RATIO, progress=False, preset="both", forget_steps=2,
                        retain_per_forget=0, lr=1e-2, lora_rank=lora_rank)
    masks = result.log.details["mask"].masks
    towers = {tower: module for tower, (module, _) in mu.models.find_towers(vlm.model).items()}
    parts = {part_of(n, towers) for n, _ in vlm.model.named_parameters()} - {"lm_head", "other"}
    assert {part_of(n, towers) for n in masks} == parts           # both towers, and the projector where it has one
    if lora_rank:
        masks = {n: m for n, m in masks.items() if n.endswith(".weight")}
    assert_mask_held(before, result.vlm.model, masks)


def test_mip_editor_changes_only_path_rows(family, bench):
    _, vlm, before = family
    result = mu.unlearn(vlm, bench, "mip_editor", RATIO, progress=False, steps=2, k=2, m=2, lr=1e-2)
    assert set(result.log.details["paths"]) == {"igi", "ifi"}
    assert_only_path_rows_moved(before, result.vlm.model, result.log.details["selection"])
    parts = result.touched_by_part()
    assert parts.loc["vision", "entries_changed"] > 0 and parts.loc["language", "entries_changed"] > 0


def test_a_ga_diff_step_lowers_the_forget_likelihood(family, bench):
    _, vlm, _ = family
    forget, _ = unlearning_sets(bench, RATIO, "image+text")
    batch = canonical_batch(vlm.processor, forget, random.Random(0))

    def likelihood(model):
        with torch.no_grad():
            return float(answer_log_likelihoods(model, batch).mean())
    result = mu.unlearn(vlm, bench, "ga_diff", RATIO, progress=False, steps=1, lr=1e-3, batch_size=len(forget))
    assert likelihood(result.vlm.model) < likelihood(vlm.model) - 1e-3


def test_evaluate_returns_every_split_modality_and_task(family, bench):
    _, vlm, _ = family
    report = mu.evaluate(vlm, bench, RATIO, progress=False, max_new_tokens=4)
    cells = set(map(tuple, report.details[["split", "modality", "task"]].drop_duplicates().values.tolist()))
    assert cells == {(s, m, t) for s in mu.bench.SPLITS for m in ("image+text", "text") for t in mu.evaluation.TASKS}
    assert report.details["score"].notna().all()


@pytest.fixture(scope="module")
def mllmu_bench(bench, tmp_path_factory):
    """``bench`` written in MLLMU-Bench's schema (parquet, images inside) and read back by ``load_mllmu``."""
    folder = tmp_path_factory.mktemp("mllmu")
    mu.bench.write_mllmu(bench, folder, ratios=(RATIO,))
    return mu.bench.load_mllmu(folder)


@pytest.mark.parametrize("name", NAMES)
def test_the_real_benchmark_files_feed_evaluation_and_the_methods(mllmu_bench, name):
    vlm = VLM.tiny(name, mllmu_bench)
    report = mu.evaluate(vlm, mllmu_bench, RATIO, splits="forget", progress=False, max_new_tokens=4)
    assert set(report.details["task"]) == set(mu.evaluation.TASKS)
    assert set(report.details["modality"]) == {"image+text", "text"}
    methods = mu.methods.available() if name == "qwen2_5_vl" else ["ga_diff", "mip_editor"]
    for method in methods:
        result = mu.unlearn(vlm, mllmu_bench, method, RATIO, progress=False, **QUICK[method])
        assert result.touched["changed"].sum() > 0, method
