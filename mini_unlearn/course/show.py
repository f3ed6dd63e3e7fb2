"""Show the package's real code in a notebook, as plain text that nbval compares — and draw each
method's pipeline as a schematic (chapters 05–08 show it before their formulas)."""

import inspect
import textwrap


def show_source(obj, collapsed=False):
    """Print the source of a function, class or module of the package.

    Notebooks call `mu.show_source(mu.bench.make_benchmark)` instead of carrying a copy of the
    code, so what a chapter shows is what the package runs, and a stale output fails nbval.

    ``collapsed=True`` is for a source that is an exercise's answer: in Jupyter (and in the book) it
    shows closed, behind a "mini_unlearn's answer" line the reader clicks to open, so the answer is
    not the next thing a learner reads; its plain-text form, which nbval compares, is the source.
    """
    source = textwrap.dedent(inspect.getsource(obj)).rstrip("\n")
    if not collapsed:
        print(source)
        return
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:          # plain Python: nothing to click
        print(source)
        return
    if get_ipython() is None:
        print(source)
        return
    display(Collapsed(source, f"mini_unlearn's answer: {getattr(obj, '__qualname__', obj)}"))


class Collapsed:
    """Text shown closed behind a summary line: an HTML ``<details>`` block, and the text as plain text."""

    def __init__(self, text: str, summary: str):
        self.text, self.summary = text, summary

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        import html
        return (f"<details><summary>{html.escape(self.summary)} (click to open)</summary>"
                f"<pre>{html.escape(self.text)}</pre></details>")


# ---------------------------------------------------------------------------------------------------
# Method pipelines, as flow diagrams

# One colour per part of the model and per data set, the same in every figure: (edge, fill).
COLOURS: dict[str, tuple[str, str]] = {
    "vision": ("#d9822b", "#fbe3c8"),       # the CLIP vision tower
    "projector": ("#8e5ea2", "#eadcf0"),    # the projector
    "language": ("#3f8f4f", "#d5ecd9"),     # the Llama language model
    "forget": ("#c0392b", "#f7d4d0"),       # forget data
    "retain": ("#2e6da4", "#d3e3f3"),       # retain (or preserve) data
    "step": ("#666666", "#f0f0f0"),         # a computation
    "group": ("#888888", "none"),           # a dashed frame around boxes that belong together
}
LEGEND: dict[str, str] = {"vision": "vision tower", "projector": "projector", "language": "language model",
                          "forget": "forget data", "retain": "retain data"}
WIDTH, HEIGHT = 10.0, 3.5        # the drawing's coordinates are inches of the default figure

# One spec per method: a title, boxes {key: (x, y, w, h, kind, label)} with (x, y) the lower-left
# corner, arrows (from, to[, label]) from a box's right edge to another's left edge, and a note. A
# "neurons <tower>" box draws four layers of neurons with one path through them.
PIPELINES: dict[str, dict] = {
    "manu": {
        "title": "MANU (ch. 05): prune the neurons specific to the forget people",
        "boxes": {
            "forget": (0.1, 1.95, 1.75, 0.8, "forget", "forget people\nportrait + question\nand name only"),
            "retain": (0.1, 0.75, 1.75, 0.8, "retain", "retain people\nportrait + question\nand name only"),
            "forward": (2.2, 1.35, 1.35, 0.8, "step", "forward passes\nonly: read the\nMLP activations"),
            "vision": (3.9, 1.95, 2.0, 0.8, "vision", "vision MLP neurons\nspread σ over\nthe portraits"),
            "language": (3.9, 0.75, 2.0, 0.8, "language", "language MLP neurons\nabs · freq · var · rms:\nportrait vs name"),
            "score": (6.25, 1.35, 1.55, 0.8, "step", "score per neuron\nS = I(forget) /\n(I(retain) + ε)"),
            "prune_v": (8.15, 1.95, 1.75, 0.8, "vision", "prune top α\nvision neurons\n(zero them)"),
            "prune_l": (8.15, 0.75, 1.75, 0.8, "language", "prune top α\nlanguage neurons\n(zero them)"),
        },
        "arrows": [("forget", "forward"), ("retain", "forward"), ("forward", "vision"), ("forward", "language"),
                   ("vision", "score"), ("language", "score"), ("score", "prune_v"), ("score", "prune_l")],
        "note": "no gradient, no training: α (2%) of each tower's neurons are switched off",
    },
    "mmunlearner": {
        "title": "MMUnlearner (ch. 06): gradient ascent masked by weight saliency",
        "boxes": {
            "forget": (0.1, 1.95, 1.7, 0.8, "forget", "forget people\nportrait + question"),
            "retain": (0.1, 0.75, 1.7, 0.8, "retain", "preserve: retain\nportrait + question,\neveryone by name"),
            "grads": (2.1, 1.35, 1.5, 0.8, "step", "squared gradients\nF_f, F_p of\nevery weight"),
            "saliency": (3.9, 1.35, 1.4, 0.8, "step", "saliency\nF_f / F_p ≥ 1\n(salient)"),
            "mask": (5.55, 0.55, 1.8, 2.35, "group", "mask of salient\nweights in the"),
            "vision": (5.65, 1.85, 1.6, 0.45, "vision", "vision tower"),
            "projector": (5.65, 1.25, 1.6, 0.45, "projector", "projector"),
            "language": (5.65, 0.65, 1.6, 0.45, "language", "language model"),
            "ascent": (7.65, 1.95, 2.25, 0.8, "forget", "gradient ascent on\nforget, × mask"),
            "descent": (7.65, 0.75, 2.25, 0.8, "retain", "gradient descent on\nretain, × mask"),
        },
        "arrows": [("forget", "grads"), ("retain", "grads"), ("grads", "saliency"), ("saliency", "mask"),
                   ("mask", "ascent"), ("mask", "descent")],
        "note": "interleaved steps: only the salient weights move (about 1% on the course model)",
    },
    "neuron_paths": {
        "title": "IGI / IFI paths (ch. 07): integrated gradients, a greedy path layer by layer",
        "boxes": {
            "image": (0.1, 1.9, 1.75, 0.8, "forget", "forget people\nportrait + question"),
            "text": (0.1, 0.7, 1.75, 0.8, "forget", "forget people\nname only (text)"),
            "ifi_ig": (2.15, 1.9, 1.9, 0.8, "step", "IG of log p(answer),\nsquared gradients,\nevery image token"),
            "igi_ig": (2.15, 0.7, 1.9, 0.8, "step", "IG of log p(answer),\ngradients, answer\npositions"),
            "ifi_layers": (4.35, 1.9, 2.6, 0.8, "neurons vision", "vision MLP layers"),
            "igi_layers": (4.35, 0.7, 2.6, 0.8, "neurons language", "language MLP layers"),
            "ifi": (7.25, 1.9, 2.65, 0.8, "vision", "IFI path: top k = 5\nvision neurons per layer"),
            "igi": (7.25, 0.7, 2.65, 0.8, "language", "IGI path: top k = 5\nlanguage neurons per layer"),
        },
        "arrows": [("image", "ifi_ig"), ("text", "igi_ig"), ("ifi_ig", "ifi_layers"), ("igi_ig", "igi_layers"),
                   ("ifi_layers", "ifi"), ("igi_layers", "igi")],
        "note": "layer n's top k are scored given the path in layers < n (m = 8 steps); united over samples",
    },
    "mip_editor": {
        "title": "MIP-Editor (ch. 08): RMisU along the neuron paths",
        "boxes": {
            "ifi": (0.1, 2.3, 1.8, 0.55, "vision", "IFI path\n(vision, ch. 07)"),
            "igi": (0.1, 1.65, 1.8, 0.55, "language", "IGI path\n(language, ch. 07)"),
            "rows": (2.3, 1.8, 3.0, 0.9, "step", "rows of the path neurons:\nfc1 (vision tower),\ngate_proj / up_proj (language)"),
            "forget": (0.1, 0.95, 1.8, 0.55, "forget", "forget people\nportrait / name"),
            "retain": (0.1, 0.3, 1.8, 0.55, "retain", "retain people\nportrait + question"),
            "misdirect": (2.3, 0.95, 3.0, 0.55, "forget", "forget: h at layer ℓ → λ·‖h₀‖·u\n(u a random direction, λ = 5)"),
            "keep": (2.3, 0.3, 3.0, 0.55, "retain", "retain: keep h = h₀ (frozen model)\n+ CE on the answers"),
            "update": (7.2, 1.1, 2.7, 0.9, "step", "RMisU updates only\nthe path rows\n(gradient × row mask)"),
        },
        "arrows": [("ifi", "rows"), ("igi", "rows"), ("rows", "update", "row mask"), ("forget", "misdirect"),
                   ("retain", "keep"), ("misdirect", "update"), ("keep", "update")],
        "note": "every weight off the paths stays bit-identical",
    },
}


def _box(ax, x, y, w, h, kind, label):
    """One box of a pipeline: a rounded rectangle in ``kind``'s colours with a centred label (a "group" is a
    dashed frame with its label at the top, inside; "neurons <tower>" draws layers of neurons with one path through them)."""
    from matplotlib.patches import Circle, FancyBboxPatch

    part = kind.split()[-1]
    edge, fill = COLOURS[part]
    dashed = kind == "group"
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.08", linewidth=1.4,
                                edgecolor=edge, facecolor=fill, linestyle="--" if dashed else "-"))
    if kind.startswith("neurons"):
        rows, path = 4, (1, 3, 0, 2)        # four layers, a fixed path: the drawing is deterministic
        xs = [x + w * (i + 0.5) / len(path) for i in range(len(path))]
        ys = [y + 0.1 + (h - 0.42) * r / (rows - 1) for r in range(rows)]
        ax.plot(xs, [ys[r] for r in path], color=edge, linewidth=1.6)
        for cx, chosen in zip(xs, path):
            for r, cy in enumerate(ys):
                ax.add_patch(Circle((cx, cy), 0.05, facecolor=edge if r == chosen else "white", edgecolor=edge,
                                    zorder=3))
        ax.text(x + w / 2, y + h - 0.02, label, ha="center", va="top", fontsize=9)
    else:
        ax.text(x + w / 2, y + h - 0.05 if dashed else y + h / 2, label, ha="center",
                va="top" if dashed else "center", fontsize=9)


def _arrow(ax, start, end, label=None):
    """An arrow from the right edge of box ``start`` to the left edge of box ``end`` (``(x, y, w, h)`` each)."""
    x0, y0 = start[0] + start[2], start[1] + start[3] / 2
    x1, y1 = end[0], end[1] + end[3] / 2
    ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="-|>", color="#444444", linewidth=1.2,
                                                        shrinkA=1, shrinkB=1, mutation_scale=12))
    if label:
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.05, label, ha="center", va="bottom", fontsize=9, style="italic",
                color="#444444")


def pipeline(name, ax=None):
    """Draw one method's pipeline — which data goes in, which neurons or weights are scored, what is
    changed — as a left-to-right flow diagram, and return its matplotlib Figure.

    ``name``: ``"manu"`` (chapter 05), ``"mmunlearner"`` (06), ``"neuron_paths"`` (07) or
    ``"mip_editor"`` (08). Colours are shared across the four: the vision tower, the projector and the
    language model, and forget and retain data. ``ax``: draw into these axes (coordinates 0–10 by 0–3.5)
    instead of a new 10 × 3.5 inch figure.
    """
    if name not in PIPELINES:
        raise ValueError(f"name must be one of {tuple(PIPELINES)}; got {name!r}")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    spec = PIPELINES[name]
    if ax is None:
        ax = plt.figure(figsize=(WIDTH, HEIGHT)).add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, WIDTH), ylim=(0, HEIGHT))
    ax.set_axis_off()
    boxes = spec["boxes"]
    for x, y, w, h, kind, label in boxes.values():
        _box(ax, x, y, w, h, kind, label)
    for start, end, *label in spec["arrows"]:
        _arrow(ax, boxes[start][:4], boxes[end][:4], *label)
    ax.text(WIDTH / 2, HEIGHT - 0.05, spec["title"], ha="center", va="top", fontsize=11, weight="bold")
    ax.text(WIDTH / 2, 0.05, spec["note"], ha="center", va="bottom", fontsize=9, style="italic")
    used = {box[4].split()[-1] for box in boxes.values()}
    handles = [Patch(facecolor=COLOURS[k][1], edgecolor=COLOURS[k][0], label=text) for k, text in LEGEND.items()
               if k in used]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.93), ncol=len(handles), fontsize=9,
              frameon=False, handlelength=1.2, columnspacing=1.2)
    return ax.figure


__all__ = ["COLOURS", "PIPELINES", "pipeline", "show_source"]
