"""Chapter 09 · attacks: the exercises' checkers."""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

from .compare import Case, Slip, as_float, compare, slips
from .plug import plugs_into

__all__ = ["check_membership_auc", "check_min_k_score", "check_relearning_curve", "check_truth_ratio"]


# -- Min-K% --------------------------------------------------------------------------------------------

def _min_k_cases() -> list[Case]:
    """Answers' token log-probabilities of several lengths, and fractions k where ⌊k·n⌋ ≠ ⌈k·n⌉."""
    import numpy as np
    rng = np.random.default_rng(29)
    cases = []
    for n, k in ((10, 0.2), (7, 0.2), (5, 0.5), (3, 0.1), (12, 1.0), (1, 0.2)):
        log_probs = -rng.exponential(1.5, size=n)
        cases.append((f"{n} tokens, k={k}", (log_probs, k)))
    return cases


def _min_k_ceil(log_probs, k=0.2):
    import numpy as np
    count = max(1, math.ceil(k * len(log_probs)))
    return float(np.sort(np.asarray(log_probs))[:count].mean())


def _min_k_highest(log_probs, k=0.2):
    import numpy as np
    count = max(1, int(k * len(log_probs)))
    return float(np.sort(np.asarray(log_probs))[-count:].mean())


@slips(Slip(_min_k_ceil, "k·n is rounded up; Min-K% keeps the lowest int(k·n) tokens (rounded down, as the Min-K% "
                         "paper's code and open-unlearning do), at least one"),
       Slip(_min_k_highest, "these are the highest k% of the log-probabilities; Min-K% averages the LOWEST ones, "
                            "the most surprising tokens (the start of the sorted array)"))
def check_min_k_score(fn: Callable) -> None:
    """Chapter 09: ``fn(log_probs, k)`` → Min-K%: the mean of the lowest ``int(k·n)`` of the ``n`` token
    log-probabilities (at least one token)."""
    from ...attacks.membership import lowest_mean
    compare("min_k_score", fn, lowest_mean, _min_k_cases(), atol=1e-9, slips=check_min_k_score.slips,
            adapt=as_float)


# -- the membership AUC --------------------------------------------------------------------------------

def _auc_cases() -> list[Case]:
    """Members' and non-members' scores, with ties across the two groups, separated, mixed and reversed."""
    import numpy as np
    rng = np.random.default_rng(37)
    cases = [("3 members and 3 non-members with two cross ties",
              (np.array([1, 1, 1, 0, 0, 0]), np.array([-1.0, -2.0, -3.0, -2.0, -3.0, -4.0])))]
    for members, strangers, shift in ((5, 7, 0.5), (8, 4, -0.5), (6, 6, 3.0)):
        scores = np.round(np.concatenate([rng.normal(shift, 1, members), rng.normal(0, 1, strangers)]), 1)
        member = np.array([1] * members + [0] * strangers)
        order = rng.permutation(len(member))
        cases.append((f"{members} members, {strangers} non-members, scores rounded to 0.1",
                      (member[order], scores[order])))
    return cases


def _auc_pairs(member, scores, tie):
    import numpy as np
    member, scores = np.asarray(member).astype(bool), np.asarray(scores, dtype=float)
    ins, outs = scores[member][:, None], scores[~member][None, :]
    return float(((ins > outs) + tie * (ins == outs)).mean())


def _auc_ties_lost(member, scores):
    return _auc_pairs(member, scores, 0.0)


def _auc_ties_won(member, scores):
    return _auc_pairs(member, scores, 1.0)


def _auc_reversed(member, scores):
    return 1.0 - _auc_pairs(member, scores, 0.5)


@slips(Slip(_auc_ties_lost, "a tie counts as 0; a pair of a member and a non-member with the same score counts "
                            "one half (a coin decides it)"),
       Slip(_auc_ties_won, "a tie counts as a win (>= instead of >); a tie counts one half"),
       Slip(_auc_reversed, "the AUC is reversed: count the pairs where the MEMBER scores higher than the "
                           "non-member (higher score = more likely a member)"))
def check_membership_auc(fn: Callable) -> None:
    """Chapter 09: ``fn(member, scores)`` → the ROC AUC: the share of (member, non-member) pairs in which the member
    scores higher, a tie counting one half."""
    from ...attacks.membership import membership_auc
    compare("membership_auc", fn, membership_auc, _auc_cases(), atol=1e-9, slips=check_membership_auc.slips,
            adapt=as_float)


# -- the truth ratio -----------------------------------------------------------------------------------

def _truth_cases() -> list[Case]:
    """Four options' mean log-likelihoods, the right one at each index in turn."""
    import torch
    generator = torch.Generator().manual_seed(31)
    cases = []
    for correct in (0, 1, 2, 3):
        scores = -torch.rand(4, generator=generator, dtype=torch.float64) * 4
        cases.append((f"correct option {'ABCD'[correct]}", (scores, correct)))
    cases.append(("a model sure of the right option", (torch.tensor([-0.01, -6.0, -5.0, -7.0], dtype=torch.float64), 0)))
    return cases


def _wrong_and_right(log_likelihoods, correct):
    import torch
    log_likelihoods = torch.as_tensor(log_likelihoods, dtype=torch.float64)
    return torch.cat([log_likelihoods[:correct], log_likelihoods[correct + 1:]]), log_likelihoods[correct]


def _truth_ratio_inverted(log_likelihoods, correct):
    import torch
    wrong, right = _wrong_and_right(log_likelihoods, correct)
    return float(torch.exp(right - wrong).mean())


def _truth_ratio_mean_of_ratios(log_likelihoods, correct):
    import torch
    wrong, right = _wrong_and_right(log_likelihoods, correct)
    return float(torch.exp(wrong - right).mean())


@slips(Slip(_truth_ratio_inverted, "the ratio is inverted: it is p̄(wrong) / p̄(right), exp(log p̄(a') − log p̄(a)), "
                                   "so a model that knows the answer gives R ≪ 1"),
       Slip(_truth_ratio_mean_of_ratios, "this is the arithmetic mean of the ratios (the formula as TOFU's paper "
                                         "prints it); TOFU's code and open-unlearning average the wrong options' "
                                         "log p̄ first: exp(mean log p̄(wrong) − log p̄(correct))"))
def check_truth_ratio(fn: Callable) -> None:
    """Chapter 09: ``fn(log_likelihoods, correct)`` → TOFU's truth ratio as its code computes it:
    ``exp(mean over the wrong options of log p̄(wrong) − log p̄(correct))``."""
    from ...attacks.forget_quality import truth_ratio
    compare("truth_ratio", fn, truth_ratio, _truth_cases(), atol=1e-9, slips=check_truth_ratio.slips,
            adapt=as_float)


# -- the relearning attack -----------------------------------------------------------------------------

TOUCHED = "the model it was given was fine-tuned"


@functools.cache
def _relearn_models():
    """The course benchmark, its 2 forget people and its two anchor models (chapter 02), loaded once."""
    from ... import bench as benchmarks
    from ...models import retain_only, vanilla
    bench = benchmarks.make_benchmark(n_profiles=40, seed=0)
    return bench, bench.forget_ids(0.05), retain_only(bench, 0.05, preset="tiny", seed=0), vanilla(
        bench, preset="tiny", seed=0)


def _relearn_cases() -> list[Case]:
    """The course's two anchor models (chapter 02) and its 2 forget people, relearned for a few steps at a
    rate high enough to move the recall within them, probed before and after: the taught fact by name
    only, then in both modalities, then two facts."""
    from dataclasses import replace

    from ...attacks.relearning import RelearnConfig
    bench, people, never_saw, knew = _relearn_models()
    quick = RelearnConfig(steps=2, lr=3e-3, batch_size=4, probe_every=2)
    return [("the vanilla model, birthplace taught by name only",
             (knew, bench, people, replace(quick, modalities=("text",)), False)),
            ("the retain-only model, birthplace taught with the portrait and by name",
             (never_saw, bench, people, quick, False)),
            ("the retain-only model, birthplace and occupation taught by name only, 1 step",
             (never_saw, bench, people, replace(quick, facts=("birthplace", "occupation"), modalities=("text",),
                                                steps=1, probe_every=1), False))]


def _curve_records(f: Callable) -> Callable:
    """Run ``f`` and compare its frame as records; if it changed the model it was given, restore the
    weights and return a sentence saying so (the attack must fine-tune a copy)."""
    def run(vlm, bench, people, config, progress):
        before = {name: value.clone() for name, value in vlm.model.state_dict().items()}
        frame = f(vlm, bench, people, config, progress)
        after = vlm.model.state_dict()
        if any(not value.equal(after[name]) for name, value in before.items()):
            vlm.model.load_state_dict(before)
            return TOUCHED
        return [tuple(row) for row in frame[["step", "modality", "task", "recall"]].itertuples(index=False)]
    return run


def _relearn(vlm, bench, people, config, progress=True, *, practice=False, modalities=None, others=None,
             in_place=False):
    """The attack with one of its usual slips (the package's ``relearning_curve`` otherwise)."""
    import pandas as pd

    from ...bench import FACTS
    from ...methods.loop import run_gradient_loop
    from ...models.train import Monitor, answer_loss
    from ...models.train_data import training_examples
    modalities = config.modalities if modalities is None else modalities
    taught = [e for e in training_examples(bench, people, practice=practice)
              if e.source.fact in config.facts and e.modality in modalities]
    others = tuple(f for f in FACTS if f not in config.facts) if others is None else others
    monitor = Monitor(vlm, bench, people, images="canonical", tasks=config.tasks, facts=others)
    model = vlm if in_place else vlm.copy()
    log = run_gradient_loop(model, taught, None, lambda m, batch, _: {"loss": answer_loss(m, batch)},
                            steps=config.steps, lr=config.lr, batch_size=config.batch_size, grad_clip=1.0,
                            train="all", seed=config.seed, progress=progress, monitor=monitor,
                            probe_every=config.probe_every, desc="relearning")
    rows = [{"step": probe["step"], "modality": key.split("/")[1], "task": key.split("/")[0], "recall": value}
            for probe in log.probes for key, value in probe.items() if key != "step"]
    return pd.DataFrame(rows)


def _relearn_in_place(vlm, bench, people, config, progress=True):
    return _relearn(vlm, bench, people, config, progress, in_place=True)


def _relearn_measures_taught(vlm, bench, people, config, progress=True):
    from ...bench import FACTS
    return _relearn(vlm, bench, people, config, progress, others=FACTS)


def _relearn_every_modality(vlm, bench, people, config, progress=True):
    from ...bench import MODALITIES
    return _relearn(vlm, bench, people, config, progress, modalities=MODALITIES)


def _relearn_with_practice(vlm, bench, people, config, progress=True):
    return _relearn(vlm, bench, people, config, progress, practice=True)


@plugs_into("mini_unlearn.attacks.relearning:relearning_curve")
@slips(Slip(_relearn_in_place, f"{TOUCHED}: the attacker fine-tunes a COPY (vlm.copy()) and leaves the "
                               "unlearned model as it was"),
       Slip(_relearn_measures_taught, "the recall counts the taught fact too; the attack measures only the "
                                      "OTHER facts (those not in config.facts): what comes back untaught"),
       Slip(_relearn_every_modality, "the fact is taught in every modality; teach only the pairs in "
                                     "config.modalities (e.modality in config.modalities)"),
       Slip(_relearn_with_practice, "the evaluation questions are taught as practice too (training_examples' "
                                    "default); teach the training pairs only: practice=False"))
def check_relearning_curve(fn: Callable) -> None:
    """Chapter 09: ``fn(vlm, bench, people, config, progress)`` → the relearning curve: a copy of ``vlm``
    fine-tuned on ``people``'s training pairs of ``config.facts`` in ``config.modalities``, and the recall
    of their other facts (one row per step probed × modality × task), as ``relearning_curve`` computes it."""
    from ...attacks.relearning import relearning_curve
    compare("relearning_curve", fn, relearning_curve, _relearn_cases(), slips=check_relearning_curve.slips,
            adapt=_curve_records)
