"""The leaderboard: every cell read against its ratio's anchors, then mean ± spread over the seeds.

    results = mu.results.load("mini_unlearn/data/results/leaderboard")
    cells = mu.results.cell_table(results)        # one row per method × setting × ratio × seed
    board = mu.results.leaderboard(results)       # one row per method × setting × ratio: mean ± std
    mu.results.pareto_plot(results)               # forget vs kept: ratios × modalities

The numbers are :func:`~.scoring.progress`'s: the share of the vanilla → retain-only gap closed on
the forget people's weakest task (per modality, and over both), and the points lost on the retain
and utility people. ``verdict_table`` puts chapter 09's audit beside them for the audited cells.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..attacks.auditing import verdict
from ..bench.questions import MODALITIES
from ..methods import get
from .records import REFERENCE, RETRAIN, Results
from .scoring import main_scores, progress, worst_drop

SHOWN = ("closure", "closure_mean", "closure image+text", "closure text", "retain_drop", "utility_drop",
         "own_goal_closure")


def _anchors(results: Results, ratio: float) -> tuple[pd.Series, pd.Series]:
    try:
        vanilla = results.record("vanilla", REFERENCE, ratio)
        never = results.record("retain_only", REFERENCE, ratio)
    except KeyError as error:
        raise ValueError(f"the results at ratio {ratio:g} lack an anchor, and the gap closed is read between the "
                         f"vanilla and the retain-only model: {error}. Record it with `mini-unlearn run` or "
                         f"`compare` and `--reference RETAIN_ONLY_FOLDER`; `mini-unlearn report` reports what "
                         f"needs no reference (mu.results.change_table)") from error
    return main_scores(vanilla.scores), main_scores(never.scores)


def cell_table(results: Results, goal: str = "forget_both") -> pd.DataFrame:
    """One row per unlearned cell: its closures (overall, per modality, per task), the points lost,
    and whether it meets the course's target — for ``goal`` (the leaderboard's: both modalities). A
    ``"retrain"`` record (the retain-only recipe at another training seed) is scored the same way."""
    rows = []
    for record in results.records:
        if record.setting == REFERENCE and record.method != RETRAIN:
            continue
        vanilla, never = _anchors(results, record.ratio)
        scores = main_scores(record.scores)
        got = progress(scores, vanilla, never, goal=goal)
        own_goal = "forget_both" if record.method == RETRAIN else get(record.method).goal
        own = progress(scores, vanilla, never, goal=own_goal)
        row = {"method": record.method, "setting": record.setting, "ratio": record.ratio, "seed": record.seed,
               "closure": got["closure"], "closure_mean": got["closure_mean"]}
        for modality in MODALITIES:
            values = [v for k, v in got["closures"].items() if k.startswith(modality + " ") and math.isfinite(v)]
            row[f"closure {modality}"] = min(values) if values else float("nan")
        row.update({"retain_drop": got["retain_drop"], "utility_drop": got["utility_drop"],
                    "worst_drop": worst_drop(got), "meets_target": got["meets_target"],
                    "own_goal": own_goal, "own_goal_closure": own["closure"],
                    "own_goal_meets": own["meets_target"], "seconds": record.seconds.get("total"),
                    **{f"closed {k}": v for k, v in got["closures"].items()}})
        rows.append(row)
    return pd.DataFrame(rows)


def leaderboard(results: Results, goal: str = "forget_both", columns=SHOWN) -> pd.DataFrame:
    """Per method × setting × ratio: the mean and the standard deviation over seeds of ``columns``,
    the number of seeds and how many of them meet the target."""
    return over_seeds(cell_table(results, goal), columns, results.path, counted=("meets_target",))


def over_seeds(cells: pd.DataFrame, columns, path, counted=()) -> pd.DataFrame:
    """``cells`` (one row per cell) per method × setting × ratio: the mean and the standard deviation over
    seeds of ``columns``, the number of seeds, how many seeds count each ``counted`` column, and the mean
    seconds a cell took. ``path`` names the folder when there is no unlearned cell."""
    if cells.empty:
        raise ValueError(f"{path} holds no unlearned cells, only anchors")
    grouped = cells.groupby(["ratio", "method", "setting"], sort=False)
    frame = grouped[list(columns)].agg(["mean", "std"])
    frame[("seeds", "n")] = grouped.size()
    for name in counted:
        frame[(name, "seeds")] = grouped[name].sum()
    frame[("seconds", "mean")] = grouped["seconds"].mean()
    return frame.sort_index(level=["ratio"], sort_remaining=False)


def mean_spread(board: pd.DataFrame, column: str, digits: int = 2, scale: float = 1.0) -> pd.Series:
    """``"0.93 ± 0.04"`` per row of :func:`leaderboard` (``± 0`` hidden when there is one seed)."""
    means, spreads = board[(column, "mean")] * scale, board[(column, "std")].fillna(0) * scale
    return pd.Series([f"{m:.{digits}f} ± {s:.{digits}f}" if np.isfinite(m) else "-" for m, s in zip(means, spreads)],
                     index=board.index)


def best(results: Results, goal: str = "forget_both") -> pd.DataFrame:
    """Per ratio: among the method × settings that lose ≤ the target's points on average (else all), the one
    with the highest closure, then the highest mean closure (both averaged over seeds) — the tuning rule,
    read on the reported people — and whether it meets the target on every seed."""
    board = leaderboard(results, goal)
    board = board[board.index.get_level_values("method") != RETRAIN]
    from .scoring import TARGET

    rows = []
    for ratio, part in board.groupby(level="ratio", sort=False):
        worst = part[[("retain_drop", "mean"), ("utility_drop", "mean")]].max(axis=1)
        pool = part[worst <= TARGET["drop"]] if (worst <= TARGET["drop"]).any() else part
        order = pd.DataFrame({"closure": pool[("closure", "mean")].fillna(-np.inf),
                              "mean": pool[("closure_mean", "mean")].fillna(-np.inf)})
        top = order.sort_values(["closure", "mean"], ascending=False, kind="stable").index[0]
        rows.append({"ratio": ratio, "method": top[1], "setting": top[2], "closure": part.loc[top, ("closure", "mean")],
                     "closure_mean": part.loc[top, ("closure_mean", "mean")],
                     "retain_drop": part.loc[top, ("retain_drop", "mean")],
                     "utility_drop": part.loc[top, ("utility_drop", "mean")],
                     "meets_target": int(part.loc[top, ("meets_target", "seeds")]) == int(part.loc[top, ("seeds", "n")])})
    return pd.DataFrame(rows)


def against_retraining(results: Results, audits: Results | None = None, goal: str = "forget_both") -> pd.DataFrame:
    """Chapter 13's target, per ratio × method × setting: *as close to the retain-only model as another
    retrain is*. ``scores``: the weakest-cell and the mean closure (means over seeds) at least the retrain
    row's, and at most ``TARGET["drop"]`` points lost on the retain and on the utility people. Where
    ``audits`` (a folder audited with a retrain row, default ``results``) holds the cell at seed 0:
    ``removed``, the verdict "removed" in both modalities; ``attacks``, how many attack scores lie
    within the retrains' distance from the retain-only model's (the largest over the retrain seeds), and
    ``outside``, the others. ``meets``: every part that was measured holds."""
    from .scoring import TARGET

    board = leaderboard(results, goal)
    audited = _attack_distances(audits if audits is not None else results)
    rows = []
    for (ratio, method, setting), row in board.iterrows():
        if method == RETRAIN or (ratio, RETRAIN, REFERENCE) not in board.index:
            continue
        retrain = board.loc[(ratio, RETRAIN, REFERENCE)]
        drop = max(row[("retain_drop", "mean")], row[("utility_drop", "mean")])
        out = {"ratio": ratio, "method": method, "setting": setting, "closure": row[("closure", "mean")],
               "retrain closure": retrain[("closure", "mean")], "closure_mean": row[("closure_mean", "mean")],
               "retrain mean": retrain[("closure_mean", "mean")], "worst_drop": drop}
        out["scores"] = bool(out["closure"] >= out["retrain closure"] and out["closure_mean"] >= out["retrain mean"]
                             and drop <= TARGET["drop"])
        out.update(audited.get((ratio, method, setting), {}))
        out["meets"] = bool(out["scores"] and out.get("removed", True) and not out.get("outside", ""))
        rows.append(out)
    return pd.DataFrame(rows)


def _attack_distances(results: Results) -> dict:
    """``{(ratio, method, setting): {"removed", "attacks", "outside"}}`` for the seed-0 cells of an audited folder
    with a retrain row (see :func:`against_retraining`)."""
    audits, verdicts = results.audits, verdict_table(results)
    found = {}
    if audits.empty or verdicts.empty:
        return found
    key = ["attack", "metric", "modality"]
    for ratio, part in audits.groupby("ratio"):
        anchor = part[(part["setting"] == REFERENCE)]
        never = anchor[anchor["method"] == "retain_only"].set_index(key)["value"]
        retrains = anchor[anchor["method"] == RETRAIN]
        if never.empty or retrains.empty:
            continue
        retrained = retrains.set_index(key)["value"]
        spread = (retrained - never.reindex(retrained.index).to_numpy()).abs().groupby(level=key).max()
        for (method, setting), cell in part[(part["setting"] != REFERENCE) & (part["seed"] == 0)].groupby(
                ["method", "setting"], sort=False):
            cell = cell.set_index(key)["value"]
            distance = (cell - never.reindex(cell.index)).abs()
            allowed = spread.reindex(cell.index)
            measured = distance.notna() & allowed.notna()
            outside = [" / ".join(k) for k in distance.index[measured & (distance > allowed + 1e-9)]]
            words = verdicts[(verdicts["ratio"] == ratio) & (verdicts["method"] == method)
                             & (verdicts["setting"] == setting) & (verdicts["seed"] == 0)]["verdict"]
            found[(ratio, method, setting)] = {"removed": bool(len(words) and (words == "removed").all()),
                                               "attacks": f"{int(measured.sum()) - len(outside)}/{int(measured.sum())}",
                                               "outside": "; ".join(outside)}
    return found


def verdict_table(results: Results) -> pd.DataFrame:
    """Chapter 09's verdict for every audited cell, against its ratio's anchors (surface, depth, words)."""
    audits = results.audits
    if audits.empty:
        return pd.DataFrame()
    rows = []
    for ratio, part in audits.groupby("ratio"):
        anchors = {name: part[(part["method"] == name) & (part["setting"] == REFERENCE)] for name in ("vanilla", "retain_only")}
        if any(frame.empty for frame in anchors.values()):
            continue
        reference = anchors["retain_only"].set_index(["attack", "metric", "modality"])["value"]
        frames = {}
        for (method, setting, seed), cell in part.groupby(["method", "setting", "seed"], sort=False):
            if method == "retain_only":
                continue
            cell = cell.drop(columns=["method", "setting", "ratio", "seed"])
            key = cell.set_index(["attack", "metric", "modality"]).index
            frames[f"{method}|{setting}|{seed}"] = cell.assign(reference=reference.reindex(key).to_numpy())
        frames["vanilla"] = frames.pop(f"vanilla|{REFERENCE}|0")
        table = verdict(frames)
        parts = table.pop("method").str.split("|", expand=True)
        table.insert(0, "seed", parts[2].astype(int))
        table.insert(0, "setting", parts[1])
        table.insert(0, "method", parts[0])
        table.insert(0, "ratio", ratio)
        rows.append(table)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def pareto_plot(results: Results, ratio: float | list[float] | None = None, goal: str = "forget_both"):
    """Forget against kept, one row of panels per forget ratio (``ratio``: one, a list, or None for
    all) and one column per modality: the forget people's closure (up = forgotten) against the points
    lost on the retain and utility people (left = kept), one marker per method × setting with its seed
    spread, one legend for the figure, below the panels."""
    import matplotlib.pyplot as plt

    cells = cell_table(results, goal)
    everything = sorted(cells["ratio"].unique())
    ratios = everything if ratio is None else list(np.atleast_1d(ratio))
    cells = cells[np.isclose(cells["ratio"].to_numpy()[:, None], ratios).any(axis=1)]
    if cells.empty:
        raise ValueError(f"no unlearned cells at ratio {ratio} in {results.path}")
    cells = cells.assign(kept_drop=cells[["retain_drop", "utility_drop"]].max(axis=1))
    columns = [f"closure {modality}" for modality in MODALITIES]
    shares = cells[columns].to_numpy(dtype=float)
    shares = shares[np.isfinite(shares)]             # all NaN: no task separates the anchors
    low = min(0.0, float(shares.min())) if shares.size else 0.0
    high = max(1.0, float(shares.max())) if shares.size else 1.0
    right = float(cells["kept_drop"].max())
    figure, axes = plt.subplots(len(ratios), len(MODALITIES), figsize=(10, 3.0 * len(ratios) + 1.0),
                                sharex=True, sharey=True, squeeze=False, constrained_layout=True)
    methods = list(dict.fromkeys(cells["method"]))
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    markers = {"default": "o", "tuned": "*", REFERENCE: "X"}
    for row, ratio_value in zip(axes, ratios):
        at_ratio = cells[np.isclose(cells["ratio"], ratio_value)]
        for ax, modality, column in zip(row, MODALITIES, columns):
            for (method, setting), group in at_ratio.groupby(["method", "setting"], sort=False):
                spread = len(group) > 1
                ax.errorbar(group["kept_drop"].mean(), group[column].mean(),
                            xerr=group["kept_drop"].std() if spread else None,
                            yerr=group[column].std() if spread else None, color=colours[method],
                            marker=markers.get(setting, "s"), markersize=11 if setting == "tuned" else 7,
                            capsize=3, linestyle="none", label=f"{method} ({setting})")
            ax.axhspan(0.9, high + 0.05, xmax=6 / (right * 1.05 + 2), color="tab:green", alpha=0.1)
            ax.axvline(5, color="grey", ls=":")
            ax.axhline(0.9, color="grey", ls=":")
            asked = "with the portrait" if modality == "image+text" else "by name"
            ax.set_title(f"asked {asked}, forget ratio {ratio_value:g}", fontsize=10)
            ax.set(xlim=(-1, right * 1.05 + 1), ylim=(low - 0.05, high + 0.05))
        row[0].set_ylabel("weakest task: gap closed\n(↑ forgotten)")
    for ax in axes[-1]:
        ax.set_xlabel("points lost on retain / utility (worse →)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    plt.close(figure)
    return figure


__all__ = ["SHOWN", "against_retraining", "best", "cell_table", "leaderboard", "mean_spread", "pareto_plot", "verdict_table"]
