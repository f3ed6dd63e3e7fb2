"""Linear probes on the hidden states, layer by layer (MIP-Editor §4.7; chapter 09).

A logistic regression (scikit-learn) reads the residual stream at the position that predicts the answer
(:mod:`.readout`). Two questions:

* **who** — can it tell the forget people's questions from the retain people's? Cross-validated over
  *people* (no person's questions are in both the training and the test folds: otherwise the probe
  only learns to recognise individuals), scored by balanced accuracy, so chance is 0.5. MIP-Editor
  reports this separability *after* unlearning (its edit makes the forget people stand out, > 85 %).
  The vanilla model knows forget and retain people alike: near chance. A model that never saw the
  forget people meets strangers, which may well look different.
* **what** — can it still decode a forgotten fact's answer? Trained on the retain people's MCQs (label:
  the correct letter), tested on the forget people's MCQs: chance 0.25. If the letter is still linearly
  readable at some layer while the model's own answer is wrong, the fact is hidden, not removed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .readout import answer_states

C = 0.1           # inverse L2 strength: a few hundred samples of a 64-to-4096-wide state need regularising


def probe(C: float = C, seed: int = 0):
    """The classifier: standardised features, then an L2 logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))


def cv_accuracy(features: np.ndarray, labels: np.ndarray, groups=None, *, folds: int = 5, seed: int = 0,
                C: float = C) -> float:
    """Mean balanced accuracy of :func:`probe` over stratified ``folds``-fold cross-validation.

    ``groups`` (e.g. the person each sample is about) keeps each group inside one fold."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError("labels must hold at least two classes")
    smallest = min(counts) if groups is None else min(len(set(np.asarray(groups)[labels == c])) for c in classes)
    folds = min(folds, int(smallest))
    if folds < 2:
        raise ValueError("each class needs at least two samples (two groups, with groups) for cross-validation")
    split = (StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed) if groups is None
             else StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed))
    return float(cross_val_score(probe(C, seed), features, labels, groups=groups, cv=split,
                                 scoring="balanced_accuracy").mean())


def transfer_accuracy(train_x, train_y, test_x, test_y, *, seed: int = 0, C: float = C) -> float:
    """Accuracy on ``test`` of :func:`probe` fitted on ``train``."""
    return float(probe(C, seed).fit(train_x, train_y).score(test_x, test_y))


def who_probe(vlm, bench, ratio: float = 0.05, *, tasks=("gen",), retain_people: int = 10, folds: int = 5,
              seed: int = 0, batch_size: int = 32) -> pd.DataFrame:
    """Per layer and modality: can a probe tell forget people's questions from retain people's?

    ``retain_people``: the first ones of the retain split. Folds split people, not questions; the
    score is balanced accuracy (chance 0.5). With a single forget person there is nobody to hold out:
    the accuracy is NaN."""
    forget = bench.split("forget", ratio)
    retain_ids = bench.split("retain", ratio).ids[:retain_people]
    asked = [q for q in forget.questions if q.task in tasks]
    others = [q for pid in retain_ids for q in bench.questions[pid] if q.task in tasks]
    states = answer_states(vlm, asked + others, batch_size).states.numpy()
    labels = np.array([1] * len(asked) + [0] * len(others))
    people = np.array([q.profile_id for q in asked + others])
    modality = np.array([q.modality for q in asked + others])
    rows = []
    for layer in range(states.shape[0]):
        for name in sorted(set(modality)):
            keep = modality == name
            accuracy = (float("nan") if len(forget) < 2 or len(retain_ids) < 2 else
                        cv_accuracy(states[layer][keep], labels[keep], people[keep], folds=folds, seed=seed))
            rows.append({"layer": layer, "modality": name, "accuracy": accuracy})
    return pd.DataFrame(rows)


def what_probe(vlm, bench, ratio: float = 0.05, *, seed: int = 0, batch_size: int = 32) -> pd.DataFrame:
    """Per layer and modality: a probe trained on the retain people's MCQs (label: the correct letter)
    decodes the forget people's correct letters with this accuracy (chance 0.25)."""
    forget = [q for q in bench.split("forget", ratio).questions if q.task == "mcq"]
    retain = [q for q in bench.split("retain", ratio).questions if q.task == "mcq"]
    states = answer_states(vlm, retain + forget, batch_size).states.numpy()
    letters = np.array([q.correct for q in retain + forget])
    modality = np.array([q.modality for q in retain + forget])
    is_forget = np.array([False] * len(retain) + [True] * len(forget))
    rows = []
    for layer in range(states.shape[0]):
        for name in sorted(set(modality)):
            train, test = (modality == name) & ~is_forget, (modality == name) & is_forget
            rows.append({"layer": layer, "modality": name,
                         "accuracy": transfer_accuracy(states[layer][train], letters[train], states[layer][test],
                                                       letters[test], seed=seed)})
    return pd.DataFrame(rows)


__all__ = ["C", "cv_accuracy", "probe", "transfer_accuracy", "what_probe", "who_probe"]
