"""mini_unlearn.attacks.quantization (chapter 12): quantizing a model with bitsandbytes, the retained share and the
recovery it reports, its place in the audit, exercise 12.1's checker, and the committed results."""
import importlib.util

import bitsandbytes as bnb
import numpy as np
import pandas as pd
import pytest
import torch
import transformers

import mini_unlearn as mu
from mini_unlearn.attacks import auditing
from mini_unlearn.attacks import quantization as quant
from mini_unlearn.models.train import Monitor, answer_loss

RATIO = 0.05
NF4 = bnb.functional.get_4bit_type("nf4", device="cpu")   # the 16 levels of a 4-bit NF4 weight, times its block's absmax
BLOCK = 64                                                 # the weights that share one absmax (transformers' default)


# ---- bad input: refused before anything is saved or loaded ----------------------------------------------------
@pytest.fixture
def nothing_saved(monkeypatch):
    """Fail the test if a model is saved (quantize's first step), read (the attack) or audited."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was saved, read or audited before the arguments were checked")
    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", refuse)
    monkeypatch.setattr(quant, "Monitor", refuse)
    monkeypatch.setattr(auditing, "forget_vs_holdout", refuse)


@pytest.mark.parametrize("bits, error", [(3, ValueError), (16, ValueError), (32, ValueError), ("4", TypeError),
                                         (4.0, TypeError), (True, TypeError), ((8, 4), TypeError)])
def test_an_unsupported_bit_width_is_refused_before_anything_is_saved(vlm, bits, error, nothing_saved):
    with pytest.raises(error, match=r"bits must be .*\(8, 4\)"):
        quant.quantize(vlm, bits)


@pytest.mark.parametrize("bits, match", [((8, 3), r"each of bits must be one of \(8, 4\)"), ((), "bits is empty"),
                                         ((4, 4), "bit width twice"), ("8", "bits must be an integer")])
def test_the_attack_and_the_audit_check_their_bit_widths_first(vlm, bench, bits, match, nothing_saved):
    other = vlm.copy()
    with pytest.raises(ValueError, match=match):
        quant.quantization_attack(vlm, bench, 0.25, vanilla=vlm, reference=other, bits=bits)
    with pytest.raises(ValueError, match=match.replace("bits", "quantize")):
        auditing.audit(vlm, bench, 0.25, reference=other, quantize=bits, progress=False)


def test_without_bitsandbytes_the_error_names_the_extra(vlm, monkeypatch, nothing_saved):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(ImportError, match=r'pip install "mini_unlearn\[quantization\]"'):
        quant.quantize(vlm, 4)


# ---- quantize ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits, layer, stored", [(4, bnb.nn.Linear4bit, bnb.nn.Params4bit),
                                                 (8, bnb.nn.Linear8bitLt, bnb.nn.Int8Params)])
def test_quantize_leaves_its_input_alone_and_stores_every_linear_weight_in_bits(vlm, bench, bits, layer, stored):
    before = {name: value.clone() for name, value in vlm.model.state_dict().items()}
    card = dict(vlm.card)
    quantized = quant.quantize(vlm, bits)

    after = vlm.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[n], after[n]) for n in before)
    assert vlm.card == card and all(type(m) is not layer for m in vlm.model.modules())
    linears = {n for n, m in vlm.model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"}
    modules = dict(quantized.model.named_modules())
    assert linears and all(type(modules[n]) is layer and type(modules[n].weight) is stored for n in linears)
    assert type(modules["lm_head"]) is torch.nn.Linear                  # the output head keeps its dtype
    assert quantized.card["quantized"]["bits"] == bits and quant.is_quantized(quantized)
    weights = quant.stored_weights(quantized)
    originals = dict(vlm.model.named_parameters())
    errors = [(weights[n] - originals[n].detach()).abs().max() / originals[n].detach().abs().max() for n in weights]
    assert 0 < max(errors) < (0.2 if bits == 4 else 0.02)               # rounded, to a 4-bit or an 8-bit level
    with pytest.raises(ValueError, match="quantized already"):
        quant.quantize(quantized, 4)


# ---- the retained share, by hand -----------------------------------------------------------------------------
def test_the_retained_share_is_the_gap_still_held_at_each_precisions_own_anchors():
    assert quant.retained_share(0.4, 0.9, 0.1) == pytest.approx((0.4 - 0.1) / (0.9 - 0.1))        # 0.375
    assert quant.retained_share(0.4, 0.9, 0.1) == pytest.approx(1 - auditing.gap_closed(0.4, 0.9, 0.1))
    assert np.isnan(quant.retained_share(0.5, 0.53, 0.49))                         # anchors 0.04 apart: no reading
    assert quant.retained_share(0.5, 0.56, 0.5) == pytest.approx(0.0)

    def read(forget, retain=None):
        rows = [{"precision": p, "bits": b, "split": "forget", "modality": m, "task": "cloze", "recall": v}
                for (p, b), values in zip([("full", 32), ("4-bit", 4)], forget) for m, v in zip(mu.bench.MODALITIES, values)]
        rows += [{**row, "split": "retain", "recall": 1.0} for row in rows] if retain else []
        return pd.DataFrame(rows)

    table = quant.recovery(read([(0.2, 0.0), (0.8, 0.5)], retain=True), read([(1.0, 1.0), (0.9, 0.5)]),
                           read([(0.0, 0.0), (0.1, 0.48)]))
    by = table.set_index(["precision", "modality"])
    assert by.loc[("full", "image+text"), "retained"] == pytest.approx(0.2)
    assert by.loc[("4-bit", "image+text"), "retained"] == pytest.approx((0.8 - 0.1) / (0.9 - 0.1))     # 0.875
    assert by.loc[("4-bit", "image+text"), "recovered"] == pytest.approx(0.875 - 0.2)
    assert np.isnan(by.loc[("4-bit", "text"), "retained"]) and np.isnan(by.loc[("4-bit", "text"), "recovered"])
    assert list(table.columns) == list(quant.COLUMNS) and (table["retain"] == 1.0).all()
    assert by.loc[("4-bit", "image+text"), ["vanilla", "reference"]].tolist() == [0.9, 0.1]


# ---- the attack on the course's models -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def course():
    bench = mu.bench.make_benchmark(n_profiles=40, seed=0)
    return (bench, mu.models.vanilla(bench, preset="tiny", seed=0, progress=False, device="cpu"),
            mu.models.retain_only(bench, RATIO, preset="tiny", seed=0, progress=False, device="cpu"))


def below_the_4_bit_step(vlm, bench, share=0.9):
    """A copy of ``vlm`` "unlearned" by a change smaller than the 4-bit step: every weight that bitsandbytes
    stores in NF4 is pushed, in the direction that raises the forget people's answer loss, ``share`` of the way
    to the edge of its NF4 level (the largest weight of each block of 64, its scale, stays put). At full precision
    the change is large; rounded to 4 bits it is nothing at all."""
    copy = vlm.copy()
    quantized = set(quant.stored_weights(quant.quantize(vlm, 4)))
    questions = [q for q in bench.split("forget", RATIO).questions if q.task == "cloze"]
    for _, batch in Monitor(copy, bench, questions=questions, images="canonical").batches:
        answer_loss(copy.model, batch).backward()
    middles = (NF4[1:] + NF4[:-1]) / 2
    lower, upper = torch.cat([NF4[:1], middles]), torch.cat([middles, NF4[-1:]])
    with torch.no_grad():
        for name, weight in copy.model.named_parameters():
            if name in quantized:
                blocks = weight.view(-1, BLOCK)
                scale = blocks.abs().amax(1, keepdim=True)
                level = (blocks / scale).unsqueeze(-1).sub(NF4).abs().argmin(-1)
                edge = torch.where(weight.grad.view(-1, BLOCK) > 0, upper[level], lower[level]) * scale
                blocks.copy_(torch.where(blocks.abs() == scale, blocks, blocks + share * (edge - blocks)))
    copy.model.zero_grad(set_to_none=True)
    return copy


@pytest.fixture(scope="module")
def hidden(course):
    bench, vanilla, _ = course
    return below_the_4_bit_step(vanilla, bench)


def test_a_change_below_the_4_bit_step_forgets_at_full_precision_and_comes_back_at_4_bits(course, hidden):
    bench, vanilla, retain_only = course
    table = quant.quantization_attack(hidden, bench, RATIO, vanilla=vanilla, reference=retain_only, retain=False)
    by = table.set_index(["precision", "modality"])
    assert (table["vanilla"] - table["reference"] >= 0.9).all()             # measured: 1.0 / 0.92 at every precision
    for modality in mu.bench.MODALITIES:
        assert by.loc[("full", modality), "retained"] <= 0.1                # measured: 0.0 and -0.09
        assert by.loc[("8-bit", modality), "recovered"] == pytest.approx(0, abs=0.1)   # 8 bits round more finely
        assert by.loc[("4-bit", modality), "retained"] == 1.0               # the same weights as vanilla's, stored
        assert by.loc[("4-bit", modality), "recovered"] >= 0.9
    levels = quant.same_levels(vanilla, hidden, 4)
    assert levels["changed"].sum() > 0.9 * levels["weights"].sum() and (levels["same_level"] == levels["changed"]).all()
    assert quant.same_levels(vanilla, hidden, 8)["same_level"].sum() < 0.05 * levels["changed"].sum()


def test_a_model_that_never_saw_them_recovers_nothing(course):
    bench, vanilla, retain_only = course
    never = below_the_4_bit_step(retain_only, bench)       # the same kind of change, on a model that never knew them
    table = quant.quantization_attack(never, bench, RATIO, vanilla=vanilla, reference=retain_only, retain=False)
    assert (table["retained"].abs() <= 0.1).all() and (table["recovered"].abs() <= 0.1).all()   # measured: 0.0
    anchors = quant.quantization_attack(vanilla, bench, RATIO, vanilla=vanilla, reference=retain_only, retain=False)
    assert (anchors["retained"] == 1.0).all() and (anchors["recovered"] == 0.0).all()   # vanilla's own row
    assert (anchors["forget"] == anchors["vanilla"]).all()


def test_the_attack_refuses_anchors_it_cannot_compare(course, vlm, bench):
    course_bench, vanilla, retain_only = course
    with pytest.raises(ValueError, match="reference: pass the retain-only model"):
        quant.quantization_attack(vanilla, course_bench, RATIO, vanilla=vanilla, reference=vanilla)
    with pytest.raises(ValueError, match="vanilla: expected a model of the audited model's architecture and tokenizer"):
        quant.quantization_attack(vanilla, course_bench, RATIO, vanilla=vlm, reference=retain_only)
    with pytest.raises(TypeError, match="reference must be a mini_unlearn VLM"):
        quant.quantization_attack(vanilla, course_bench, RATIO, vanilla=vanilla, reference=retain_only.model)


# ---- the audit: opt-in ------------------------------------------------------------------------------------------
def test_the_audit_adds_the_quantization_rows_only_when_asked(vlm, bench):
    quick = mu.attacks.RelearnConfig(steps=1, probe_every=1)
    other = vlm.copy()
    with torch.no_grad():
        for weight in other.model.parameters():
            weight.mul_(1.5)
    plain = auditing.findings(vlm, bench, 0.25, relearning=quick, progress=False)
    assert plain.quantization is None and "quantization" not in set(auditing.metrics(plain)["attack"])
    mine = auditing.findings(vlm, bench, 0.25, relearning=quick, quantize=(8, 4), progress=False)
    theirs = auditing.findings(other, bench, 0.25, relearning=quick, quantize=(8, 4), progress=False)
    frame = auditing.summarise(mine, theirs)
    rows = frame[frame["attack"] == "quantization"]
    assert sorted(zip(rows["metric"], rows["modality"])) == [
        (f"{b}-bit: cloze", m) for b in (4, 8) for m in mu.bench.MODALITIES]
    assert (rows["direction"] == "down").all() and rows["reference"].notna().all()
    expected = quant.readings(other, bench, 0.25, (4,), splits=("forget",))
    expected = expected[expected["precision"] == "4-bit"].set_index("modality")["recall"]
    assert rows[rows["metric"] == "4-bit: cloze"].set_index("modality")["reference"].to_dict() == expected.to_dict()
    kept = auditing.metrics(mine)
    assert kept[kept["attack"] != "quantization"].equals(auditing.metrics(plain))     # the other rows as they were


def _audit_frame(surface, deep, quantized=None):
    """A tidy audit frame of one modality with the surface and deep rows (and the 4-bit row when given)."""
    rows = [(*auditing.SURFACE, surface)] + [(attack, metric, value) for (attack, metric), value in zip(auditing.DEEP, deep)]
    rows += [] if quantized is None else [(*auditing.QUANTIZED, quantized)]
    return pd.DataFrame([{"attack": a, "metric": m, "modality": "text", "value": v, "reference": 0.0, "direction": "down"}
                         for a, m, v in rows])


def test_the_verdict_counts_the_4_bit_row_only_when_the_audits_have_it():
    without = auditing.verdict({"vanilla": _audit_frame(1, [1, 1, 1, 1]), "m": _audit_frame(0, [0, 0, 0, 0])})
    assert "4-bit: cloze" not in without.columns and without.loc[0, "verdict"] == "removed"
    with_row = auditing.verdict({"vanilla": _audit_frame(1, [1, 1, 1, 1], 1), "m": _audit_frame(0, [0, 0, 0, 0], 0.9)})
    assert with_row.loc[0, "4-bit: cloze"] == pytest.approx(0.1)
    assert with_row.loc[0, "weakest"] == "4-bit: cloze" and with_row.loc[0, "verdict"] == "hidden"


# ---- exercise 12.1 -----------------------------------------------------------------------------------------------
def test_the_retained_share_checker_passes_the_package_and_names_each_slip(capsys):
    from mini_unlearn.course.checks import ch12_lasting as checks
    checks.check_retained_share(quant.retained_shares)
    assert "✓ retained_share matches mini_unlearn" in capsys.readouterr().out
    assert len(checks.check_retained_share.slips) == 3
    for slip in checks.check_retained_share.slips:
        with pytest.raises(AssertionError) as failed:
            checks.check_retained_share(slip.fn)
        assert slip.says in str(failed.value)
    with pytest.raises(AssertionError):
        checks.check_retained_share(lambda scores: [float("nan")] * len(scores))


# ---- the committed results ---------------------------------------------------------------------------------------
def test_the_committed_results_hold_every_method_and_the_anchors_as_the_code_reads_them(course):
    from mini_unlearn.release import COURSE_BENCHMARK
    from mini_unlearn.results import quantization as results
    bench, vanilla, retain_only = course
    assert results.COURSE_BENCHMARK == COURSE_BENCHMARK
    frame, levels, settings = results.read()
    assert list(frame.columns) == list(results.COLUMNS) and list(levels.columns) == list(results.LEVEL_COLUMNS)
    assert set(frame["method"]) == {*results.ANCHORS, *mu.methods.available()} == {*results.ANCHORS, *settings["methods"]}
    assert settings["bits"] == list(results.BITS) and settings["ratio"] == results.RATIO
    assert set(frame["precision"]) == {"full", "8-bit", "4-bit"} and len(frame) == len(set(frame["method"])) * 3 * 2
    assert set(levels["method"]) == set(settings["methods"]) and set(levels["bits"]) == set(results.BITS)
    assert ((levels["same_level"] <= levels["changed"]) & (levels["changed"] <= levels["weights"])).all()
    tuned = mu.results.read_tuned(mu.results.course_results("tuning"))
    assert {m: s["overrides"] for m, s in settings["methods"].items()} == {m: tuned.get(m, {}) for m in settings["methods"]}
    # the anchors' forget recall, read again now, is what was committed
    read = {name: quant.readings(model, bench, RATIO, results.BITS, splits=("forget",))
            for name, model in (("vanilla", vanilla), ("reference", retain_only))}
    for name, fresh in read.items():
        fresh = fresh.set_index(["precision", "modality"])["recall"].round(6)
        committed = frame[frame["method"] == "vanilla"].set_index(["precision", "modality"])[name]
        assert committed.sort_index().equals(fresh.sort_index())
    anchors = frame[frame["setting"] == "reference"].set_index("method")
    assert (anchors.loc["vanilla", "retained"] == 1).all() and (anchors.loc["retain_only", "retained"] == 0).all()
