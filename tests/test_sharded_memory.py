"""mini_unlearn.methods.memory on several GPUs: what one process holds under FSDP2 against data parallelism.

On one process FSDP2 holds what data parallelism holds, but for the weights it gathers; on N the language
side's weights, gradients and AdamW state shrink to 1/N and the vision side's do not; one LLaVA-1.5-7B figure
is checked against its architecture, counted by hand."""
import math

import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.methods.memory import (GiB, data_parallel_footprint, memory_table, reference_model,
                                         sharded_footprint)
from mini_unlearn.models import sharding

PARTS = ("copy", "reference", "gradients", "optimizer", "statistics", "activations", "averaging", "step")
SHARDED = ("copy", "gradients", "optimizer")


@pytest.fixture(scope="module")
def tiny():
    return mu.models.VLM.tiny("llava", mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1))


def sides(model) -> tuple[int, int]:
    """(vision side, language side) parameter counts: what FSDP2 replicates, what it shards."""
    vision = sum(p.numel() for p in sharding.replicated_parameters(model))
    return vision, sum(p.numel() for p in model.parameters()) - vision


@pytest.mark.parametrize("method", ["ga", "npo", "kl_min", "mmunlearner"])
def test_on_one_process_fsdp2_holds_what_data_parallelism_holds_but_the_gathered_weights(tiny, method):
    ddp = data_parallel_footprint(tiny, method, 1, unit=1, sequence=80)
    fsdp = sharded_footprint(tiny, method, 1, unit=1, sequence=80)
    assert {name: fsdp[name] for name in PARTS} == {name: ddp[name] for name in PARTS}
    assert ddp["gathered"] == 0 < fsdp["gathered"]
    assert ddp["averaging"] == 0 and (fsdp["reference"] > 0) == (method in ("npo", "kl_min"))


def test_the_language_side_shards_as_one_over_n_and_the_vision_side_stays_whole(tiny):
    model = tiny.model
    vision, language = sides(model)
    width = {"copy": 2, "gradients": 2, "optimizer": 12}          # bytes per parameter: bf16, AdamW + masters
    replicated = {id(p) for p in sharding.replicated_parameters(model)}
    assert all(p.shape[0] % 4 == 0 for p in model.parameters() if id(p) not in replicated)   # no padding on 2 or 4
    for n in (1, 2, 4):
        fsdp = sharded_footprint(tiny, "ga", n, unit=1, batch_size=4)
        for part in SHARDED:                                   # ga trains everything: every part is held/N + vision
            assert fsdp[part] == width[part] * (vision + language / n)
        # MMUnlearner's vision preset trains weights of the vision side only: they stay whole at every N
        trained = sum(p.numel() for p in mu.methods.memory.trained_tensors(model, "mmunlearner",
                                                                           mu.methods.make_config(
                                                                               "mmunlearner", preset="vision")))
        vision_only = sharded_footprint(tiny, "mmunlearner", n, unit=1, batch_size=4, preset="vision")
        assert 0 < trained <= vision
        assert (vision_only["gradients"], vision_only["optimizer"]) == (2 * trained, 12 * trained)
        assert vision_only["averaging"] == (8 * trained if n > 1 else 0)
    one, four = (sharded_footprint(tiny, "ga", n, unit=1, batch_size=4, sequence=80) for n in (1, 4))
    assert four["activations"] == one["activations"] / 4 and four["gathered"] == one["gathered"]


def test_what_has_no_sharded_form_is_refused(tiny):
    with pytest.raises(sharding.ShardingError, match="lora_rank"):
        sharded_footprint(tiny, "ga", 2, lora_rank=4)
    with pytest.raises(sharding.ShardingError, match="trains nothing"):
        sharded_footprint(tiny, "manu", 2)
    with pytest.raises(ValueError, match="batch_size"):
        sharded_footprint(tiny, "ga", 8, batch_size=4)
    assert data_parallel_footprint(tiny, "ga", 2, lora_rank=4)["total"] >= 0      # LoRA under data parallelism


def test_llava_7b_on_8_gpus_matches_its_architecture_counted_by_hand():
    # Llama-2-7B inside LLaVA-1.5: 32 blocks of attention (4 · 4096²), SwiGLU MLP (3 · 4096 · 11008), 2 norms
    block = 4 * 4096 ** 2 + 3 * 4096 * 11008 + 2 * 4096
    root = 2 * 32064 * 4096 + 4096                          # embeddings, LM head (untied), final norm
    # CLIP ViT-L/14 at 336 px (24 layers, 577 positions) and the 2-layer MLP projector, with their biases
    clip_layer = 4 * (1024 ** 2 + 1024) + 2 * 1024 * 4096 + 4096 + 1024 + 2 * 2 * 1024
    vision = 1024 + 3 * 14 ** 2 * 1024 + 577 * 1024 + 2 * 1024 + 24 * clip_layer + 2 * 1024
    vision += 1024 * 4096 + 4096 + 4096 ** 2 + 4096
    language = root + 32 * block
    model = reference_model("LLaVA-1.5-7B")
    assert sides(model) == (vision, language)
    held = vision + language // 8                             # every language dim divides by 8
    persistent = (2 + 2 + 12) * held                          # bf16 copy and gradients, 2 fp32 moments + master
    gathered = 2 * (root + 2 * block + root + block)          # root weights + grads, two blocks, one block's grads
    activations = math.ceil(8 / 8) * (576 + 64) * 4096 * 34 * 32
    expected = (persistent + max(gathered + activations, 8 * vision, 8 * held)) / GiB
    fsdp = sharded_footprint(model, "ga", 8)
    assert fsdp["total"] == pytest.approx(expected, abs=2e-3) and fsdp["optimizer"] == round(12 * held / GiB, 3)
    assert (fsdp["gathered"], fsdp["activations"]) == (round(gathered / GiB, 3), round(activations / GiB, 3))
    ddp = data_parallel_footprint(model, "ga", 8)
    assert ddp["total"] == pytest.approx((16 + 8) * (vision + language) / GiB, abs=2e-3)   # the step's temporaries


def test_the_table_fits_a_notebook_and_sharding_fits_what_data_parallelism_cannot():
    table = memory_table()
    assert len(table) == 8 and max(map(len, table.to_string().splitlines())) <= 85
    llava = table[table["model"] == "LLaVA-1.5-7B"].set_index("GPUs")
    assert not llava["DDP fits"].any() and llava.loc[8, "FSDP2 fits"]
    assert (llava["FSDP2 GiB"].diff().dropna() < 0).all()                  # more GPUs, less on each
    assert (table["FSDP2 GiB"] <= table["DDP GiB"]).all()
    npo = memory_table(["LLaVA-1.5-7B"], "npo", (8,), dtype=torch.bfloat16)      # + a sharded frozen reference
    assert npo["FSDP2 GiB"].item() > llava.loc[8, "FSDP2 GiB"]
