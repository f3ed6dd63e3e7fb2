"""Chapter 05 · MANU: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, compare, slips
from .plug import plugs_into

__all__ = ["check_importance_rms", "check_paper_score", "check_paper_selection", "check_select_per_tower"]


# -- 5.1 the RMS importance -------------------------------------------------------------------------

def _rms_cases() -> list[Case]:
    """Per-sample activations of the two views: random, one view silent, identical views."""
    import torch
    generator = torch.Generator().manual_seed(13)
    cases = []
    for samples, neurons in ((4, 3), (9, 6), (2, 5)):
        multi = torch.randn(samples, neurons, generator=generator)
        text = torch.randn(samples, neurons, generator=generator) * 0.5
        cases.append((f"{samples} samples x {neurons} neurons, eps=1e-6", (multi, text, 1e-6)))
    multi, text = torch.randn(7, 4, generator=generator), torch.randn(6, 4, generator=generator)
    cases.append(("7 multimodal samples against 6 text-only ones (per sample, not raw sums), eps=1e-6",
                  (multi, text, 1e-6)))
    multi = torch.randn(5, 4, generator=generator)
    cases.append(("a silent text-only view (a vision neuron), eps=1e-6", (multi, torch.zeros(5, 4), 1e-6)))
    cases.append(("identical views, eps=0.01", (multi, multi.clone(), 0.01)))
    return cases


def _rms_no_sqrt(z_multi, z_text, eps):
    multi, text = (z_multi.double() ** 2).mean(dim=0), (z_text.double() ** 2).mean(dim=0)
    return (multi - text).abs() / (multi + text + eps)


def _rms_no_abs(z_multi, z_text, eps):
    multi, text = (z_multi.double() ** 2).mean(dim=0), (z_text.double() ** 2).mean(dim=0)
    return ((multi - text) / (multi + text + eps)).sqrt()


def _rms_raw_sums(z_multi, z_text, eps):
    multi, text = (z_multi.double() ** 2).sum(dim=0), (z_text.double() ** 2).sum(dim=0)
    return ((multi - text).abs() / (multi + text + eps)).sqrt()


@slips(Slip(_rms_no_sqrt, "the square root is missing: I_rms is sqrt(|q_multi − q_text| / (q_multi + q_text + ε))"),
       Slip(_rms_no_abs, "the |·| around the difference is missing: where the text-only view has more energy the "
                         "ratio is negative and its square root NaN"),
       Slip(_rms_raw_sums, "raw sums ΣZ² where a mean belongs: divide each view's sum by ITS number of samples "
                           "(7 multimodal, 6 text-only here), or a neuron that behaves the same in both views "
                           "scores above 0 from the counts alone"))
def check_importance_rms(fn: Callable) -> None:
    """Chapter 05: ``fn(z_multi, z_text, eps)`` → MANU's I_rms per neuron, from stored activations."""
    from ...models.anatomy import NeuronSite
    from ...neurons.activations import NeuronStats
    from ...neurons.importance import importance_rms

    def reference(z_multi, z_text, eps):
        site = NeuronSite("language", 0, "exercise", z_multi.shape[1], ())
        stats = [NeuronStats(site), NeuronStats(site)]
        stats[0].add(z_multi)
        stats[1].add(z_text)
        return importance_rms(*stats, eps=eps)

    compare("importance_rms", fn, reference, _rms_cases(), atol=1e-6, slips=check_importance_rms.slips)


# -- 5.2 the score: a ratio of sums -------------------------------------------------------------------

def _score_cases() -> list[Case]:
    """The four importance functions of the forget and of the retain set: random, bounded ones in [0, 1]
    and I_var unbounded; a neuron silent on the retain people; several ε."""
    import torch
    generator = torch.Generator().manual_seed(17)

    def parts(neurons, scale=1.0):
        return {m: torch.rand(neurons, generator=generator, dtype=torch.float64) * (3 * scale if m == "var" else scale)
                for m in ("abs", "freq", "var", "rms")}

    cases = [("4 neurons, eps=1e-6", (parts(4), parts(4), 1e-6)),
             ("6 neurons, retain importance small, eps=1e-6", (parts(6), parts(6, 0.1), 1e-6))]
    retain = parts(3)
    retain = {m: torch.cat([v[:2], torch.zeros(1, dtype=torch.float64)]) for m, v in retain.items()}
    cases.append(("3 neurons, the last silent on the retain people, eps=0.01", (parts(3), retain, 0.01)))
    return cases


def _score_reversed(forget, retain, eps):
    return sum(retain[m] for m in ("abs", "freq", "var", "rms")) / (sum(forget[m] for m in ("abs", "freq", "var", "rms")) + eps)


def _score_sum_of_ratios(forget, retain, eps):
    return sum(forget[m] / (retain[m] + eps) for m in ("abs", "freq", "var", "rms"))


@slips(Slip(_score_reversed, "the ratio is upside down: S must be LARGE for a neuron important on the forget "
                             "people and not on the retain people, so I(D_f) is the numerator"),
       Slip(_score_sum_of_ratios, "a sum of per-function ratios is the released code's form (released_score); "
                                  "the paper divides the sums: (Σ_m I_m(D_f)) / (Σ_m I_m(D_r) + ε)"))
def check_paper_score(fn: Callable) -> None:
    """Chapter 05: ``fn(forget, retain, eps)`` → ``(Σ_m forget[m]) / (Σ_m retain[m] + ε)`` per neuron, over the
    four functions m ∈ {abs, freq, var, rms} (each a tensor of one value per neuron)."""
    from ...neurons.importance import paper_score

    compare("paper_score", fn, paper_score, _score_cases(), atol=1e-6, slips=check_paper_score.slips)


# -- 5.3 the top α of each tower ------------------------------------------------------------------------

def _selection_cases() -> list[Case]:
    """Two towers on different scales, widths whose α·N falls between two integers; a site that never ran (NaN)."""
    import torch
    generator = torch.Generator().manual_seed(19)
    towers = {"vision.0": "vision", "vision.1": "vision", "language.0": "language", "language.1": "language"}

    def scores(widths, scales):
        return {name: torch.rand(width, generator=generator) * scale
                for (name, width), scale in zip(widths.items(), scales)}

    widths = {"vision.0": 8, "vision.1": 8, "language.0": 12, "language.1": 12}
    cases = [("two towers of 16 and 24 neurons, the language scores 10x larger, alpha=0.1",
              (scores(widths, (1, 1, 10, 10)), 0.1, towers)),
             ("the same widths, alpha=0.02 (fewer than one neuron: at least one per tower)",
              (scores(widths, (1, 1, 10, 10)), 0.02, towers)),
             ("towers of 14 and 22 neurons, on the same scale, alpha=0.25",
              (scores({"vision.0": 10, "vision.1": 4, "language.0": 6, "language.1": 16}, (1, 1, 1, 1)), 0.25, towers))]
    nan_site = scores({"vision.0": 6, "vision.1": 6, "language.0": 10, "language.1": 10}, (2, 2, 1, 1))
    nan_site["vision.1"] = torch.full((6,), float("nan"))
    cases.append(("a vision site that never ran (NaN scores), alpha=0.3", (nan_site, 0.3, towers)))
    return cases


def _as_lists(f: Callable) -> Callable:
    """Run on copies (a function may edit its input) and compare each site's indices as a list."""
    def selection(scores, alpha, towers):
        chosen = f({name: s.clone() for name, s in scores.items()}, alpha, dict(towers))
        return {name: [int(i) for i in index] for name, index in chosen.items()}
    return selection


def _per_tower(scores, alpha, towers, count, nan_last=True):
    """The top ``count(α, N)`` of each tower (a slip's skeleton: ``count`` and the NaN rule vary)."""
    import math

    import torch
    selection = {}
    for tower in dict.fromkeys(towers[name] for name in scores):
        names = [name for name in scores if towers[name] == tower]
        flat = torch.cat([scores[name].double() for name in names])
        ranked = torch.nan_to_num(flat, nan=-math.inf) if nan_last else flat
        order = torch.sort(ranked, descending=True, stable=True).indices[:count(alpha, flat.numel())]
        if nan_last:
            order = order[~flat[order].isnan()]
        start = 0
        for name in names:
            width = scores[name].numel()
            selection[name] = (order[(order >= start) & (order < start + width)] - start).sort().values
            start += width
    return selection


def _select_floor(scores, alpha, towers):
    return _per_tower(scores, alpha, towers, lambda a, n: max(1, int(a * n)))


def _select_nan_first(scores, alpha, towers):
    return _per_tower(scores, alpha, towers, lambda a, n: max(1, round(a * n)), nan_last=False)


def _select_global(scores, alpha, towers):
    from ...neurons.edit import select_top
    return select_top(scores, alpha, "global")


def _select_per_layer(scores, alpha, towers):
    from ...neurons.edit import select_top
    return select_top(scores, alpha, "per_layer")


@slips(Slip(_select_global, "one ranking over both towers: the towers' scores are on different scales, so the "
                            "top α must be taken within each tower (group the sites by towers[site])"),
       Slip(_select_per_layer, "the top α of each layer (each site), not of each tower: rank all of a tower's "
                               "neurons together, whichever layer they are in"),
       Slip(_select_floor, "the count is rounded down: the top α of N neurons is round(α·N) (at least 1), "
                           "e.g. 2 of 16 at α = 0.1, not int(α·N) = 1 (the released code floors, with ties: "
                           "that is select_released, the 'released' variant's rule)"),
       Slip(_select_nan_first, "NaN scores were picked: torch.sort and torch.topk rank NaN above every number, "
                               "so put them last (torch.nan_to_num(s, nan=-inf)) and never select one"))
def check_select_per_tower(fn: Callable) -> None:
    """Chapter 05: ``fn(scores, alpha, towers)`` → per site, the sorted indices of its neurons among the top
    ``max(1, round(α·N))`` of its tower (N: all the tower's neurons); NaN scores never chosen."""
    from ...neurons.edit import select_top

    def reference(scores, alpha, towers):
        return select_top(scores, alpha, "per_tower", towers)

    compare("select_per_tower", fn, reference, _selection_cases(), slips=check_select_per_tower.slips,
            adapt=_as_lists)


# -- 5.4 MANU end to end: from the statistics to the neurons to prune ----------------------------------------

def _selection_stats_cases() -> list[Case]:
    """Statistics of two vision and two language sites, as :func:`~mini_unlearn.methods.manu_statistics`
    gives them (the vision sites' text-only view never ran), forget and retain sets of different sizes;
    one case with the language tower alone (``towers=("language",)``)."""
    import torch

    from ...models.anatomy import NeuronSite
    from ...neurons.activations import NeuronStats
    generator = torch.Generator().manual_seed(23)

    def sites(widths):
        return [NeuronSite(tower, layer, f"{tower}.{layer}", width, ())
                for (tower, layer), width in widths.items()]

    def recorded(site, samples, scale, shift=0.0):
        stats = NeuronStats(site)
        if samples:
            stats.add(torch.randn(samples, site.width, generator=generator) * scale + shift)
        return stats

    def statistics(chosen, vision_spread=1.0):
        stats = {}
        for people, (n_multi, n_text) in (("forget", (7, 6)), ("retain", (14, 12))):
            spread = vision_spread if people == "forget" else 1.0
            stats[people] = {
                "image+text": {s.name: recorded(s, n_multi, spread if s.tower == "vision" else 1.0, 0.2)
                               for s in chosen},
                "text": {s.name: recorded(s, 0 if s.tower == "vision" else n_text, 0.5) for s in chosen}}
        return stats

    both = sites({("vision", 0): 5, ("vision", 1): 5, ("language", 0): 8, ("language", 1): 8})
    towers = {s.name: s.tower for s in both}
    cases = [("two vision sites of 5 neurons, two language sites of 8, alpha=0.2, eps=1e-6",
              (statistics(both), 0.2, towers, 1e-6)),
             ("the same sites, the forget portraits spread 3x wider, alpha=0.05 (one per tower), eps=1e-6",
              (statistics(both, 3.0), 0.05, towers, 1e-6)),
             ("the language tower alone (the vision sites not scored), alpha=0.25, eps=0.01",
              (statistics(both[2:]), 0.25, towers, 0.01))]
    return cases


def _rounded(f: Callable) -> Callable:
    """Compare the scores to 9 decimals and the chosen indices as lists."""
    def run(stats, alpha, towers, eps):
        scores, selection = f(stats, alpha, dict(towers), eps)
        return ({name: [round(float(v), 9) for v in s] for name, s in scores.items()},
                {name: [int(i) for i in index] for name, index in selection.items()})
    return run


def _four(multi, text, eps):
    from ...neurons.importance import importance_abs, importance_freq, importance_rms, importance_var
    return {"abs": importance_abs(multi, text, eps), "freq": importance_freq(multi, text, eps),
            "var": importance_var(multi, text), "rms": importance_rms(multi, text, eps)}


def _selection_with(score: Callable, scope: str = "per_tower") -> Callable:
    """A slip's skeleton: ``score(f_multi, f_text, r_multi, r_text, tower, eps)`` per site, then select_top."""
    def selection(stats, alpha, towers, eps):
        from ...neurons.edit import select_top
        forget, retain = stats["forget"], stats["retain"]
        scores = {name: score(forget["image+text"][name], forget["text"][name], retain["image+text"][name],
                              retain["text"][name], towers[name], eps) for name in forget["image+text"]}
        return scores, select_top(scores, alpha, scope, towers)
    return selection


def _paper(f_multi, f_text, r_multi, r_text, tower, eps):
    from ...neurons.importance import paper_score, vision_score
    if tower == "vision":
        return vision_score(f_multi, r_multi, eps)
    return paper_score(_four(f_multi, f_text, eps), _four(r_multi, r_text, eps), eps)


def _literal_vision(f_multi, f_text, r_multi, r_text, tower, eps):
    from ...neurons.importance import paper_score
    return paper_score(_four(f_multi, f_text, eps), _four(r_multi, r_text, eps), eps)


def _sum_of_ratios(f_multi, f_text, r_multi, r_text, tower, eps):
    from ...neurons.importance import METRICS, vision_score
    if tower == "vision":
        return vision_score(f_multi, r_multi, eps)
    forget, retain = _four(f_multi, f_text, eps), _four(r_multi, r_text, eps)
    return sum(forget[m] / (retain[m] + eps) for m in METRICS)


def _sets_not_views(f_multi, f_text, r_multi, r_text, tower, eps):
    from ...neurons.importance import paper_score, vision_score
    if tower == "vision":
        return vision_score(f_multi, r_multi, eps)
    return paper_score(_four(f_multi, r_multi, eps), _four(f_text, r_text, eps), eps)


@plugs_into("mini_unlearn.methods.manu:paper_selection")
@slips(Slip(_selection_with(_literal_vision), "the vision neurons were scored with the four functions: their "
                                              "text-only view never ran (all zero), so I_abs = I_freq = I_rms = 1 "
                                              "for every active one; a vision neuron's score is the spread ratio "
                                              "σ(D_f) / (σ(D_r) + ε) (mu.neurons.vision_score)"),
       Slip(_selection_with(_sum_of_ratios), "a sum of per-function ratios is the released code's form; the "
                                             "paper divides the sums: (Σ_m I_m(D_f)) / (Σ_m I_m(D_r) + ε)"),
       Slip(_selection_with(_sets_not_views), "each importance function compares the two VIEWS of one set "
                                              "(image+text against text-only, the forget people's, then the "
                                              "retain people's), not the forget set against the retain set"),
       Slip(_selection_with(_paper, "global"), "one ranking over both towers (select_top's default scope is "
                                               "'global'): take the top α within each tower, "
                                               "select_top(scores, alpha, 'per_tower', towers)"))
def check_paper_selection(fn: Callable) -> None:
    """Chapter 05: ``fn(stats, alpha, towers, eps)`` → ``(scores, selection)``: per site of ``stats`` the
    paper's score of every neuron (language: the ratio of the sums of the four importance functions of
    the two views; vision: the spread ratio) and the indices of the top ``round(α·N)`` of each tower."""
    from ...methods.manu import paper_selection

    compare("paper_selection", fn, paper_selection, _selection_stats_cases(), slips=check_paper_selection.slips,
            adapt=_rounded)
