"""mu.show.pipeline: each method's pipeline drawn as a flow diagram (chapters 05–08)."""
import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

import mini_unlearn as mu

matplotlib.use("Agg")

# the words a reader must find in each picture: what goes in, what is scored, what changes
KEY_WORDS = {
    "manu": ["forget", "retain", "vision", "language", "neuron", "α", "prune", "abs", "freq", "var", "rms",
             "no gradient"],
    "mmunlearner": ["forget", "retain", "gradient", "saliency", "mask", "vision tower", "projector",
                    "language model", "ascent", "descent"],
    "neuron_paths": ["IGI", "IFI", "path", "IG", "vision", "language", "portrait", "name only", "top k"],
    "mip_editor": ["IGI", "IFI", "rows", "RMisU", "forget", "retain", "λ", "row mask", "path rows"],
}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def labels(figure: Figure) -> list[Text]:
    return [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("name", list(KEY_WORDS))
def test_each_pipeline_is_a_figure_with_its_key_words(name):
    figure = mu.show.pipeline(name)
    assert isinstance(figure, Figure)
    text = " ".join(t.get_text() for t in labels(figure))
    missing = [word for word in KEY_WORDS[name] if word not in text]
    assert not missing, f"{name}: the labels lack {missing}"


def test_the_four_pictures_cover_the_registered_names():
    assert set(mu.show.PIPELINES) == set(KEY_WORDS)


@pytest.mark.parametrize("name", list(KEY_WORDS))
def test_labels_are_legible_and_do_not_overlap(name):
    figure = mu.show.pipeline(name)
    assert tuple(figure.get_size_inches()) == (10, 3.5)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    inside = figure.bbox
    boxes = []
    for t in labels(figure):
        assert t.get_fontsize() >= 9, f"{t.get_text()!r} is set in {t.get_fontsize()} pt"
        box = t.get_window_extent(renderer)
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1, \
            f"{t.get_text()!r} runs off the figure"
        boxes.append((t.get_text(), box))
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            assert not box_a.overlaps(box_b), f"{name}: {a!r} overlaps {b!r}"


@pytest.mark.parametrize("name", list(KEY_WORDS))
def test_the_drawing_is_deterministic(name):
    def drawn(figure):
        ax = figure.axes[0]
        return ([(t.get_text(), t.get_position()) for t in labels(figure)],
                [(p.get_extents().bounds, p.get_facecolor()) for p in ax.patches],
                [line.get_xydata().tolist() for line in ax.lines])
    assert drawn(mu.show.pipeline(name)) == drawn(mu.show.pipeline(name))


def test_draws_into_a_given_axes():
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3))
    returned = mu.show.pipeline("mmunlearner", ax=right)
    assert returned is figure
    assert len(figure.axes) == 2, "no new axes"
    assert not left.patches and not left.texts, "the other axes stay empty"
    assert right.patches and any("saliency" in t.get_text() for t in right.texts)


def test_a_bad_name_names_the_argument_and_the_choices():
    with pytest.raises(ValueError, match=r"name must be one of .*'manu'.*'mip_editor'.*'rmisu'"):
        mu.show.pipeline("rmisu")


def test_show_source_still_works(capsys):
    mu.show_source(mu.show.pipeline)
    assert capsys.readouterr().out.startswith("def pipeline(name, ax=None):")


def test_an_answer_shows_closed_in_jupyter_and_as_its_source_in_plain_text(capsys, monkeypatch):
    from mini_unlearn.course.show import Collapsed
    shown = Collapsed("if a < b:\n    return a", "mini_unlearn's answer: f")
    html = shown._repr_html_()
    assert html.startswith("<details><summary>mini_unlearn&#x27;s answer: f (click to open)</summary>")
    assert "<pre>if a &lt; b:\n    return a</pre></details>" in html and repr(shown) == "if a < b:\n    return a"
    mu.show_source(mu.methods.ga_loss, collapsed=True)          # no IPython kernel here: printed as is
    assert capsys.readouterr().out.startswith("def ga_loss(")
    displayed = []
    monkeypatch.setattr("IPython.get_ipython", lambda: object())
    monkeypatch.setattr("IPython.display.display", displayed.append)
    mu.show_source(mu.methods.ga_loss, collapsed=True)
    assert capsys.readouterr().out == ""
    [answer] = displayed
    assert repr(answer).startswith("def ga_loss(") and answer.summary == "mini_unlearn's answer: ga_loss"
