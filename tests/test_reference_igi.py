"""IGI ``variant="released"`` against the released MIP-Editor code's definition (``ig.py``, issue 34).

The expected values are computed here, independently of :mod:`mini_unlearn.neurons.paths`, from what
``ig.py``'s ``compute_ig_path`` does for one sample (batch size 1), layer by layer:

* ``scaled_input``: the current layer's neurons at position 0 take ``i/m × clean``, i = 0..m−1 (left sum);
* ``path_scaled_input``: every earlier layer is written *whole* at position 0 — its path neurons at
  ``i/m × clean``, every other neuron at its clean value (``baseline = clean`` with the path zeroed,
  ``baseline + i·step``); ``forward_with_scaled_inputs`` writes these tensors into ``down_proj``'s input
  (``inp[0][:, 0] = new_input``), so the other neurons are constants: they do not follow the layers
  below, and no gradient passes through them;
* the gradient is of ``output.loss`` of the m-copy batch: one mean over the copies' tokens;
* score = (Σ_i g_cur + Σ_earlier Σ_i g_last) × (clean_cur/m + Σ_earlier clean_last/m), where "last" is
  each earlier layer's last path neuron (the ``for i, b in enumerate(p): i = 0; temp[:, i] = …`` loop
  overwrites); the layer's path is its top-k.

On two language layers "whole" and "path neurons only" agree (nothing below layer 0 is interpolated),
so these tests use three and four. The released ``ig.py`` itself, run once on the same models and
samples, agreed with the package to about 2e-7 (relative).
"""
import dataclasses
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mini_unlearn.models import PRESETS
from mini_unlearn.models.train_data import one_pass_batches, training_examples
from mini_unlearn.neurons import paths


# -- the 1/m scale, by hand -------------------------------------------------------------------------------


def test_released_scores_are_one_mth_of_the_summed_objectives():
    # One site, F(w) = c·w at one position. The released loss is the mean over the m copies,
    # L = (1/m) Σ_k F(α_k a), so each copy's gradient is c/m and Σ_k of it is c; the score is the step
    # size a/m times that: a·c/m. The paper variant sums the copies: Σ_k ∂F/∂w = m·c, score a·c.
    a, c, m = torch.tensor([[[2.0, -1.0, 3.0]]]), torch.tensor([0.5, 2.0, -1.0]), 4
    model = nn.Module()
    model.up, model.down = nn.Linear(3, 3, bias=False), nn.Linear(3, 1, bias=False)
    model.up.weight.data, model.down.weight.data = torch.eye(3), c[None]    # the site's input is x itself
    site = [SimpleNamespace(name="down", width=3, tower="language")]
    options = dict(objective_fn=lambda model_, batch: model_.down(model_.up(batch["x"])).sum(dim=(1, 2)),
                   positions={"down": torch.tensor([True])}, m=m, k=1)
    released = paths.attribute_sample(model, {"x": a}, site, variant="released", **options).scores["down"]
    paper = paths.attribute_sample(model, {"x": a}, site, variant="paper", **options).scores["down"]
    # a·c = (1, −2, −3); a·c/m = (0.25, −0.5, −0.75)
    assert released.tolist() == pytest.approx([0.25, -0.5, -0.75], abs=1e-7)
    assert paper.tolist() == pytest.approx([1.0, -2.0, -3.0], abs=1e-7)


# -- three and four language layers: the released definition, written out -----------------------------


def released_ig_path(model, batch, m: int, k: int, pin: bool = True):
    """``ig.py``'s ``compute_ig_path`` for one sample, written out (module docstring). ``pin=False`` leaves
    the earlier layers' non-path neurons live instead (only the path neurons written): the old package.

    Returns the per-layer scores ``[width]`` and paths (top-k, best first)."""
    downs = [layer.mlp.down_proj for layer in model.model.language_model.layers]
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
              "labels": batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)}   # every non-pad token
    clean = []
    hooks = [d.register_forward_pre_hook(lambda _mod, args: clean.append(args[0][0, 0].detach().clone()))
             for d in downs]
    with torch.no_grad():
        model(**inputs)
    for h in hooks:
        h.remove()
    alpha = torch.arange(m, dtype=torch.float32)[:, None] / m                 # i/m, i = 0..m−1
    copies = {name: value.repeat(m, 1) for name, value in inputs.items()}
    scores, chosen = [], []
    for layer in range(len(downs)):
        leaves, written = [], []
        for earlier in range(layer + 1):
            on_path = torch.ones(clean[earlier].shape[0], dtype=torch.bool)    # the current layer: every neuron
            if earlier < layer:
                on_path = torch.zeros_like(on_path)
                on_path[chosen[earlier]] = True
            value = torch.where(on_path, alpha * clean[earlier], clean[earlier])  # [m, width]
            leaves.append(value.requires_grad_(True))
            written.append(on_path if (earlier < layer and not pin) else torch.ones_like(on_path))

        def write(_mod, args, leaf, where):
            x = args[0].clone()
            x[:, 0] = torch.where(where, leaf, x[:, 0])
            return (x,)
        hooks = [downs[i].register_forward_pre_hook(lambda mod, args, leaf=leaves[i], where=written[i]:
                                                    write(mod, args, leaf, where)) for i in range(layer + 1)]
        loss = model(**copies).loss                                          # the mean over the m copies
        for h in hooks:
            h.remove()
        grads = torch.autograd.grad(loss, leaves)
        last = [chosen[i][-1] for i in range(layer)]
        summed_grads = grads[layer].sum(dim=0) + sum(grads[i][:, last[i]].sum() for i in range(layer))
        summed_steps = clean[layer] / m + sum(clean[i][last[i]] / m for i in range(layer))
        score = summed_grads * summed_steps
        scores.append(score.detach())
        chosen.append(torch.topk(score, k).indices)
    return scores, chosen


@pytest.fixture(scope="module")
def text_samples(bench):
    examples = training_examples(bench, bench.split("forget", 0.25).ids, practice=False)
    return [e for e in examples if e.modality == "text"][:2]


@pytest.mark.parametrize("preset", [dataclasses.replace(PRESETS["tiny"], name="tiny_3", text_layers=3),
                                    PRESETS["tiny_deep"]], ids=["3 layers", "4 layers"])
def test_released_igi_is_the_released_codes_definition(make_vlm, bench, text_samples, preset):
    vlm = make_vlm(bench, preset, seed=1)
    sites = paths.tower_sites(vlm.model, "language")
    assert len(sites) == preset.text_layers
    m, k = 4, 5
    for example in text_samples:
        batch = next(one_pass_batches(vlm.processor, [example], 1))
        ours = paths.attribute_sample(vlm.model, batch, sites, k=k, m=m, variant="released")
        expected, expected_path = released_ig_path(vlm.model, batch, m, k)
        for site, score, path in zip(sites, expected, expected_path):
            assert torch.allclose(ours.scores[site.name], score, rtol=1e-4, atol=1e-6 * float(score.abs().max())), \
                site.name
            assert ours.path[site.name].tolist() == path.tolist(), site.name
        # the check has teeth: with the earlier layers' other neurons live, layers 2+ score differently
        live, _ = released_ig_path(vlm.model, batch, m, k, pin=False)
        for layer in range(2, len(sites)):
            gap = float((live[layer] - expected[layer]).abs().max() / expected[layer].abs().max())
            assert gap > 1e-2, (layer, gap)
