"""Watching forgetting happen: a cheap probe of forget vs retain knowledge, per modality, during a run.

``split_monitor(vlm, bench, ratio)`` returns a callable for ``unlearn(..., monitor=..., probe_every=k)``.
Each call scores teacher-forced exact match (one forward pass per batch; see
:class:`mini_unlearn.models.Monitor`) of the forget and the retain people's questions, by image and
by name, on the canonical portraits. The full evaluation (``mu.evaluate``) runs after unlearning;
this is the curve in between.
"""
from __future__ import annotations

from ..bench.splits import require_ratio
from ..models.train import Monitor


def split_monitor(vlm, bench, ratio: float = 0.05, tasks: tuple[str, ...] = ("cloze",), *,
                  retain_people: int | None = 10, batch_size: int = 64, score: str = "exact_match"):
    """A probe ``model -> {"forget/image+text": acc, "forget/text": …, "retain/image+text": …, "retain/text": …}``.

    ``tasks`` are the question tasks scored (default: cloze, whose answer is the fact's value);
    ``retain_people`` caps how many retain people are probed (the first ones; None = all) to keep it fast.
    ``score="log_likelihood"``: the mean answer log-likelihood instead of exact match.
    """
    require_ratio(ratio)
    forget = bench.split("forget", ratio).ids
    retain = bench.split("retain", ratio).ids[:retain_people]
    monitors = {split: Monitor(vlm, bench, people, images="canonical", tasks=tuple(tasks), batch_size=batch_size,
                        score=score)
                for split, people in (("forget", forget), ("retain", retain))}

    def probe(model) -> dict[str, float]:
        scores = {}
        for split, monitor in monitors.items():
            for key, value in monitor(model).items():
                task, modality = key.split("/")
                name = f"{split}/{modality}" if len(tasks) == 1 else f"{split}/{task}/{modality}"
                scores[name] = round(value, 4)
        return scores
    return probe


__all__ = ["split_monitor"]
