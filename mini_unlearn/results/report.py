"""``mini-unlearn report``: a results folder as Markdown, HTML and PNG figures (chapter 10's tables).

    write_report(mu.results.load("results/"), "results/report")   # report.md, report.html, pareto-*.png

Where the folder holds both anchors (the course's models, or ``--reference``), the report is the
leaderboard: closures, the target, the best per ratio, a Pareto plot per ratio and the audit's verdict.
At a ratio without a retain-only model (a researcher's own checkpoint, run without ``--reference``) it
reports what needs none (:mod:`.changes`): the scores, the points each cell moved against the vanilla
model and the audit beside the vanilla model's, then says which sections it left out, why, and how to
add them (:func:`reference_note`).
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from .changes import (anchored_ratios, at_ratios, audit_changes, change_board, missing_references, score_table)
from .leaderboard import best, cell_table, leaderboard, mean_spread, pareto_plot, verdict_table
from .records import REFERENCE, Results
from .scoring import TARGET

ASKED = {"image+text": "portrait", "text": "name"}
LEFT_OUT = (("the leaderboard's closure columns — closure (weakest), mean closure, portrait, name, own goal — and "
            "the seeds meeting the target"), "the best method per ratio and the Pareto plot (both read the closure)",
            "the audit's verdict (surface and depth: each attack's share of the gap)")


def board_text(results: Results, goal: str = "forget_both") -> pd.DataFrame:
    """The leaderboard as text cells: closures as shares, drops in points, ``mean ± std`` over seeds."""
    board = leaderboard(results, goal)
    shown = pd.DataFrame(index=board.index)
    shown["closure (weakest)"] = mean_spread(board, "closure")
    shown["mean closure"] = mean_spread(board, "closure_mean")
    shown["portrait"] = mean_spread(board, "closure image+text")
    shown["name"] = mean_spread(board, "closure text")
    shown["retain pts lost"] = mean_spread(board, "retain_drop", digits=1)
    shown["utility pts lost"] = mean_spread(board, "utility_drop", digits=1)
    shown["own goal"] = mean_spread(board, "own_goal_closure")     # MMUnlearner: the portraits only
    shown["seeds meeting target"] = [f"{int(m)}/{int(n)}" for m, n in zip(board[("meets_target", "seeds")],
                                                                          board[("seeds", "n")])]
    shown["s / run"] = board[("seconds", "mean")].map("{:.0f}".format)
    return shown.reset_index()


def scores_text(results: Results) -> pd.DataFrame:
    """:func:`~.changes.score_table` as text: per ratio, method and setting (the anchors first), the mean
    main score in points (×100) of each view, averaged over the seeds."""
    table = score_table(results)
    grouped = table.groupby(["ratio", "method", "setting"], sort=False)
    shown = grouped[["forget image+text", "forget text", "test image+text", "retain", "utility"]].mean().round(1)
    shown.columns = ["forget, portrait", "forget, name", "test portraits", "retain", "utility"]
    shown["seeds"] = grouped.size()
    return shown.reset_index()


def changes_text(results: Results) -> pd.DataFrame:
    """:func:`~.changes.change_board` as text: the points each view fell against the vanilla model,
    ``mean ± std`` over seeds."""
    board = change_board(results)
    shown = pd.DataFrame(index=board.index)
    for column, name in (("forget image+text", "forget, portrait"), ("forget text", "forget, name"),
                         ("forget_weakest", "weakest forget task"), ("test image+text", "test portraits"),
                         ("retain_drop", "retain pts lost"), ("utility_drop", "utility pts lost")):
        shown[name] = mean_spread(board, column, digits=1)
    shown["seeds"] = board[("seeds", "n")].astype(int)
    shown["s / run"] = board[("seconds", "mean")].map("{:.0f}".format)
    return shown.reset_index()


def audit_text(results: Results) -> dict[float, pd.DataFrame]:
    """Per ratio: every attack's value on the vanilla model and on each audited cell, side by side."""
    changes = audit_changes(results)
    tables = {}
    if changes.empty:
        return tables
    for ratio, part in changes.groupby("ratio"):
        part = part.assign(asked=part["modality"].map(ASKED).fillna(part["modality"]),
                           cell=[f"{m} ({s}, seed {seed})" for m, s, seed in zip(part["method"], part["setting"],
                                                                               part["seed"])])
        index = ["attack", "metric", "asked", "direction"]
        values = part.pivot_table(index=index, columns="cell", values="value", sort=False)
        vanilla = part.groupby(index, sort=False)["vanilla"].first()
        table = pd.concat([vanilla, values], axis=1).round(3).reset_index()
        tables[ratio] = table
    return tables


def _command(results: Results, ratio: float) -> str:
    """``mini-unlearn run`` naming a finished cell at ``ratio``: it records the retain-only anchor, then reads
    the cell back (a cell is known by its method, setting, ratio and seed) — nothing is unlearned again."""
    done = next(r for r in results.records if r.ratio == ratio and r.setting != REFERENCE)
    model = results.identity.get("model", {}).get("path")
    model = model if model not in (None, "None") else "YOUR_MODEL"      # a model built in Python has no folder
    return (f"mini-unlearn run --model {model} --reference retain-only-{ratio:g} \\\n"
            f"    --method {done.method} --setting {done.setting} --ratio {ratio:g} --seed {done.seed} "
            f"--out {results.path}")


def reference_note(results: Results) -> list[tuple[str, object]]:
    """What the report left out at the ratios without a retain-only model, why, and how to add it: blocks
    ``("p", text)``, ``("ul", [items])``, ``("bash" | "python", code)``. Empty when nothing is missing."""
    missing = [ratio for ratio in missing_references(results)
               if any(r.ratio == ratio and r.setting != REFERENCE for r in results.records)]
    if not missing:
        return []
    ratios = ", ".join(f"{ratio:g}" for ratio in missing)
    audited = not audit_changes(at_ratios(results, missing)).empty
    files = ", ".join(f"`runs/retain_only__{REFERENCE}__ratio{ratio:g}__seed0.json`" for ratio in missing)
    blocks = [
        ("p", (f"At ratio {ratios} this folder holds no retain-only model ({files}): no model that never saw the "
              f"forget people was given with `--reference`. The leaderboard reads how far each cell went from the "
              f"vanilla model *towards* such a model, and only such a model says where that is — a stranger's "
              f"score on every task. Left out at {'that ratio' if len(missing) == 1 else 'those ratios'}:")),
        ("ul", list(LEFT_OUT)),
        ("p", ("The sections above need no reference: the scores and the points each cell moved against the "
               "vanilla model (the forget people's scores should fall, the others' should not). "
               + ("So does the audit: each attack beside the vanilla model's; membership's AUC even has a mark of "
                  "its own — at 0.5 the attack cannot tell the forget people from holdout people no model trained "
                  "on, and far below 0.5 is over-unlearning." if audited else
                  "So would chapter 09's attacks, each beside the vanilla model's: a run with `--audit` records them."))),
        ("p", ("**To add the closure columns**, give a retain-only model: the recipe that made your model, from the "
              "same starting checkpoint, on everyone but the forget people at that ratio. Name a finished cell and "
              "its folder: the anchor is recorded (add `--audit` for its audit) and the cell is read back, not run "
              "again. Then report again:")),
        ("bash", "\n".join(_command(results, ratio) for ratio in missing) + f"\nmini-unlearn report {results.path}"),
        ("p", ("**No retain-only model?** Train one with the package — full fine-tuning by default, `lora=16` "
              "for adapters as MLLMU-Bench does; your recipe's steps and learning rate:")),
        ("python", ("import mini_unlearn as mu\n"
                   "from mini_unlearn.models.cache import retain_only_people\n"
                   "from mini_unlearn.models.train import train_on\n"
                   "from mini_unlearn.release import course_benchmark\n\n"
                   "bench = course_benchmark()        # --bench course; mu.bench.load_mllmu(PATH) for mllmu:PATH\n"
                   f"for ratio in ({', '.join(f'{ratio:g}' for ratio in missing)},):\n"
                   "    model = mu.models.load_vlm(\"BASE_CHECKPOINT\")   # the checkpoint yours was fine-tuned from\n"
                   "    train_on(model, bench, retain_only_people(bench, ratio), steps=..., lr=...)\n"
                   "    model.save_pretrained(f\"retain-only-{ratio:g}\")\n")),
    ]
    return blocks


def _markdown(frame: pd.DataFrame) -> str:
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _inline_html(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"\*(.+?)\*", r"<em>\1</em>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _blocks_markdown(blocks) -> list[str]:
    lines = []
    for kind, content in blocks:
        if kind == "p":
            lines += [content, ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in content] + [""]
        else:
            lines += [f"```{kind}", content.rstrip("\n"), "```", ""]
    return lines


def _blocks_html(blocks) -> list[str]:
    out = []
    for kind, content in blocks:
        if kind == "p":
            out.append(f"<p>{_inline_html(content)}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline_html(item)}</li>" for item in content) + "</ul>")
        else:
            out.append(f"<pre><code>{html.escape(content)}</code></pre>")
    return out


def report_sections(results: Results, goal: str = "forget_both") -> list[tuple[str, list]]:
    """The report's sections, each ``(title, blocks)``: a block is ``("p", text)``, ``("table", frame)``,
    ``("ul", items)`` or ``("bash" | "python", code)``. The leaderboard's sections at the ratios with both
    anchors; the reference-free sections and :func:`reference_note` at the others."""
    if not any(r.setting != REFERENCE for r in results.records):
        raise ValueError(f"{results.path} holds no unlearned cells, only anchors")
    anchored = at_ratios(results, anchored_ratios(results))
    unanchored = [ratio for ratio in sorted({r.ratio for r in results.records}) if ratio not in anchored_ratios(results)]
    free = at_ratios(results, unanchored)
    sections = []
    if any(r.setting != REFERENCE for r in anchored.records):
        sections.append(("Leaderboard", [
            ("p", (f"The target: at least {TARGET['closure']:.0%} of the vanilla → retain-only gap closed on every "
                  f"task in both modalities, at most {TARGET['drop']:g} points lost on retain and utility.")),
            ("table", board_text(anchored, goal))]))
        sections.append(("Best per ratio", [("table", best(anchored, goal).round(3))]))
        verdicts = verdict_table(anchored)
        if not verdicts.empty:
            sections.append(("Audit (chapter 09's verdict)", [("table", verdicts.round(2))]))
    if any(r.setting != REFERENCE for r in free.records):
        where = ", ".join(f"{ratio:g}" for ratio in unanchored)
        sections.append((f"Scores (no reference needed; ratio {where})", [
            ("p", ("Each view's main scores (MCQ and cloze accuracy, generation ROUGE-L), averaged over the tasks, "
                  "in points (×100): the forget people asked with their portrait and by name, the test views of "
                  "their portraits, the retain and the utility people. The vanilla model first.")),
            ("table", scores_text(free))]))
        with_vanilla = at_ratios(free, [ratio for ratio in unanchored
                                        if any(r.method == "vanilla" and r.setting == REFERENCE and r.ratio == ratio
                                               for r in free.records)])
        if any(r.setting != REFERENCE for r in with_vanilla.records):
            sections.append(("Changes against the vanilla model", [
                ("p", ("The points each view fell against the vanilla model, mean ± std over the seeds: the forget "
                      "people's should fall, the retain and utility people's should not. *Weakest forget task*: "
                      "the task × modality that fell least (the goal asks for every one).")),
                ("table", changes_text(with_vanilla))]))
            for ratio, table in audit_text(with_vanilla).items():
                sections.append((f"Audit against the vanilla model (ratio {ratio:g})", [
                    ("p", ("Every attack of chapter 09 reads one model, so none needs a reference: each value beside "
                          "the vanilla model's; *direction* is the way forgetting moves it. Membership's AUC: at 0.5 "
                          "the attack cannot tell the forget people from holdout people no model trained on; far "
                          "below, they look less familiar than strangers (over-unlearning).")),
                    ("table", table)]))
        missing_vanilla = [ratio for ratio in unanchored if ratio not in {r.ratio for r in with_vanilla.records}]
        note = reference_note(results)
        if missing_vanilla:
            note.append(("p", (f"At ratio {', '.join(f'{r:g}' for r in missing_vanilla)} there is no vanilla record "
                              f"either, so only the scores are shown: `mini-unlearn run` and `compare` record it.")))
        sections.append(("Left out: what needs a reference", note))
    return sections


def write_report(results: Results, out: str | Path, goal: str = "forget_both") -> list[Path]:
    """Write ``report.md``, ``report.html`` and one ``pareto-<ratio>.png`` per ratio with both anchors under
    ``out`` (:func:`report_sections` says what goes in)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = report_sections(results, goal)
    anchored = at_ratios(results, anchored_ratios(results))
    figures = []
    if any(r.setting != REFERENCE for r in anchored.records):
        for ratio in sorted(cell_table(anchored, goal)["ratio"].unique()):
            figure = pareto_plot(anchored, ratio, goal)
            path = out / f"pareto-{ratio:g}.png"
            figure.savefig(path, dpi=110)
            figures.append(path)
    title = f"{results.identity['model']['name']} on {results.identity['benchmark']['name']}"
    md, body = [f"# {title}", ""], [f"<h1>{html.escape(title)}</h1>"]
    for heading, blocks in sections:
        md += [f"## {heading}", ""]
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for kind, content in blocks:
            if kind == "table":
                md += [_markdown(content), ""]
                body.append(content.to_html(index=False, escape=True))
            else:
                md += _blocks_markdown([(kind, content)])
                body += _blocks_html([(kind, content)])
    md += [f"![Pareto at ratio {p.stem.split('-', 1)[1]}]({p.name})" for p in figures]
    body += [f'<img src="{p.name}" alt="Pareto plot {p.stem}" style="max-width:100%">' for p in figures]
    (out / "report.md").write_text("\n".join(md).rstrip("\n") + "\n")
    (out / "report.html").write_text("<!doctype html><html><head><meta charset='utf-8'><title>mini_unlearn report"
                                     "</title></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    return [out / "report.md", out / "report.html", *figures]


__all__ = ["audit_text", "board_text", "changes_text", "reference_note", "report_sections", "scores_text",
           "write_report"]
