"""Live controls: driving one reruns its measurement with the controls' values, and a stored notebook
keeps only its plain-text line."""
import ipywidgets
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from mini_unlearn.course.controls import WIDGET_VIEW, LiveControl, drop_widget_views


def squares():
    drawn = []
    control = LiveControl(lambda x, power: x ** power, note="a toy control: x to a power",
                          draw=lambda result, values: drawn.append((values, result)),
                          x=ipywidgets.IntSlider(value=2, min=0, max=10), power=[2, 3])
    return control, drawn


def test_driving_a_control_reruns_the_measurement_with_its_values():
    control, drawn = squares()
    assert control.drive(x=3) == 9
    assert control.drive(x=4, power=3) == 64
    assert control.values == {"x": 4, "power": 3}
    assert drawn == [({"x": 3, "power": 2}, 9), ({"x": 4, "power": 3}, 64)]


def test_a_failing_measurement_raises_from_drive_and_unknown_controls_are_refused():
    control = LiveControl(lambda x: 1 / x, note="inverse", x=ipywidgets.IntSlider(value=1))
    assert control.drive(x=4) == 0.25
    with pytest.raises(ZeroDivisionError):
        control.drive(x=0)
    with pytest.raises(ValueError, match=r"no control named \['y'\].*\['x'\]"):
        control.drive(y=1)
    with pytest.raises(ValueError, match="at least one control"):
        LiveControl(lambda: 1, note="none")


def test_the_plain_text_of_a_control_is_its_note_and_stored_notebooks_drop_the_view():
    control, _ = squares()
    bundle = control._repr_mimebundle_()
    assert bundle["text/plain"] == "a toy control: x to a power" == repr(control)
    assert WIDGET_VIEW in bundle
    nb = new_notebook(cells=[new_code_cell("control", outputs=[
        new_output("display_data", data=dict(bundle)),
        new_output("display_data", data={WIDGET_VIEW: bundle[WIDGET_VIEW]}),
        new_output("stream", name="stdout", text="kept\n")])])
    drop_widget_views(nb)
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data", "stream"]
    assert outputs[0].data == {"text/plain": "a toy control: x to a power"}
