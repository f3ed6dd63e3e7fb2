"""Cross-modal, paraphrase and transformed-portrait probes: is the fact gone, or only the way it was asked?
(chapter 09)

Each probe asks the forget people's facts, teacher-forced like the training monitor (is every answer
token the model's top choice?), in a way the unlearning may not have covered:

* ``as trained`` — the benchmark's own questions, canonical portraits (the baseline the others are read
  against);
* ``paraphrased`` — the ``gen`` questions in other words (:data:`~mini_unlearn.bench.questions.PARAPHRASES`),
  the same answer sentence;
* ``test views`` — the image questions with the test split's transformed portrait.

Every probe is reported per modality, which is the **cross-modal** probe: a method that unlearned with
portraits is read on the same facts asked by name, and the reverse.
"""
from __future__ import annotations

import pandas as pd

from .. import distributed
from ..bench.questions import paraphrased
from ..models.train import Monitor

PROBES: tuple[str, ...] = ("as trained", "paraphrased", "test views")


def probe_questions(bench, ratio: float = 0.05, split: str = "forget", tasks=("gen", "cloze")) -> dict:
    """``{probe: (questions, images)}`` for the people of ``split`` (``images``: the Monitor's image mode)."""
    questions = [q for q in bench.split(split, ratio).questions if q.task in tasks]
    if not questions:
        raise ValueError(f"the {split!r} split at ratio={ratio} has no {tasks} question to probe")
    gen = [q for q in questions if q.task == "gen"]
    out = {"as trained": (questions, "canonical")}
    if gen:
        out["paraphrased"] = ([paraphrased(q, bench.profile(q.profile_id).name) for q in gen], "canonical")
    pictured = [q for q in questions if q.image is not None and q.profile_id in bench.test_images]
    if pictured:
        out["test views"] = (pictured, "test")
    return out


def recall_probes(vlm, bench, ratio: float = 0.05, *, split: str = "forget", tasks=("gen", "cloze"),
                  batch_size: int = 64) -> pd.DataFrame:
    """One row per probe × modality × task: the share of answers recalled exactly (teacher-forced).

    Under a multi-process launcher call it on every process: with the model whole on each, the Monitor's
    batches are shared out (``Monitor(…)(model, split=True)``), and every process gets the whole frame."""
    rows = []
    shared = distributed.holds_whole(vlm.model)
    for probe, (questions, images) in probe_questions(bench, ratio, split, tasks).items():
        monitor = Monitor(vlm, bench, images=images, questions=questions, batch_size=batch_size)
        for key, value in monitor(vlm.model, split=shared).items():
            task, modality = key.split("/")
            rows.append({"probe": probe, "modality": modality, "task": task, "recall": value})
    return pd.DataFrame(rows)


__all__ = ["PROBES", "probe_questions", "recall_probes"]
