"""A method is one registration: registered here, from the test file, with no other file of the package
touched, it runs through ``mu.unlearn``, ``footprint``, ``mini-unlearn run``, ``tune`` (its own grid) and
``compare`` onto the leaderboard."""
import json
from dataclasses import dataclass

import pytest
import torch

import mini_unlearn as mu
from mini_unlearn import validate
from mini_unlearn.cli import main
from mini_unlearn.methods import base


@dataclass(frozen=True)
class DampenConfig:
    """Multiply the language model's output head by ``factor`` (a toy: it forgets nothing in particular)."""

    factor: float = 0.9
    seed: int = 0

    def __post_init__(self):
        validate.positive(self.factor, "factor")


def dampen(vlm, bench, ratio, config, *, original, progress, monitor, probe_every):
    with torch.no_grad():
        vlm.model.get_output_embeddings().weight.mul_(config.factor)
    return base.UnlearnLog()


@pytest.fixture
def registered(monkeypatch):
    """``dampen`` registered for this test only (the registry is restored afterwards)."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    base.register("dampen", DampenConfig, "scale the output head", trains=lambda model, config: [
        model.get_output_embeddings().weight], grid={"factor": [0.5, 0.9]}, quick={"factor": 0.9})(dampen)
    return "dampen"


def test_a_registered_method_runs_and_has_a_footprint(registered, vlm, bench):
    assert registered in mu.methods.available() and mu.methods.describe().loc[registered, "goal"] == "forget_both"
    result = mu.unlearn(vlm, bench, registered, 0.25, progress=False, **mu.methods.get(registered).quick)
    changed = result.touched[result.touched["changed"] > 0]
    head = vlm.model.get_output_embeddings().weight
    assert len(changed) == 1 and int(changed["numel"].sum()) == head.numel()
    parts = mu.methods.memory.footprint(vlm, registered, dtype=torch.float32)
    assert parts["trained"] == head.numel() and parts["reference"] == 0
    from mini_unlearn.results import tuning
    assert tuning.candidates(registered) == [{"factor": 0.5}, {"factor": 0.9}]


def test_a_registered_method_runs_from_the_command_onto_the_leaderboard(registered, tmp_path, capsys, monkeypatch,
                                                                        make_vlm):
    """On a researcher's model (an untrained tiny one, as ``--model`` would load it, and another as its
    ``--reference``), ten people (one forgotten at 5%), two retain people for tuning instead of ten and
    generation cut to 3 tokens: the data do not matter here, only that the commands find the registered
    method, its grid and its settings."""
    from functools import partial

    from mini_unlearn import cli
    from mini_unlearn.results import running, tuning
    bench = mu.bench.make_benchmark(n_profiles=10, seed=0, n_utility=1, n_test_views=1)
    vlm, other = make_vlm(bench), make_vlm(bench, seed=1)
    monkeypatch.setattr(cli, "load_inputs", lambda *args: (vlm, bench))
    monkeypatch.setattr(cli, "retain_only_for", lambda *args: (lambda ratio: other))       # --reference loads it
    monkeypatch.setattr(running, "evaluate", partial(running.evaluate, max_new_tokens=3))  # untrained: short
    monkeypatch.setattr(tuning, "evaluate_questions", partial(tuning.evaluate_questions, max_new_tokens=3))
    monkeypatch.setattr(tuning, "RETAIN_PEOPLE", 2)
    out, tuned = tmp_path / "board", tmp_path / "tuning"
    assert main(["run", "--method", registered, "--set", "factor=0.5", "--out", str(out)]) == 0
    assert main(["tune", "--methods", registered, "--out", str(tuned)]) == 0
    chosen = json.loads((tuned / "tuned.json").read_text())["methods"][registered]
    assert chosen in [{"factor": 0.5}, {"factor": 0.9}]
    assert main(["compare", "--methods", registered, "--ratios", "0.05", "--seeds", "0", "--tuned", str(tuned),
                 "--out", str(out)]) == 0
    capsys.readouterr()
    board = mu.results.leaderboard(mu.results.load(out)).reset_index()
    assert set(board["method"]) == {registered} and set(board["setting"]) == {"custom", "default", "tuned"}


def test_registration_checks_what_it_is_given():
    with pytest.raises(TypeError, match="no field 'grids'"):
        base.register("x", DampenConfig, "x", grids={})
    with pytest.raises(ValueError, match="non-empty list"):
        base.register("x", DampenConfig, "x", grid={"factor": []})
    with pytest.raises(ValueError, match="factor"):
        base.register("x", DampenConfig, "x", grid={"factor": [0.5, -1.0]})      # every setting is a valid config
    with pytest.raises(ValueError, match="does not say what it trains"):
        base.register("untrained", DampenConfig, "x")(dampen)
        try:
            mu.methods.memory.footprint(torch.nn.Linear(2, 2), "untrained")
        finally:
            base._REGISTRY.pop("untrained")
