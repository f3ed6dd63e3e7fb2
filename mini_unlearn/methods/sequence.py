"""Requests that keep coming: the forget people arrive in rounds, each unlearned from the last round's model
(chapter 12).

    seq = mu.unlearn_sequence(vlm, bench, "ga_diff", ratio=0.15, rounds=3, lr=1e-4, steps=100)
    seq.vlm            # the model after the last round; the input is never modified
    seq.rounds[0]      # round 1's UnlearnResult (its .vlm is the model after round 1)
    seq.to_frame()     # one row per round × split × modality × task
    seq.costs          # one row per round: the people, the steps, the wall seconds

Real deletion requests arrive one after another: a method that looks fine once may degrade with every
round (PULSE, arXiv 2507.01271). Round ``r`` runs :func:`~.base.unlearn` — the same method and
hyperparameters every round — on round ``r − 1``'s model, with :meth:`Benchmark.request
<mini_unlearn.bench.Benchmark.request>` as its benchmark: its forget set is this round's people, its
retain set every fictitious person not forgotten so far (a person forgotten in round 1 is in no later
round's retain set). Each method's ``prepare`` runs per round on that view and on the round's input
model: MANU's statistics, MMUnlearner's saliency and MIP-Editor's paths are measured again for the new
people on the model as it now is, with nothing trained.

After every round the model is scored with ``mu.evaluate`` on the course's two forgetting tasks
(:data:`SEQUENCE_TASKS`, a few seconds on the course model), in four groups: ``forget`` (everyone
forgotten so far), ``pending`` (the people of later rounds, not asked about yet; absent after the last
round), ``retain`` (the fictitious people no round forgets: the same people every round) and
``utility``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from .. import validate
from ..bench.questions import MODALITIES
from ..bench.splits import require_ratio
from ..evaluation import evaluate
from ..evaluation.report import Report
from ..evaluation.tasks import METRIC, TASKS
from ..models.vlm import VLM
from ..text import fit
from .base import UnlearnResult, get, make_config, unlearn
from .gradient import npo_reference

SEQUENCE_TASKS: tuple[str, ...] = ("mcq_likelihood", "cloze")   # the two scores chapters 04-08 judge forgetting by
SEQUENCE_SPLITS: tuple[str, ...] = ("forget", "pending", "retain", "utility")
SHORT = {"image+text": "i+t"}
EVALUATION_OPTIONS: tuple[str, ...] = ("tasks", "batch_size", "max_new_tokens", "normalize")


def request_rounds(forget_ids, rounds: int) -> list[list[str]]:
    """``forget_ids`` (in their forget order) cut into ``rounds`` contiguous requests of near-equal size.

    The sizes differ by at most one, the larger requests first (as ``numpy.array_split``): 7 people in 3
    rounds are requests of 3, 2 and 2, in that order; nobody is dropped. Exercise 12.2 rebuilds it.
    """
    if isinstance(forget_ids, str) or not isinstance(forget_ids, (list, tuple)):
        raise validate.WrongTypeError(f"forget_ids must be a list of people IDs; got {forget_ids!r}")
    validate.positive_int(rounds, "rounds", hint="how many requests the forget people arrive in")
    if rounds > len(forget_ids):
        raise ValueError(f"rounds must be at most the number of forget people, {len(forget_ids)} (each request "
                         f"forgets at least one person); got {rounds}")
    size, extra = divmod(len(forget_ids), rounds)
    out, start = [], 0
    for index in range(rounds):
        stop = start + size + (1 if index < extra else 0)
        out.append(list(forget_ids[start:stop]))
        start = stop
    return out


def plan_requests(bench, rounds, ratio: float = 0.05) -> list[list[str]]:
    """The people of each request, checked: ``rounds`` an int (:func:`request_rounds` of
    ``bench.forget_ids(ratio)``) or an explicit list of lists of IDs of ``bench``'s fictitious people.

    Errors name the argument: ``rounds`` below 1 or above the number of forget people, an empty round, an
    ID that is not a fictitious person, a person unlearned twice (with the two rounds), wrong types, or
    rounds that leave nobody to retain."""
    ratio = require_ratio(ratio)
    if validate.is_integer(rounds):
        forget = bench.forget_ids(ratio)
        if rounds < 1 or rounds > len(forget):
            raise ValueError(f"rounds must be between 1 and the number of forget people at ratio={ratio} "
                             f"({len(forget)} in {bench.name}): each request forgets at least one person; "
                             f"got {rounds}")
        return request_rounds(forget, rounds)
    if isinstance(rounds, str) or not isinstance(rounds, (list, tuple)):
        raise validate.WrongTypeError(f"rounds must be a number of requests (an int) or a list of requests, each a "
                                      f"list of people IDs; got {rounds!r} ({type(rounds).__name__})")
    if not rounds:
        raise ValueError("rounds is an empty list: give at least one request")
    known = {p.id for p in bench.profiles}
    first_seen: dict[str, int] = {}
    requests = []
    for number, people in enumerate(rounds, start=1):
        if isinstance(people, str) or not isinstance(people, (list, tuple)):
            raise validate.WrongTypeError(f"rounds: round {number} must be a list of people IDs; got {people!r} "
                                          f"({type(people).__name__})")
        if not people:
            raise ValueError(f"rounds: round {number} is empty; every request forgets at least one person")
        for pid in people:
            if not isinstance(pid, str):
                raise validate.WrongTypeError(f"rounds: round {number} holds {pid!r} ({type(pid).__name__}); "
                                              "people IDs are strings")
            if pid not in known:
                raise ValueError(f"rounds: round {number} names {pid!r}, which is not one of the fictitious people "
                                 f"of {bench.name} (their IDs: {sorted(known)[:5]}{' …' if len(known) > 5 else ''})")
            if pid in first_seen:
                where = (f"twice in round {number}" if first_seen[pid] == number
                         else f"in round {first_seen[pid]} and in round {number}")
                raise ValueError(f"rounds: person {pid!r} would be unlearned twice, {where}; each person is "
                                 "forgotten by one request")
            first_seen[pid] = number
        requests.append(list(people))
    if len(first_seen) >= len(known):
        raise ValueError(f"rounds: the requests forget all {len(known)} fictitious people of {bench.name}; "
                         "nobody is left to retain")
    return requests


def _evaluation_options(evaluation) -> dict:
    if evaluation is None:
        return {"tasks": SEQUENCE_TASKS}
    if not isinstance(evaluation, dict):
        raise validate.WrongTypeError(f"evaluation must be a dict of mu.evaluate options; got {evaluation!r}")
    unknown = sorted(set(evaluation) - set(EVALUATION_OPTIONS))
    if unknown:
        raise ValueError(f"evaluation: {unknown} cannot be set here (the splits are the sequence's own); "
                         f"the options are {list(EVALUATION_OPTIONS)}")
    options = {"tasks": SEQUENCE_TASKS, **evaluation}
    tasks = (options["tasks"],) if isinstance(options["tasks"], str) else tuple(options["tasks"])
    for task in tasks:
        validate.one_of(task, "each of evaluation['tasks']", TASKS)
    return {**options, "tasks": tasks}


def round_scores(report: Report, so_far, pending=()) -> pd.DataFrame:
    """A report of the forget, retain and utility splits (at the request view of every sequence person),
    regrouped after a round: the forget split's rows of the people forgotten ``so_far`` stay ``forget``,
    those of the ``pending`` people become ``pending``. Tidy: split × modality × task × metric."""
    details = report.details.copy()
    details["split"] = details["split"].astype(str)
    forget = details["split"] == "forget"
    details.loc[forget & details["profile_id"].isin(list(pending)), "split"] = "pending"
    dropped = forget & ~details["profile_id"].isin(list(so_far) + list(pending))
    frame = Report(details[~dropped].reset_index(drop=True)).to_frame()
    frame["split"] = frame["split"].astype(str)
    frame["modality"] = frame["modality"].astype(str)
    frame["task"] = frame["task"].astype(str)
    return frame


def _reference_once(vlm: VLM, bench, ratio: float, method: str, config, requests, progress: bool) -> dict:
    """A reference model the method would build per round from (bench, ratio), built once up front.

    NPO's default reference is the retain-only model (``mu.models.retain_only``). Asked of each round's view
    it would be a new model to train per round; the retain-only model at ``ratio`` never saw any person of
    the forget set at ``ratio``, so it never saw any round's people either, and it serves every round
    (passed as ``reference=<VLM>``). Rounds with people outside that forget set have no such model."""
    if getattr(config, "reference", None) != "retain_only" or not get(method).holds_reference:
        return {}
    outside = [pid for people in requests for pid in people if pid not in set(bench.forget_ids(ratio))]
    if outside:
        raise ValueError(f"{method} with reference='retain_only': the retain-only model at ratio={ratio} was trained "
                         f"on {outside}, whom these rounds forget; pass reference='initial' (each round's input "
                         "model) or reference=<a VLM that never saw them>")
    return {"reference": npo_reference(vlm, bench, ratio, "retain_only", progress)}


@dataclass
class SequenceResult:
    """The model after every request, what each round did, and the scores after each round."""

    vlm: VLM                         # after the last round
    method: str
    ratio: float
    requests: list[list[str]]        # the people of each round, in order
    rounds: list[UnlearnResult]      # round r's result is rounds[r - 1]; its .vlm the model after round r
    scores: pd.DataFrame             # round × split × modality × task × metric: score, n
    costs: pd.DataFrame              # one row per round: people, steps, seconds_unlearn, seconds_evaluate

    def to_frame(self) -> pd.DataFrame:
        """The scores after every round, tidy: round, split, modality, task, metric, score, n.

        ``forget`` is everyone forgotten up to that round, ``pending`` the people of later rounds,
        ``retain`` the people no round forgets, ``utility`` the utility people."""
        return self.scores.copy()

    def table(self, task: str = "cloze", splits=("forget", "retain", "utility")) -> pd.DataFrame:
        """Round × "split modality" (``i+t``: image+text): ``task``'s main metric after each round."""
        validate.one_of(task, "task", list(dict.fromkeys(self.scores["task"])))
        splits = (splits,) if isinstance(splits, str) else tuple(splits)
        for split in splits:
            validate.one_of(split, "each of splits", SEQUENCE_SPLITS)
        rows = self.scores[(self.scores["task"] == task) & (self.scores["metric"] == METRIC[task])]
        main = rows.pivot_table(index="round", columns=["split", "modality"], values="score", aggfunc="first")
        order = [(s, m) for s in splits for m in MODALITIES if (s, m) in main.columns]
        main = main[order]
        main.columns = [f"{s} {SHORT.get(m, m)}" for s, m in order]
        return main

    def __repr__(self) -> str:
        sizes = ", ".join(str(len(people)) for people in self.requests)
        steps = ", ".join(str(n) for n in self.costs["steps"])
        head = fit(f"SequenceResult({self.method!r}, ratio={self.ratio}: {len(self.requests)} rounds of {sizes} "
                   f"people; steps per round {steps})")
        blocks = [f"{task} (i+t: image+text):\n" + self.table(task).to_string(float_format=lambda x: f"{x:.3f}")
                  for task in dict.fromkeys(self.scores["task"])]
        return head + "\n" + "\n".join(blocks)


def unlearn_sequence(vlm: VLM, bench, method: str, ratio: float = 0.05, rounds=3, *, progress: bool = True,
                     device=None, evaluation: dict | None = None, **hyperparameters) -> SequenceResult:
    """Unlearn the forget people at ``ratio`` in ``rounds`` requests, each from the previous round's model.

    ``rounds``: an int (the forget people in their forget order, cut by :func:`request_rounds`) or an
    explicit list of requests, each a list of IDs of ``bench``'s fictitious people. Round ``r`` is
    ``mu.unlearn(model after round r − 1, bench.request(round r's people, forgotten=rounds before, ratio=ratio),
    method, ratio, **hyperparameters)``: the same method and hyperparameters every round, and a retain set
    without anyone forgotten so far. The input model is never modified.

    After every round: ``mu.evaluate`` on :data:`SEQUENCE_TASKS` (``evaluation``: other ``tasks``,
    ``batch_size``, ``max_new_tokens`` or ``normalize``) of the forget people so far, the pending people,
    the retain people and the utility people, per modality; and the cost (steps, wall seconds).

    NPO's default ``reference="retain_only"`` is the retain-only model at ``ratio`` for every round (it never
    saw any round's people), loaded once and passed as ``reference=<VLM>``: nothing new is trained.
    ``reference="initial"`` is each round's input model (the model before that round's unlearning).

    Every argument (the model, the method and its hyperparameters, ``ratio``, ``rounds``, ``evaluation``) is
    checked before anything is loaded or any weight changes. Every round's model is kept (``.rounds[r].vlm``):
    the memory of ``rounds`` models besides the input.
    """
    if not isinstance(vlm, VLM):
        raise validate.WrongTypeError(f"vlm must be a mini_unlearn VLM (model + processor); got {type(vlm).__name__}")
    config = make_config(method, **hyperparameters)
    ratio = require_ratio(ratio)
    requests = plan_requests(bench, rounds, ratio)
    options = _evaluation_options(evaluation)
    if not isinstance(progress, bool):
        raise validate.WrongTypeError(f"progress must be True or False; got {progress!r}")
    everyone = [pid for people in requests for pid in people]
    scored = bench.request(everyone, ratio=ratio)     # its forget split: every sequence person; retain: the rest
    hyperparameters = {**hyperparameters, **_reference_once(vlm, bench, ratio, method, config, requests, progress)}

    current, results, frames, costs = vlm, [], [], []
    for number, people in enumerate(requests, start=1):
        earlier = [pid for done in requests[:number - 1] for pid in done]
        view = bench.request(people, forgotten=earlier, ratio=ratio)
        started = time.perf_counter()
        result = unlearn(current, view, method, ratio, progress=progress, device=device, **hyperparameters)
        seconds_unlearn = time.perf_counter() - started
        started = time.perf_counter()
        report = evaluate(result.vlm, scored, ratio, splits=("forget", "retain", "utility"), progress=False, **options)
        so_far = earlier + people
        frame = round_scores(report, so_far, [pid for pid in everyone if pid not in set(so_far)])
        frames.append(frame.assign(round=number))
        costs.append({"round": number, "people": " ".join(people), "steps": len(result.log.losses),
                      "seconds_unlearn": round(seconds_unlearn, 2),
                      "seconds_evaluate": round(time.perf_counter() - started, 2)})
        results.append(result)
        current = result.vlm
    scores = pd.concat(frames, ignore_index=True)
    scores = scores[["round", *[c for c in scores.columns if c != "round"]]]
    return SequenceResult(current, method, ratio, requests, results, scores, pd.DataFrame(costs))


__all__ = ["EVALUATION_OPTIONS", "SEQUENCE_SPLITS", "SEQUENCE_TASKS", "SequenceResult", "plan_requests",
           "request_rounds", "round_scores", "unlearn_sequence"]
