"""mini_unlearn.methods.memory: the parameters footprint() says a method trains are the ones a real run
changes; the papers' models built on the meta device have their published sizes; the 80 GB story holds."""
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.methods.base import same_device
from mini_unlearn.methods.memory import footprint, reference_model, trained_parameters, trained_tensors

RATIO = 0.25
RUNS = {"ga": dict(steps=1, lr=1e-2), "mmunlearner": dict(forget_steps=1, retain_per_forget=0, lr=1e-2, preset="vision"),
        "rmu": dict(steps=1, lr=1e-2, update_layers=1), "mip_editor": dict(steps=1, k=2, m=2, lr=1e-2)}


@pytest.mark.parametrize("method", list(RUNS))
def test_what_footprint_counts_as_trained_is_what_a_run_changes(vlm, bench, method):
    result = mu.unlearn(vlm, bench, method, RATIO, progress=False, **RUNS[method])
    names = {id(p): name for name, p in vlm.model.named_parameters()}
    counted = {names[id(p)] for p in trained_tensors(vlm.model, method, result.config)}
    moved = set(result.touched.loc[result.touched["changed"] > 0, "parameter"])
    assert moved and moved <= counted                    # every changed tensor is one footprint counts …
    sizes = result.touched.set_index("parameter")["numel"]
    assert sizes[list(moved)].sum() >= 0.98 * sizes[list(counted)].sum()   # … and almost all of them change
    trained, statistics = trained_parameters(vlm.model, method, result.config)
    assert trained == sizes[list(counted)].sum() and (statistics > 0) == (method == "mmunlearner")


def test_footprint_adds_the_copy_gradients_and_fp32_optimizer_state(vlm):
    n = vlm.n_parameters()
    fp32 = footprint(vlm, "ga", dtype=torch.float32)
    assert fp32["trained"] == n and fp32["input"] == fp32["copy"] == fp32["gradients"] == round(4 * n / 2 ** 30, 3)
    assert fp32["optimizer"] == round(8 * n / 2 ** 30, 3)                     # two fp32 moments
    bf16 = footprint(vlm, "ga", dtype=torch.bfloat16)
    assert bf16["optimizer"] == round(12 * n / 2 ** 30, 3)                    # + the fp32 masters
    assert footprint(vlm, "manu")["optimizer"] == 0
    off = footprint(vlm, "kl_min", input_on_device=False)
    assert off["input"] == 0 and off["reference"] == off["copy"]             # KL reads a frozen copy
    assert footprint(vlm, "ga", input_on_device=False)["reference"] == 0
    lora = footprint(vlm, "mmunlearner", lora_rank=4)
    assert 0 < lora["trained"] < footprint(vlm, "mmunlearner")["trained"]


@pytest.mark.parametrize("name, published", [("LLaVA-1.5-7B", 7.06e9), ("Qwen2.5-VL-3B", 3.75e9)])
def test_the_papers_models_on_the_meta_device_have_their_published_size(name, published):
    model = reference_model(name)
    assert next(model.parameters()).device.type == "meta"
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(published, rel=0.01)
    assert {s.tower for s in mu.models.find_mlp_neurons(model)} == {"vision", "language"}


def test_a_7b_model_fits_one_80_gb_gpu_only_with_a_partial_update():
    model = reference_model("LLaVA-1.5-7B")
    full = footprint(model, "ga")
    assert full["total"] > 80 / 1.073741824                                # 80 GB = 74.5 GiB: does not fit
    lora = footprint(model, "mmunlearner", lora_rank=8, input_on_device=False)
    paths = footprint(model, "mip_editor", input_on_device=False)
    assert lora["total"] < 74.5 and paths["total"] < 74.5


def test_cuda_and_cuda_0_are_one_device():
    assert same_device(torch.device("cpu"), torch.device("cpu"))
    assert not same_device(torch.device("cpu"), torch.device("meta"))


@pytest.mark.parametrize("method", ["ga", "npo"])
def test_gradient_methods_with_lora_change_only_linear_weights_and_fit_a_7b_model(vlm, bench, method):
    options = dict(steps=2, lr=1e-2, lora_rank=4, **({"reference": "initial"} if method == "npo" else {}))
    result = mu.unlearn(vlm, bench, method, RATIO, progress=False, **options)
    assert type(result.vlm.model) is type(vlm.model)                       # merged: a plain model again
    assert list(dict(result.vlm.model.named_parameters())) == list(dict(vlm.model.named_parameters()))
    linear = {f"{name}.weight" for name, m in vlm.model.named_modules() if isinstance(m, torch.nn.Linear)}
    moved = set(result.touched.loc[result.touched["changed"] > 0, "parameter"])
    assert moved and moved <= linear - {"lm_head.weight"}                  # no bias, norm, embedding or head
    expected = footprint(vlm, method, lora_rank=4)["trained"]
    assert expected == sum(4 * sum(vlm.model.get_submodule(n.removesuffix(".weight")).weight.shape)
                            for n in linear - {"lm_head.weight"})
    fitted = footprint(reference_model("LLaVA-1.5-7B"), method, lora_rank=8, input_on_device=False)
    assert fitted["total"] < 74.5
