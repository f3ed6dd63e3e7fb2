"""A live control over MMUnlearner's saliency threshold: cut the mask anywhere, see how much is salient (chapter 06).

:func:`saliency_control` returns a :class:`~.live.LiveControl`. Each press cuts a mask's stored saliencies at
the slider's threshold (:meth:`mini_unlearn.neurons.SaliencyMask.with_threshold`; no gradient is recomputed)
and draws the share of each group's weights that are salient (:func:`mini_unlearn.neurons.salient_shares`).
Chapter 06 draws the same shares over a few thresholds as a static figure for the book.
"""
from __future__ import annotations

from ...neurons.saliency import THRESHOLD, SaliencyMask, require_threshold, salient_shares
from .live import LiveControl


def saliency_control(mask: SaliencyMask, threshold: float = THRESHOLD) -> LiveControl:
    """A threshold slider (log scale, 0.1 to 30) whose button cuts ``mask``'s saliencies at that threshold
    and draws the share of each group's weights that are salient (:func:`~mini_unlearn.neurons.salient_shares`),
    as bars."""
    import ipywidgets

    require_threshold(threshold)
    if mask.forget is None or mask.preserve is None:
        raise ValueError("this mask was built without its saliencies (forget/preserve): recompute it")

    def draw(shares, values):
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(figsize=(5.5, 3.2))
        colours = {"vision": "tab:orange", "language": "tab:blue"}
        bars = ax.bar(shares.index, shares.values, color=[colours.get(group, "tab:grey") for group in shares.index])
        ax.bar_label(bars, labels=[f"{v:.1%}" for v in shares.values])
        ax.set(ylim=(0, 1), ylabel="share of the weights salient",
               title=f"{mask.preset} mask at threshold {values['threshold']:.3g}")
        plt.show()

    slider = ipywidgets.FloatLogSlider(value=threshold, base=10, min=-1, max=1.5, step=0.05, description="threshold")
    return LiveControl(lambda threshold: salient_shares(mask, threshold), draw=draw, button="cut the mask",
                       note=f"A live control (it runs in Jupyter with a kernel): cut the {mask.preset} mask's "
                            f"saliencies at any threshold and see the share of each group's weights that are salient. "
                            f"The book shows the same sweep as a static figure.",
                       threshold=slider)


__all__ = ["saliency_control"]
