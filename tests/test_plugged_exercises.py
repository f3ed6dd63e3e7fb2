"""Each method chapter (04–09) has a ●●● exercise that rebuilds the core of its method, and the chapter's
next experiment runs on it: ``with mu.checks.use(fn, checker):`` makes the package call the learner's
function when the checker passes, and its own, with a one-line note, when it does not.

For every such exercise: the stub falls back to the package's function and the experiment still runs,
the experiment really calls the plugged function (a spy wrapped around the solution is called), and the
solution gives the package's numbers — so nbval checks the same outputs whichever runs. Each
chapter's experiment is run here small (an untrained tiny model, a few steps) by the function registered
for its checker with :func:`experiment`.
"""
import contextlib
import io
import re
from pathlib import Path

import nbformat
import pytest
import torch
from IPython.core.inputtransformer2 import TransformerManager

import mini_unlearn as mu
from mini_unlearn.course import checks
from mini_unlearn.course.checks.plug import call_site
from mini_unlearn.course.classroom import points_of
from mini_unlearn.course.exercises import find_exercises

ROOT = Path(__file__).resolve().parents[1]
METHOD_CHAPTERS = ("04", "05", "06", "07", "08", "09")
RUNS = {}   # checker name -> run(vlm, bench): the chapter's experiment, small; returns what it measured


def experiment(checker_name):
    """Register the small form of the experiment a ●●● exercise plugs into."""
    def register(run):
        RUNS[checker_name] = run
        return run
    return register


# -- the experiments, one section per chapter ------------------------------------------------------------

# == ch04 ==

@experiment("check_ga_diff_loss")
def run_ga_diff(vlm, bench):
    """Chapter 04's "Forget by image, ask by name" GA_Diff run: two steps; its losses and the new weights."""
    result = mu.unlearn(vlm, bench, method="ga_diff", ratio=0.25, steps=2, batch_size=2, forget_on="image+text",
                        seed=0, progress=False)
    return result.log.losses, [p.detach().clone() for p in result.vlm.model.parameters()]


# == ch05 ==

@experiment("check_paper_selection")
def run_manu(vlm, bench):
    """Chapter 05's ``mu.unlearn(method="manu")`` at its defaults (the paper's MANU, per tower), on a copy."""
    result = mu.unlearn(vlm, bench, method="manu", ratio=0.25, alpha=0.05, progress=False)
    pruned = {name: p.detach().clone() for name, p in result.vlm.model.named_parameters()}
    return {"scores": result.log.details["scores"], "selection": result.log.details["selection"],
            "parameters": pruned}


# == ch06 ==

_MASKS = {}


def both_mask(vlm, bench):
    """The saliency mask the runs would compute, computed once per model (most of a run's time)."""
    if id(vlm) not in _MASKS:
        _MASKS[id(vlm)] = (vlm, mu.neurons.compute_saliency(vlm, bench, 0.25, "both"))
    return _MASKS[id(vlm)][1]


@experiment("check_interleaved_step")
def run_mmunlearner_paper_and_released(vlm, bench):
    """Chapter 06's short runs: the both mask, 2 forget steps with 2 retain steps after each, the retain
    steps masked (the paper) and unmasked (the released code); the losses and the weights after each."""
    out = {}
    mask = both_mask(vlm, bench)
    for retain_mask in ("paper", "released"):
        run = mu.unlearn(vlm, bench, method="mmunlearner", ratio=0.25, forget_steps=2, retain_per_forget=2,
                         retain_mask=retain_mask, mask=mask, progress=False)
        out[retain_mask] = {"losses": run.log.losses,
                            "weights": {name: p.detach().clone() for name, p in run.vlm.model.named_parameters()}}
    return out


# == ch07 ==

@experiment("check_cascade_path")
def run_paths(vlm, bench):
    """Chapter 07: the paper's IGI and IFI paths of a forget person's first text and image questions."""
    from mini_unlearn.models.train_data import training_examples
    pairs = training_examples(bench, bench.split("forget", 0.25).ids[:1], practice=False)
    measured = {}
    for branch, modality in (("igi", "text"), ("ifi", "image+text")):
        found = mu.neurons.find_paths(vlm, [e for e in pairs if e.modality == modality][:2], branch, k=3, m=4)
        measured[branch] = (found.union, found.scores, [sample.path_term for sample in found.samples])
    return measured

# == ch08 ==

@experiment("check_rmisu_step")
def run_mip_editor(vlm, bench):
    """Chapter 08's "MIP-Editor on the course model": mu.unlearn with method="mip_editor", small."""
    result = mu.unlearn(vlm, bench, method="mip_editor", ratio=0.25, steps=2, k=2, m=2, branches=("igi",),
                        progress=False)
    weights = {name: p.detach().clone() for name, p in result.vlm.model.named_parameters()}
    return {"losses": result.log.losses, "weights": weights}


# == ch09 ==

@experiment("check_relearning_curve")
def run_relearning(vlm, bench):
    """Chapter 09's ``mu.attacks.findings``, its relearning attack alone: 2 relearning steps, probed after
    each; the relearning curve."""
    relearning = mu.attacks.RelearnConfig(steps=2, probe_every=1)
    # findings' relearning step, without the other attacks: relearn is what findings calls for it
    return mu.attacks.relearning.relearn(vlm, bench, 0.25, relearning, progress=False).to_dict("records")

# -- the tests --------------------------------------------------------------------------------------------


def chapter(number):
    [path] = sorted((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    return path, nbformat.read(path, as_version=4)


def hard_exercise(number):
    """The chapter's ●●● exercise (there is one) and its notebook."""
    path, nb = chapter(number)
    hard = [ex for ex in find_exercises(nb, path.name) if points_of(nb, ex.cell) == 3]
    assert len(hard) == 1, f"{path.name} has {len(hard)} ●●● exercises; a method chapter has one"
    return hard[0], nb


def defined(source, name_of=None):
    """Run an exercise cell's source in a fresh namespace; the one function it defines."""
    namespace = {"__name__": "__main__"}
    before = set(namespace)
    exec(compile(TransformerManager().transform_cell(source), "<exercise>", "exec"), namespace)
    functions = [value for key, value in namespace.items()
                 if key not in before and callable(value) and getattr(value, "__module__", None) == "__main__"
                 and not isinstance(value, type)]
    assert len(functions) == 1, f"the exercise cell defines {len(functions)} functions of its own"
    return functions[0]


def same(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("number", METHOD_CHAPTERS)
def test_each_method_chapter_runs_its_experiment_on_its_hard_exercise(number):
    ex, nb = hard_exercise(number)
    checker = getattr(checks, ex.checker)
    module, name = call_site(checker)
    assert callable(getattr(module, name)), f"{checker.plug} is not a function of the package"
    function = defined(ex.solution).__name__
    using = re.compile(rf"mu\.checks\.use\(\s*{function}\s*,\s*mu\.checks\.{ex.checker}\s*\)")
    later = [cell.source for cell in nb.cells[ex.cell + 1:] if cell.cell_type == "code"]
    assert any(using.search(source) for source in later), (
        f"no cell after exercise {ex.checker} runs `with mu.checks.use({function}, mu.checks.{ex.checker}):`")
    assert ex.checker in RUNS, f"register the small form of its experiment here: @experiment({ex.checker!r})"


@pytest.fixture(params=METHOD_CHAPTERS)
def plugged(request):
    ex, _ = hard_exercise(request.param)
    if ex.checker not in RUNS:
        pytest.fail(f"no experiment registered for {ex.checker}")
    return getattr(checks, ex.checker), defined(ex.solution), defined(ex.stub), RUNS[ex.checker]


def test_the_stub_falls_back_and_the_solution_runs_the_experiment_to_the_packages_numbers(plugged, vlm, bench):
    """Two runs of the small experiment: with the stub (the package's function runs, one line says so), then
    with a spy around the solution (the experiment calls it, and gets the same numbers bit for bit)."""
    checker, solution, stub, run = plugged
    module, name = call_site(checker)
    own = getattr(module, name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), mu.checks.use(stub, checker) as used:
        assert used is own and getattr(module, name) is own
        package = run(vlm, bench)
    assert out.getvalue().startswith(f"✗ your {stub.__name__} does not pass its check yet")
    assert out.getvalue().count("\n") == 1, "the fallback says so in one line"

    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return solution(*args, **kwargs)
    spy.__name__ = solution.__name__
    out = io.StringIO()
    with contextlib.redirect_stdout(out), mu.checks.use(spy, checker) as used:
        assert used is spy and getattr(module, name) is spy
        calls.clear()          # the checker's own calls
        learner = run(vlm, bench)
    assert calls, f"the experiment never called the function plugged in at {checker.plug}"
    assert out.getvalue().startswith(f"▶ this block runs your {solution.__name__}")
    assert getattr(module, name) is own, "the package's own function was not put back after the block"
    assert same(package, learner), f"the solution plugged at {checker.plug} changes the experiment's result"


def test_use_refuses_a_checker_without_a_call_site():
    with pytest.raises(ValueError, match="names no call site"), mu.checks.use(lambda x: x, mu.checks.check_ga_loss):
        pass
    with pytest.raises(TypeError, match="fn must be the function you wrote"), mu.checks.use(None, mu.checks.check_ga_loss):
        pass
    with pytest.raises(ValueError, match="target must read"):
        mu.checks.plugs_into("mini_unlearn.methods.gradient.ga_diff_loss")
