"""The live control: a panel of sliders and menus that reruns one of a chapter's measurements.

A :class:`LiveControl` wraps an ``ipywidgets.interactive`` panel around a *measurement* (a function of
the controls' values that returns a result) and a *drawing* of that result. With a running kernel in
Jupyter, displaying it gives the panel: move the sliders, press the button, see the measurement
redrawn. A stored notebook and the book cannot run it (they have no kernel), so there it shows one
line saying what the control does, and each chapter draws the same sweep as a static figure beside it.

``course.py execute`` drops the widget view from the stored output (its model id is random and its
state is not stored), so re-executing a chapter leaves the notebook byte-identical; the line the
panel shows in plain text is what nbval compares.

Tests drive a control as a learner would: :meth:`LiveControl.drive` sets the controls, presses the
button and returns the measurement.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...text import fit

_NOT_RUN = object()


class LiveControl:
    """A panel of ``controls`` (name → widget or interact abbreviation) that reruns ``measure``.

    ``measure(**values)`` returns the result; ``draw(result, values)`` draws it (optional).
    ``note`` is what the panel says where no kernel runs it (the stored notebook, the book).
    """

    def __init__(self, measure: Callable[..., Any], *, note: str, draw: Callable[[Any, dict], None] | None = None,
                 button: str = "run", **controls):
        import ipywidgets

        if not controls:
            raise ValueError("LiveControl needs at least one control (name=widget), got none")
        self.measure, self.draw, self.note = measure, draw, note
        self.error: BaseException | None = None
        self.widget = ipywidgets.interactive(self._run, {"manual": True, "manual_name": button}, **controls)

    def _run(self, **values):
        self.error = None
        try:
            result = self.measure(**values)
            if self.draw is not None:
                self.draw(result, values)
        except Exception as error:   # ipywidgets swallows callback errors; keep it for drive()
            self.error = error
            raise
        return result

    @property
    def controls(self) -> dict:
        """The control widgets, by the name of the argument each one sets."""
        return {w._kwarg: w for w in self.widget.kwargs_widgets}

    @property
    def values(self) -> dict:
        return {name: w.value for name, w in self.controls.items()}

    def drive(self, **values) -> Any:
        """Set the named controls to ``values``, press the button, and return the measurement."""
        controls = self.controls
        unknown = set(values) - set(controls)
        if unknown:
            raise ValueError(f"drive: no control named {sorted(unknown)}; the controls are {sorted(controls)}")
        for name, value in values.items():
            controls[name].value = value
        self.widget.result = _NOT_RUN
        self.widget.update()
        if self.error is not None:
            raise self.error
        if self.widget.result is _NOT_RUN:
            raise RuntimeError("drive: the control's button did not run the measurement")
        return self.widget.result

    def __repr__(self) -> str:
        return fit(self.note)

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = fit(self.note)
        return bundle


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def drop_widget_views(nb) -> None:
    """Remove widget views from a notebook's outputs, keeping their plain-text line.

    A widget view names a model by a random id, and its state is not stored, so in a stored notebook
    it renders as nothing and changes on every execution.
    """
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                if not data:
                    continue
            kept.append(output)
        if "outputs" in cell:
            cell.outputs = kept
