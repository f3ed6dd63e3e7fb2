"""Chapter 12 · CLEAR, quantization, requests that keep coming: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, as_float, compare, slips

__all__ = ["check_request_rounds", "check_retained_share", "check_truth_ratio_score"]


# -- CLEAR's truth-ratio score (exercise 12.3) ---------------------------------------------------------

def _truth_score_cases() -> list[Case]:
    """Truth ratios on both sides of 1, for a forget set and for the other sets."""
    return [("a forget set, ratios on both sides of 1", ([0.2, 0.9, 1.5, 3.0], True)),
            ("a retain set whose wrong answers are all less likely (every ratio above 1)", ([1.25, 2.0, 4.0], False)),
            ("a real-faces set where some wrong answers are likelier (ratios below 1)", ([0.5, 0.8, 1.25, 4.0], False)),
            ("a forget set the model still knows (every ratio far below 1)", ([0.05, 0.1, 0.4], True)),
            ("a real-world set of one item", ([0.25], False))]


def _forget_form_everywhere(ratios, forget):
    import numpy as np
    ratios = np.asarray(ratios, dtype=float)
    return float(np.minimum(ratios, 1 / ratios).mean())


def _ratio_and_inverse_swapped(ratios, forget):
    import numpy as np
    ratios = np.asarray(ratios, dtype=float)
    if forget:
        return float(np.minimum(ratios, 1 / ratios).mean())
    return float(np.maximum(0.0, 1 - ratios).mean())


def _truth_no_floor(ratios, forget):
    import numpy as np
    ratios = np.asarray(ratios, dtype=float)
    if forget:
        return float(np.minimum(ratios, 1 / ratios).mean())
    return float((1 - 1 / ratios).mean())


@slips(Slip(_forget_form_everywhere, "min(TR, 1/TR) is the forget sets' form; every other set (retain, real "
                                     "faces, real world) reports max(0, 1 − 1/TR): there a high score means the "
                                     "model still prefers the right answer"),
       Slip(_ratio_and_inverse_swapped, "TR and 1/TR are swapped: the other sets report max(0, 1 − 1/TR), which "
                                        "nears 1 as the wrong answers' loss rises above the right one's (TR ≫ 1)"),
       Slip(_truth_no_floor, "the floor is missing: the other sets report max(0, 1 − 1/TR), so an item whose wrong "
                       "answers are likelier (TR < 1) counts 0, not a negative number"))
def check_truth_ratio_score(fn: Callable) -> None:
    """Chapter 12: ``fn(ratios, forget)`` → CLEAR's reported "Truth Ratio" of a set: ``mean(min(TR, 1/TR))`` on a
    forget set (``forget=True``), ``mean(max(0, 1 − 1/TR))`` on any other, as ``calculate_metrics.py`` reports it."""
    from ...evaluation.clear import truth_ratio_score
    compare("truth_ratio_score", fn, truth_ratio_score, _truth_score_cases(), atol=1e-9,
            slips=check_truth_ratio_score.slips, adapt=as_float)


# -- requests that keep coming: the forget people in rounds (exercise 12.2) ------------------------------

def _rounds_cases() -> list[Case]:
    """Forget people in a shuffled forget order (contiguous means in THAT order), cut into whole rounds, rounds
    with a remainder of one or two, one round, and one person a round."""
    import random
    rng = random.Random(12)
    cases = []
    for n, rounds in ((6, 3), (7, 3), (10, 4), (5, 4), (8, 3), (5, 1), (4, 4), (11, 3)):
        ids = [f"{i:03d}" for i in rng.sample(range(1, 41), n)]
        cases.append((f"{n} forget people in {rounds} rounds", (ids, rounds)))
    return cases


def _rounds_round_robin(forget_ids, rounds):
    return [list(forget_ids[index::rounds]) for index in range(rounds)]


def _rounds_remainder_dropped(forget_ids, rounds):
    size = len(forget_ids) // rounds
    return [list(forget_ids[index * size:(index + 1) * size]) for index in range(rounds)]


def _rounds_ceil_chunks(forget_ids, rounds):
    import math
    size = math.ceil(len(forget_ids) / rounds)
    return [list(forget_ids[index * size:(index + 1) * size]) for index in range(rounds)]


@slips(Slip(_rounds_round_robin, "the people are dealt round-robin (every rounds-th person to the same round); a "
                                 "request is a CONTIGUOUS run of the forget order: the first people in round 1"),
       Slip(_rounds_remainder_dropped, "the people left over after len(forget_ids) // rounds per round are dropped; "
                                       "nobody may be left out: the first len(forget_ids) % rounds rounds take one "
                                       "person more"),
       Slip(_rounds_ceil_chunks, "every round takes ceil(n / rounds) people, so the last rounds come out short or "
                                 "empty; the sizes may differ by one at most (the larger rounds first)"))
def check_request_rounds(fn: Callable) -> None:
    """Chapter 12 (●●): ``fn(forget_ids, rounds)`` → ``rounds`` lists of IDs: ``forget_ids`` in their order, cut
    into contiguous requests whose sizes differ by one at most, the larger ones first (``numpy.array_split``)."""
    from ...methods.sequence import request_rounds

    def as_lists(f):
        return lambda *args: [list(people) for people in f(*args)]

    compare("request_rounds", fn, request_rounds, _rounds_cases(), slips=check_request_rounds.slips, adapt=as_lists)


# -- the quantization attack: the share of the gap a model still holds (exercise 12.1) -------------------

def _retained_cases() -> list[Case]:
    """Three models' forget recall at full precision, 8 and 4 bits: anchors that move with the precision, a model
    below the retain-only one, and a 4-bit row whose anchors are too close to tell apart (NaN there)."""
    import pandas as pd

    def table(model, vanilla, reference):
        return pd.DataFrame({"model": model, "vanilla": vanilla, "reference": reference},
                            index=["full", "8-bit", "4-bit"])

    return [("anchors that move with the precision", (table([0.25, 0.25, 0.75], [1.0, 1.0, 0.75], [0.0, 0.0, 0.25]),)),
            ("a model that recovers at 4 bits", (table([0.0, 0.1, 0.9], [0.95, 0.9, 0.8], [0.05, 0.1, 0.1]),)),
            ("a model below the retain-only one", (table([0.0, 0.0, 0.5], [1.0, 0.9, 0.6], [0.2, 0.2, 0.3]),)),
            ("4-bit anchors 0.03 apart (the reading does not separate them)",
             (table([0.5, 0.5, 0.5], [1.0, 0.8, 0.53], [0.0, 0.1, 0.5]),))]


def _as_shares(f: Callable) -> Callable:
    """``f(scores)`` as a list of floats in the order of ``scores``' rows (a Series, a dict or a list back)."""
    import pandas as pd

    def run(scores):
        out = f(scores.copy())
        if isinstance(out, (dict, pd.Series)):
            return [float(out[precision]) for precision in scores.index]
        return [float(value) for value in out]
    return run


def _share(model, vanilla, reference, floor=0.05):
    return float("nan") if abs(vanilla - reference) < floor else (model - reference) / (vanilla - reference)


def _full_precision_anchors(scores):
    full = scores.loc["full"]
    return [_share(row["model"], full["vanilla"], full["reference"]) for _, row in scores.iterrows()]


def _gap_closed(scores):
    return [1 - _share(row["model"], row["vanilla"], row["reference"]) for _, row in scores.iterrows()]


def _no_floor(scores):
    return [(row["model"] - row["reference"]) / (row["vanilla"] - row["reference"]) for _, row in scores.iterrows()]


@slips(Slip(_full_precision_anchors, "every precision is measured against the FULL-precision anchors; quantization "
                                     "costs the vanilla and retain-only models some recall too, so each row reads "
                                     "its own precision's vanilla and reference"),
       Slip(_gap_closed, "this is the share of the gap CLOSED (chapter 09's gap_closed, (vanilla − model) / (vanilla − "
                         "reference)); the retained share is what the model still holds: (model − reference) / "
                         "(vanilla − reference)"),
       Slip(_no_floor, "the NaN floor is missing: where the vanilla and retain-only models differ by less than 0.05 "
                       "the reading does not separate them, and the share is NaN"))
def check_retained_share(fn: Callable) -> None:
    """Chapter 12 (●): ``fn(scores)`` → per row of ``scores`` (one per precision; columns ``model``, ``vanilla``,
    ``reference``: each model's forget recall there), ``(model − reference) / (vanilla − reference)`` against that
    row's own anchors, NaN where the anchors differ by less than 0.05."""
    from ...attacks.quantization import retained_shares
    compare("retained_share", fn, retained_shares, _retained_cases(), atol=1e-9, slips=check_retained_share.slips,
            adapt=_as_shares)
