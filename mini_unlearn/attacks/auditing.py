"""One call that turns every attack on a model: ``audit(vlm, bench, ratio, reference=retain_only)`` (chapter 09).

:func:`findings` runs the attacks on one model and keeps their raw results (the chapter draws its figures
from them); :func:`summarise` turns a model's findings and the reference's into the tidy frame — one row
per attack × metric × modality, with the reference model's value beside it and the **direction** the
metric should move when forgetting works (from the vanilla model's value towards the retain-only model's);
:func:`audit` is the two in one call. :func:`verdict` reads several audits against the vanilla model's:
which method removed the forget people, which only hid them, per modality.

``quantize=(8, 4)`` (off by default) adds chapter 12's quantization attack (:mod:`.quantization`): the forget
people's cloze recall with the weights quantized to each bit width, one row per bit width × modality
(attack ``"quantization"``, metric ``"4-bit: cloze"``), with the retain-only model's value beside it; the
verdict then counts the 4-bit row among the deep attacks.

Under a multi-process launcher (``torchrun``, ``accelerate launch``: :mod:`mini_unlearn.distributed`), with the
audited model whole on every process, the per-question attacks share their batches out and gather the results,
so that every process returns the findings one process computes: the membership scores, the truth ratios,
the recall probes, the logit lens and the linear probes' hidden states. Each attack's own function does it,
in its own batch loop (:func:`~.membership.token_stats`, :func:`~.forget_quality.option_rows`, the recall
probes' ``Monitor``, :func:`~.readout.answer_states`): each process runs batches ``r, r + N, …`` of them
(:func:`~mini_unlearn.distributed.split_map`), and the per-question results come back in order, so the
recalls, the lens's means and the probes' fits are computed from all the questions as on one process (the
fits on every process). Not shared out: the relearning attack (a training run, data-parallel like any other:
each process computes its rows of each batch; its recall checks run whole) and the quantization attack.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import distributed
from .forget_quality import ks_test, truth_ratios
from .linear_probe import what_probe, who_probe
from .logit_lens import TOP_K, logit_lens
from .membership import (K, auc_table, require_reference, forget_vs_holdout, labelled_scores, people_names,
                         privleak)
from .probes import recall_probes
from .quantization import FULL, readings, require_bit_widths, require_bitsandbytes
from .relearning import RelearnConfig, relearn

MIA_HEADLINE = "loss"
STEPS = ("membership", "truth ratios", "probes", "logit lens", "linear probes", "relearning")


@dataclass
class Findings:
    """The raw results of every attack on one model (the frames the chapter plots)."""

    membership: pd.DataFrame      # per training pair of the forget (member=1) and holdout (0) people: each MIA score
    truth: pd.DataFrame           # per forget MCQ: modality, truth_ratio
    probes: pd.DataFrame          # recall per probe × modality × task
    lens: pd.DataFrame            # per layer × modality: top_k, mrr of the forget cloze answers
    who: pd.DataFrame             # per layer × modality: forget-vs-retain probe accuracy
    what: pd.DataFrame            # per layer × modality: the forget MCQs' letter decoded by a probe
    relearning: pd.DataFrame      # per step × modality × task: recall of the facts not taught back
    quantization: pd.DataFrame | None = None   # per precision × modality: forget cloze recall (with quantize=)


def findings(vlm, bench, ratio: float = 0.05, *, relearning: RelearnConfig | None = None, k: float = K,
             quantize=None, progress: bool = True) -> Findings:
    """Run every attack on ``vlm`` against the ``forget`` people at ``ratio`` (and the holdout people).

    ``quantize``: ``None`` (the default: chapter 09's attacks only) or bit widths, e.g. ``(8, 4)``: the
    forget people's cloze recall with the weights quantized to each (chapter 12, :mod:`.quantization`).

    Under a multi-process launcher call it on every process: the per-question attacks (membership, truth
    ratios, recall probes, logit lens) share their batches out, and every process gets the whole findings;
    the linear probes, the relearning and the quantization attack run whole on every process (module doc)."""
    widths = require_quantize(quantize)
    members, nonmembers = forget_vs_holdout(bench, ratio)      # checks the split and the holdout people first
    forget = bench.split("forget", ratio).questions
    mcqs, cloze = [q for q in forget if q.task == "mcq"], [q for q in forget if q.task == "cloze"]
    bar = tqdm(total=len(STEPS) + (widths is not None), desc="audit", disable=not progress or not distributed.is_main())

    def step(name, run):
        bar.set_postfix_str(name, refresh=False)
        out = run()
        bar.update(1)
        return out

    try:
        membership = step("membership", lambda: labelled_scores(vlm, members, nonmembers, k=k, names=people_names(bench)))
        truth = step("truth ratios", lambda: pd.DataFrame({
            "question_id": [q.id for q in mcqs], "modality": [q.modality for q in mcqs],
            "truth_ratio": truth_ratios(vlm, bench, mcqs)}))
        probes = step("probes", lambda: recall_probes(vlm, bench, ratio))
        lens = step("logit lens", lambda: logit_lens(vlm, cloze))
        who, what = step("linear probes", lambda: (who_probe(vlm, bench, ratio), what_probe(vlm, bench, ratio)))
        curve = step("relearning", lambda: relearn(vlm, bench, ratio, relearning, progress=False))
        quantized = None if widths is None else step(
            "quantization", lambda: readings(vlm, bench, ratio, widths, splits=("forget",)))
    finally:
        bar.close()
    return Findings(membership, truth, probes, lens, who, what, curve, quantized)


def require_quantize(quantize) -> tuple[int, ...] | None:
    """``None`` (no quantization attack) or the bit widths of ``quantize``, checked, bitsandbytes installed."""
    if quantize is None:
        return None
    widths = require_bit_widths(quantize, "quantize")
    require_bitsandbytes()
    return widths


def _hidden_max(frame: pd.DataFrame, column: str) -> pd.Series:
    """Per modality: the largest value over the hidden layers (not the embeddings, not the output)."""
    last = frame["layer"].max()
    hidden = frame[(frame["layer"] > 0) & (frame["layer"] < last)]
    return (hidden if len(hidden) else frame[frame["layer"] == last]).groupby("modality")[column].max()


def metrics(found: Findings) -> pd.DataFrame:
    """One model's metrics: attack, metric, modality, value, direction (see the module doc)."""
    rows = []

    def add(attack, metric, direction, values: pd.Series):
        rows.extend({"attack": attack, "metric": metric, "modality": m, "value": float(v), "direction": direction}
                    for m, v in values.items())

    aucs = auc_table(found.membership)
    aucs = aucs[aucs["modality"] != "all"]
    for attack, group in aucs.groupby("attack", sort=False):
        add("membership", f"AUC {attack}", "down", group.set_index("modality")["auc"])
    add("forget quality", "median truth ratio", "up", found.truth.groupby("modality")["truth_ratio"].median())
    for (probe, task), group in found.probes.groupby(["probe", "task"], sort=False):
        add("recall probes", f"{probe}: {task}", "down", group.set_index("modality")["recall"])
    last = found.lens["layer"].max()
    add("logit lens", f"top-{TOP_K}, hidden layers", "down", _hidden_max(found.lens, "top_k"))
    add("logit lens", f"top-{TOP_K}, output", "down", found.lens[found.lens["layer"] == last].set_index("modality")["top_k"])
    add("linear probe", "who: forget vs retain", "up", _hidden_max(found.who, "accuracy"))
    add("linear probe", "what: the forget MCQ's letter", "down", _hidden_max(found.what, "accuracy"))
    curve = found.relearning.groupby(["step", "modality"])["recall"].mean().unstack("modality")
    add("relearning", "recall before", "down", curve.iloc[0])
    add("relearning", "recall after", "down", curve.iloc[-1])
    if found.quantization is not None:
        quantized = found.quantization[(found.quantization["precision"] != FULL) & (found.quantization["task"] == "cloze")]
        for precision, group in quantized.groupby("precision", sort=False):
            add("quantization", f"{precision}: cloze", "down", group.set_index("modality")["recall"])
    return pd.DataFrame(rows)


def summarise(found: Findings, reference: Findings | None = None) -> pd.DataFrame:
    """The tidy audit frame of ``found``, with the ``reference`` (retain-only) model's value of each metric,
    MUSE's PrivLeak and TOFU's forget quality (both need the reference)."""
    frame = metrics(found)
    frame["reference"] = np.nan
    extra = []
    if reference is not None:
        theirs = metrics(reference).set_index(["attack", "metric", "modality"])["value"]
        frame["reference"] = [theirs.get((a, m, mod), np.nan) for a, m, mod in
                              zip(frame["attack"], frame["metric"], frame["modality"])]
        extra = _paired_metrics(frame, found, reference)
    order = list(dict.fromkeys(frame["attack"]))
    out = pd.concat([frame, pd.DataFrame(extra, columns=frame.columns)], ignore_index=True)
    out["attack"] = pd.Categorical(out["attack"], order)
    return (out.sort_values(["attack", "modality"], kind="stable").reset_index(drop=True)
            .astype({"attack": str})[["attack", "metric", "modality", "value", "reference", "direction"]])


def _paired_metrics(frame: pd.DataFrame, found: Findings, reference: Findings) -> list[dict]:
    """The metrics that compare the two models: PrivLeak (from the AUCs) and forget quality (a KS test)."""
    extra = []
    headline = frame[frame["metric"] == f"AUC {MIA_HEADLINE}"]
    for _, row in headline.iterrows():
        extra.append({"attack": "membership", "metric": f"PrivLeak ({MIA_HEADLINE})", "modality": row["modality"],
                      "value": privleak(row["value"], row["reference"]), "direction": "to 0", "reference": 0.0})
    for modality in sorted(found.truth["modality"].unique()):
        mine = found.truth.loc[found.truth["modality"] == modality, "truth_ratio"]
        theirs_ratios = reference.truth.loc[reference.truth["modality"] == modality, "truth_ratio"]
        extra.append({"attack": "forget quality", "metric": "KS p-value", "modality": modality,
                      "value": ks_test(mine, theirs_ratios)[1], "direction": "up", "reference": 1.0})
    return extra


def require_reference_model(vlm, reference) -> None:
    if reference is vlm:
        raise ValueError("reference: pass the retain-only model (a model that never saw the forget people), "
                         "not the audited model itself")
    require_reference(vlm, reference)


def audit(vlm, bench, ratio: float = 0.05, reference=None, *, relearning: RelearnConfig | None = None,
          quantize=None, progress: bool = True) -> pd.DataFrame:
    """Every attack of chapter 09 on ``vlm``, read against ``reference`` (the retain-only model): the tidy
    frame of :func:`summarise`. Without ``reference`` the frame has no reference values, PrivLeak or KS test.
    ``quantize=(8, 4)`` adds the quantization attack's rows (chapter 12; off by default)."""
    if reference is not None:
        require_reference_model(vlm, reference)
    require_quantize(quantize)
    mine = findings(vlm, bench, ratio, relearning=relearning, quantize=quantize, progress=progress)
    theirs = findings(reference, bench, ratio, relearning=relearning, quantize=quantize,
                      progress=progress) if reference is not None else None
    return summarise(mine, theirs)


# ---- the verdict ----------------------------------------------------------------------------------------
SURFACE = ("recall probes", "as trained: cloze")
DEEP = (("membership", f"AUC {MIA_HEADLINE}"), ("logit lens", f"top-{TOP_K}, hidden layers"),
        ("linear probe", "what: the forget MCQ's letter"), ("relearning", "recall after"))
QUANTIZED = ("quantization", "4-bit: cloze")   # a deep attack too, in the audits that ran it (quantize=)


def gap_closed(value: float, vanilla: float, reference: float, floor: float = 0.05) -> float:
    """How far ``value`` went from the vanilla model's value towards the reference's: 0 = unchanged, 1 = there.

    NaN when the two models differ by less than ``floor`` (the metric does not separate them)."""
    if abs(reference - vanilla) < floor:
        return float("nan")
    return float((vanilla - value) / (vanilla - reference))


def verdict(audits: dict[str, pd.DataFrame], vanilla: str = "vanilla") -> pd.DataFrame:
    """Per method and modality: the share of the vanilla → retain-only gap closed on the surface (forget cloze
    recall) and by each deep attack (membership, logit lens, letter probe, relearning, and 4-bit quantization
    when the vanilla model's audit ran it: ``audit(..., quantize=...)``); ``depth`` is the
    **smallest** of these — an attacker needs one attack that works — and ``weakest`` names it. In words:

    * ``not forgotten`` — the surface gap is less than half closed;
    * ``removed`` — the surface and every deep attack at least 80 % closed;
    * ``hidden`` — the surface closed (≥ 80 %) but some deep attack less than half: it gets the facts back;
    * ``partly`` — anything in between.
    """
    if vanilla not in audits:
        raise ValueError(f"vanilla: {vanilla!r} is not among the audits {sorted(audits)}")
    base = audits[vanilla].set_index(["attack", "metric", "modality"])
    quantized = ((audits[vanilla]["attack"] == QUANTIZED[0]) & (audits[vanilla]["metric"] == QUANTIZED[1])).any()
    attacks = DEEP + ((QUANTIZED,) if quantized else ())
    rows = []
    for name, frame in audits.items():
        if name == vanilla:
            continue
        table = frame.set_index(["attack", "metric", "modality"])
        for modality in sorted(frame["modality"].unique()):
            surface = _closed(table, base, (*SURFACE, modality))
            deep = {metric: _closed(table, base, (attack, metric, modality)) for attack, metric in attacks}
            measured = {metric: value for metric, value in deep.items() if np.isfinite(value)}
            weakest = min(measured, key=measured.get) if measured else None
            depth = measured[weakest] if measured else float("nan")
            rows.append({"method": name, "modality": modality, "surface": surface, **deep, "depth": depth,
                         "weakest": weakest or "-", "verdict": _words(surface, depth)})
    return pd.DataFrame(rows)


def _closed(table: pd.DataFrame, base: pd.DataFrame, key: tuple) -> float:
    """:func:`gap_closed` of one (attack, metric, modality) row; NaN where the audit lacks it."""
    if key not in table.index or key not in base.index:
        return float("nan")
    return gap_closed(table.loc[key, "value"], base.loc[key, "value"], table.loc[key, "reference"])


def _words(surface: float, depth: float) -> str:
    if not np.isfinite(surface) or surface < 0.5:
        return "not forgotten"
    if surface >= 0.8 and depth >= 0.8:
        return "removed"
    if surface >= 0.8 and depth < 0.5:
        return "hidden"
    return "partly"


__all__ = ["DEEP", "Findings", "MIA_HEADLINE", "QUANTIZED", "SURFACE", "audit", "findings", "gap_closed", "metrics", "summarise",
           "verdict"]
