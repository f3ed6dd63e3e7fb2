"""Live controls: sliders and menus that rerun one of a chapter's measurements (chapters 05, 06, 08).

* :mod:`.live` — :class:`LiveControl`, the panel every control is, and :func:`drop_widget_views`;
* :mod:`.pruning` — :func:`pruning_control`, MANU's α and scores: prune, measure, undo (chapter 05);
* :mod:`.saliency` — :func:`saliency_control`, MMUnlearner's saliency threshold (chapter 06);
* :mod:`.rmisu` — :func:`rmisu_control`, MIP-Editor's λ and steps, and :func:`plot_rmisu_run` (chapter 08).

The chapters call them as ``mu.controls.pruning_control(...)`` and so on.
"""
from . import live, pruning, rmisu, saliency
from .live import WIDGET_VIEW, LiveControl, drop_widget_views
from .pruning import pruning_control
from .rmisu import PROBES, plot_rmisu_run, rmisu_control
from .saliency import saliency_control

__all__ = ["PROBES", "WIDGET_VIEW", "LiveControl", "drop_widget_views", "live", "plot_rmisu_run", "pruning",
           "pruning_control", "rmisu", "rmisu_control", "saliency", "saliency_control"]
