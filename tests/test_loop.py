"""The one training loop (mini_unlearn.models.loop) and the one LoRA path (mini_unlearn.models.lora)."""
import re
from pathlib import Path

import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.models.lora import LoraSettings, add_lora, remove_lora
from mini_unlearn.models.loop import AfterStep, Callback, Loop, Probe


class Recorder(Callback):
    def __init__(self, seen):
        self.seen = seen

    def on_start(self, loop):
        self.seen.append(("start", loop.step, loop.model.training))

    def on_step_end(self, loop):
        self.seen.append(("step", loop.step, loop.model.training))

    def on_end(self, loop):
        self.seen.append(("end", loop.step, loop.model.training))


def tiny_model():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.1), torch.nn.Linear(4, 2))
    return model.eval()


def test_the_loop_calls_the_step_and_the_callbacks_in_order():
    model, seen = tiny_model(), []
    probes = []
    loop = Loop(model, 5, desc="test", progress=False, callbacks=[
        AfterStep(lambda step: seen.append(("after", step))), Recorder(seen),
        Probe(lambda m: m.training, lambda loop, reading: probes.append((loop.step, reading)), every=2, at_start=True)])
    loop.run(lambda step: seen.append(("run", step, model.training)))
    assert seen[0] == ("start", 0, False)                      # before the first step: the mode it came in
    assert seen[1:4] == [("run", 1, True), ("after", 1), ("step", 1, True)]
    assert [s for s in seen if s[0] == "run"] == [("run", step, True) for step in range(1, 6)]
    assert seen[-1] == ("end", 5, True)
    assert probes == [(0, False), (2, True), (4, True), (5, True)]     # before, every 2 steps, after the last
    assert not model.training and loop.step == 5 and loop.seconds > 0


def test_a_probe_every_zero_reads_only_the_ends_and_puts_the_model_back_to_training():
    model, probes, modes = tiny_model(), [], []

    def monitor(m):                       # a monitor that leaves the model in evaluation mode
        m.eval()
        return "read"
    loop = Loop(model, 4, desc="test", progress=False, callbacks=[
        Probe(monitor, lambda loop, reading: probes.append(loop.step), every=0),
        AfterStep(lambda step: modes.append(model.training))])
    loop.run(lambda step: modes.append(model.training))
    assert probes == [4]
    loop = Loop(model, 4, desc="test", progress=False, callbacks=[
        Probe(monitor, lambda loop, reading: probes.append(loop.step), every=1)])
    loop.run(lambda step: modes.append(model.training))
    assert probes == [4, 1, 2, 3, 4] and all(modes)


def test_after_an_error_the_model_is_restored():
    model = tiny_model()
    first, second = model[0].weight, model[2].weight
    model[2].bias.requires_grad_(False)                  # frozen before: stays frozen

    def step(number):
        assert not second.requires_grad                  # only `trains` may be trained during the run
        model(torch.ones(1, 3)).sum().backward()
        if number == 2:
            raise RuntimeError("stop")
    with pytest.raises(RuntimeError, match="stop"):
        Loop(model, 3, desc="test", progress=False, trains=[first, model[0].bias]).run(step)
    assert not model.training
    assert second.requires_grad and not model[2].bias.requires_grad and first.requires_grad
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("steps", [0, -1, 2.0, True])
def test_the_loop_refuses_a_step_count_that_is_not_a_positive_integer(steps):
    with pytest.raises(ValueError, match="steps"):
        Loop(tiny_model(), steps, desc="test")


def test_lora_adds_adapters_that_start_at_zero_and_merge_back():
    torch.manual_seed(0)
    model = tiny_model()
    x = torch.randn(2, 3)
    before = model(x)
    wrapped = add_lora(model, LoraSettings(r=2, alpha=4, dropout=0.0, target_modules=("0",)), also=("second",))
    assert torch.equal(wrapped(x), before)                             # B = 0: nothing changed yet
    trainable = {name for name, p in wrapped.named_parameters() if p.requires_grad}
    assert trainable == {"base_model.model.0.lora_A.default.weight", "base_model.model.0.lora_B.default.weight"}
    layer = wrapped.base_model.model[0]
    with torch.no_grad():
        layer.lora_B["default"].weight.fill_(0.5)
    expected = layer.base_layer.weight + 2.0 * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    merged = remove_lora(wrapped)
    assert isinstance(merged, torch.nn.Sequential) and torch.allclose(merged[0].weight, expected)


def test_only_the_lora_module_calls_peft():
    """One LoRA path: knowledge injection's ``lora=``, the gradient methods' ``lora_rank`` and MMUnlearner's
    masked adapters all put adapters on with :func:`add_lora` and take them off with :func:`remove_lora`."""
    package = Path(mu.__file__).parent
    peft_calls = re.compile(r"\b(get_peft_model|LoraConfig|merge_and_unload|add_adapter)\b|\.unload\(|from peft import")
    callers = sorted(path.relative_to(package).as_posix() for path in package.rglob("*.py")
                     if peft_calls.search(path.read_text()))
    assert callers == ["models/lora.py"]
