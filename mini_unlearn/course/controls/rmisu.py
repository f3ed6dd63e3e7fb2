"""A live control over MIP-Editor's edit: RMisU's target scale λ and its number of steps (chapter 08).

:func:`rmisu_control` returns a :class:`~.live.LiveControl`. The neuron paths are found once, when the control
is built; each press edits a copy of the model along them through the method's registered ``run`` (the
``mip_editor`` entry of :func:`mini_unlearn.methods.get`, as :func:`mini_unlearn.unlearn` runs it) and probes
the forget and retain people's cloze answers as it goes. :func:`plot_rmisu_run` draws one press; chapter 08
draws a few λ with it as a static figure for the book.
"""
from __future__ import annotations

import pandas as pd

from ...methods.base import get, make_config
from ...methods.monitor import split_monitor
from .live import LiveControl

PROBES: tuple[str, ...] = ("forget/image+text", "forget/text", "retain/image+text", "retain/text")


def rmisu_control(vlm, bench, ratio: float = 0.05, *, lam: float = 5.0, steps: int = 60, probe_every: int = 10,
                  retain_people: int = 10, **options) -> LiveControl:
    """A :class:`~.live.LiveControl` over RMisU's target scale ``lam`` (λ) and its ``steps``.

    The paths are found once, when the control is built (λ and the steps do not change them). Each press
    edits a copy of ``vlm`` along them — MIP-Editor at its defaults, or at ``options`` (fixed
    :class:`~mini_unlearn.methods.MIPEditorConfig` fields) — and probes the forget and retain people's cloze
    answers by portrait and by name every ``probe_every`` steps (:func:`~mini_unlearn.methods.split_monitor`,
    the first ``retain_people`` retain people). ``vlm`` itself is never modified.

    ``measure(lam, steps)`` returns ``{"probes": step × probe, "losses": step × loss term}``; one press
    of 60 steps takes about 5 s on 2 CPU cores for the course model."""
    import ipywidgets as widgets

    if options.get("edit", "rmisu") != "rmisu":
        raise ValueError(f"rmisu_control drives RMisU's λ and steps; edit={options['edit']!r} has neither")
    method = get("mip_editor")
    context = method.prepare(vlm, bench, ratio, make_config("mip_editor", **options), progress=False)
    monitor = split_monitor(vlm, bench, ratio, retain_people=retain_people)

    def measure(lam: float, steps: int) -> dict:
        config = make_config("mip_editor", **{**options, "lam": lam, "steps": steps})
        edited = vlm.copy()
        log = method.run(edited, bench, ratio, config, original=vlm, progress=False, monitor=monitor,
                         probe_every=probe_every, **context)
        losses = pd.DataFrame(log.losses, index=pd.RangeIndex(1, len(log.losses) + 1, name="step"))
        return {"probes": log.probe_frame()[list(PROBES)], "losses": losses}

    def draw(result: dict, values: dict) -> None:
        import matplotlib.pyplot as plt
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        plot_rmisu_run(result, axes, title=f"λ = {values['lam']:g}, {values['steps']} steps")
        plt.show()

    return LiveControl(
        measure, draw=draw, button="edit along the paths",
        note=(f"Live control: RMisU's target scale λ and its number of steps; each press edits\n"
              f"a copy of the model along the paths and draws the forget and retain people's\n"
              f"cloze answers every {probe_every} steps. It runs in Jupyter with a kernel; the\n"
              f"figure above is the same sweep."),
        lam=widgets.FloatSlider(value=lam, min=0.5, max=15.0, step=0.5, description="λ"),
        steps=widgets.IntSlider(value=steps, min=5, max=120, step=5, description="steps"))


def plot_rmisu_run(result: dict, axes, title: str | None = None, legend: bool = True) -> None:
    """Draw one :func:`rmisu_control` measurement on two axes: the cloze exact match of the forget and
    retain people (by portrait: solid; by name: dashed) per step, and the loss terms per step (log scale)."""
    probes, losses = result["probes"], result["losses"]
    for name in PROBES:
        split, modality = name.split("/")
        axes[0].plot(probes.index, probes[name], marker="o", markersize=3,
                     color="tab:red" if split == "forget" else "tab:blue",
                     ls="-" if modality == "image+text" else "--", label=f"{split}, {modality}")
    axes[0].set(xlabel="step", ylabel="cloze exact match", ylim=(-0.05, 1.05), title=title)
    for term, colour in (("forget_mse", "tab:red"), ("retain_mse", "tab:blue"), ("retain_ce", "tab:grey")):
        axes[1].plot(losses.index, losses[term], color=colour, label=term)
    axes[1].set(xlabel="step", ylabel="loss term", yscale="log")
    if legend:
        axes[0].legend(fontsize=8)
        axes[1].legend(fontsize=8)


__all__ = ["PROBES", "plot_rmisu_run", "rmisu_control"]
