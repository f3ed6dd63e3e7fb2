"""``mini-unlearn report``: a results folder as Markdown, HTML and PNG figures (chapter 10's tables).

    write_report(mu.results.load("results/"), "results/report")   # report.md, report.html, pareto-*.png
"""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from .leaderboard import best, cell_table, leaderboard, mean_spread, pareto_plot, verdict_table
from .records import Results
from .scoring import TARGET


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


def _markdown(frame: pd.DataFrame) -> str:
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def write_report(results: Results, out: str | Path, goal: str = "forget_both") -> list[Path]:
    """Write ``report.md``, ``report.html`` and one ``pareto-<ratio>.png`` per ratio under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    board = board_text(results, goal)
    winners = best(results, goal)
    verdicts = verdict_table(results)
    written, figures = [], []
    for ratio in sorted(cell_table(results, goal)["ratio"].unique()):
        figure = pareto_plot(results, ratio, goal)
        path = out / f"pareto-{ratio:g}.png"
        figure.savefig(path, dpi=110)
        figures.append(path)
    target = (f"the target: at least {TARGET['closure']:.0%} of the vanilla → retain-only gap closed on every task "
              f"in both modalities, at most {TARGET['drop']:g} points lost on retain and utility")
    sections = [("Leaderboard", board), ("Best per ratio", winners.round(3))]
    if not verdicts.empty:
        sections.append(("Audit (chapter 09's verdict)", verdicts.round(2)))
    md = [f"# {results.identity['model']['name']} on {results.identity['benchmark']['name']}", "", target, ""]
    for title, frame in sections:
        md += [f"## {title}", "", _markdown(frame), ""]
    md += [f"![Pareto at ratio {p.stem.split('-', 1)[1]}]({p.name})" for p in figures]
    (out / "report.md").write_text("\n".join(md) + "\n")
    body = [f"<h1>{html.escape(md[0][2:])}</h1>", f"<p>{html.escape(target)}</p>"]
    for title, frame in sections:
        body += [f"<h2>{html.escape(title)}</h2>", frame.to_html(index=False, escape=True)]
    body += [f'<img src="{p.name}" alt="Pareto plot {p.stem}" style="max-width:100%">' for p in figures]
    (out / "report.html").write_text("<!doctype html><html><head><meta charset='utf-8'><title>mini_unlearn report"
                                     "</title></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    written += [out / "report.md", out / "report.html", *figures]
    return written


__all__ = ["board_text", "write_report"]
