"""``Report``: what a model still knows, per split × modality × task, and per question (chapter 03).

Every score is a fraction in [0, 1]: accuracy for the MCQ and cloze tasks, ROUGE-L F1 for
generation. ``report.details`` keeps one row per question and task, so later chapters can draw a
heatmap per person or look at what the model actually said.

Whether a number should go up or down depends on what the method means by "forget" (see ``GOALS``),
so the report itself never marks a column good or bad.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..bench import MODALITIES, SPLITS
from ..text import COLUMN
from .tasks import METRIC, TASKS

# Two definitions of multimodal unlearning (book/appendix/benchmark.md, 'Two meanings of "forgotten"').
# "down" = should fall after unlearning, "up" = should stay as high as the vanilla model's. Each method
# names its goal where it is registered (mu.methods.register(..., goal=...)).
GOALS: dict[str, dict] = {
    "forget_both": {
        "about": "Forget the person in both modalities: asked with their portrait or by their name, the "
                 "model should no longer know them (MLLMU-Bench's own goal; MANU and MIP-Editor).",
        "direction": {("forget", "image+text"): "down", ("forget", "text"): "down",
                      ("test", "image+text"): "down", ("test", "text"): "down",
                      ("retain", "image+text"): "up", ("retain", "text"): "up",
                      ("utility", "image+text"): "up", ("utility", "text"): "up"},
    },
    "forget_visual": {
        "about": "Forget only the visual link: shown the portrait the model should no longer recognise "
                 "the person, but asked by name it should still know them (MMUnlearner's reformulation).",
        "direction": {("forget", "image+text"): "down", ("forget", "text"): "up",
                      ("test", "image+text"): "down", ("test", "text"): "up",
                      ("retain", "image+text"): "up", ("retain", "text"): "up",
                      ("utility", "image+text"): "up", ("utility", "text"): "up"},
    },
}

DETAIL_COLUMNS = ("split", "modality", "task", "question_id", "profile_id", "fact", "answer", "prediction",
                  "correct", "score", "rouge1")


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Splits, modalities and tasks in the course's order (not alphabetical); other names after them."""
    frame = frame.copy()
    for column, order in (("split", SPLITS), ("modality", MODALITIES), ("task", TASKS)):
        values = [str(v) for v in frame[column]]
        order = list(order) + [v for v in dict.fromkeys(values) if v not in order]
        frame[column] = pd.Categorical(values, categories=order, ordered=True)
    return frame


@dataclass
class Report:
    """Scores of one model on a benchmark: ``details`` has one row per question × task."""

    METRICS = METRIC         # task -> its main metric (a subclass of another benchmark names its own)
    KIND = "report"          # how error messages name it
    details: pd.DataFrame
    settings: dict = field(default_factory=dict)   # ratio, few_shot, max_new_tokens, normalize, model

    def __post_init__(self):
        missing = set(DETAIL_COLUMNS) - set(self.details.columns)
        if missing:
            raise ValueError(f"details lack the columns {sorted(missing)}")
        self.details = _ordered(self.details)

    # -- numbers --------------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """A tidy table: one row per split × modality × task × metric, with the score and the count."""
        groups = self.details.groupby(["split", "modality", "task"], observed=True, sort=True)
        main = groups.agg(score=("score", "mean"), n=("score", "size")).reset_index()
        main.insert(3, "metric", main["task"].map(METRIC).astype(str))
        gen = self.details[self.details["task"] == "gen"]
        if len(gen):   # ROUGE-1 as well, as MLLMU-Bench logs it
            extra = gen.groupby(["split", "modality", "task"], observed=True, sort=True)
            extra = extra.agg(score=("rouge1", "mean"), n=("rouge1", "size")).reset_index()
            extra.insert(3, "metric", "rouge1")
            main = pd.concat([main, extra], ignore_index=True)
        main = _ordered(main).sort_values(["split", "modality", "task", "metric"], ascending=[True, True, True, False])
        return main.reset_index(drop=True)

    def table(self) -> pd.DataFrame:
        """Split × modality rows, one column per task (its main metric)."""
        frame = self.to_frame()
        frame = frame[frame["metric"] == frame["task"].map(METRIC).astype(str)]
        return frame.pivot(index=["split", "modality"], columns="task", values="score").rename_axis(columns=None)

    def score(self, split: str, modality: str, task: str, metric: str | None = None) -> float:
        """One number, e.g. ``report.score("forget", "image+text", "mcq_letter")`` (a CLEAR report:
        ``report.score("forget", "text", "forget_quality")``, ``report.score("all", "all", "model_utility")``)."""
        metric = metric or self.METRICS.get(task)
        frame = self.to_frame()
        found = frame[(frame["split"] == split) & (frame["modality"] == modality) & (frame["task"] == task)
                      & (frame["metric"] == metric)]
        if found.empty:
            have = sorted({(str(s), str(m), str(t)) for s, m, t in
                           frame[["split", "modality", "task"]].itertuples(index=False)})
            raise KeyError(f"no {metric!r} score for split={split!r}, modality={modality!r}, task={task!r} "
                           f"in this {self.KIND}; it has {have}")
        return float(found["score"].iloc[0])

    def person(self, task: str = "mcq_letter") -> pd.DataFrame:
        """Profile × (split, modality) mean score of one task: who is still known, and how."""
        rows = self.details[self.details["task"] == task]
        return rows.pivot_table(index="profile_id", columns=["split", "modality"], values="score",
                                aggfunc="mean", observed=True)

    # -- display --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        if self.details.empty:
            return "Report(no questions)"
        table = self.table()
        counts = self.to_frame().groupby(["split", "modality"], observed=True)["n"]
        table["n"] = counts.agg(lambda n: str(n.iloc[0]) if n.nunique() == 1 else "/".join(map(str, n)))
        names = {"gen": "gen (ROUGE-L)"}
        table = table.rename(columns=names)
        shown = ("ratio", "few_shot") + (("likelihood", "normalize") if "mcq_likelihood" in table.columns else ())
        about = ", ".join(f"{k}={self.settings[k]}" for k in shown if k in self.settings)
        header = f"Report({about}; {len(self.details)} answers; n = questions per task)"
        if len(header) > COLUMN:   # the book's column: the count goes on a second line
            header = f"Report({about};\n       {len(self.details)} answers; n = questions per task)"
        return header + "\n" + table.to_string(float_format=lambda x: f"{x:.3f}", na_rep="-")

    def plot(self, title: str | None = None):
        """A heatmap of split × modality per task; returns the matplotlib figure."""
        import matplotlib.pyplot as plt
        import seaborn as sns

        table = self.table()
        tasks = list(table.columns)
        figure, axes = plt.subplots(1, len(tasks), figsize=(2.6 * len(tasks) + 1, 2.8), squeeze=False,
                                    sharey=True, constrained_layout=True)
        for i, (ax, task) in enumerate(zip(axes[0], tasks)):
            grid = table[task].unstack("modality")
            grid.index, grid.columns = grid.index.astype(str), grid.columns.astype(str)
            sns.heatmap(grid, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", cbar=i == len(tasks) - 1,
                        linewidths=0.5)
            ax.set_title(f"{task} ({METRIC[task]})", fontsize=10)
            ax.set_xlabel("")
            ax.set_ylabel("split" if i == 0 else "")
            ax.tick_params(axis="y", rotation=0)
        if title:
            figure.suptitle(title)
        plt.close(figure)   # shown once, as the returned value, not also by the inline backend
        return figure
