"""The ``xl`` preset (~1 B parameters) and its recipe, exercised on a CPU at 1/16 of its widths."""
import pytest
import torch

from mini_unlearn.models import PRESETS, build_model, build_tokenizer, get_preset
from mini_unlearn.models.cache import RECIPES, cache_key, recipe_for
from mini_unlearn.models.train import Speedups, TrainConfig, repeated_blocks, train
from mini_unlearn.models.train_data import training_examples


def test_xl_is_a_billion_parameter_llava_built_without_memory(bench):
    tokenizer = build_tokenizer(bench, PRESETS["xl"].vocab_size)
    with torch.device("meta"):                 # the real architecture, no weights allocated
        model = build_model(get_preset("xl"), tokenizer, seed=0)
    n = sum(p.numel() for p in model.parameters())
    assert 0.85e9 < n < 1.0e9
    assert len(repeated_blocks(model)) == 12 + 16     # CLIP's and Llama's layers


def test_a_scaled_preset_divides_every_width_and_keeps_the_depth():
    xl, small = get_preset("xl"), get_preset("xl/16")
    assert small == xl.scaled(16) and small.name == "xl/16"
    assert (small.vision_hidden, small.vision_mlp, small.text_hidden, small.text_mlp) == (48, 192, 128, 352)
    assert (small.vision_layers, small.text_layers, small.vision_heads, small.text_heads) == (12, 16, 12, 16)
    assert (small.image_size, small.patch_size, small.vocab_size) == (xl.image_size, xl.patch_size, xl.vocab_size)
    assert recipe_for("xl/16") == RECIPES["xl"] and recipe_for("tiny_deep") == RECIPES["tiny"]


@pytest.mark.parametrize("name, message", [("xl/0", "positive integer"), ("xl/x", "positive integer"),
                                           ("tiny/3", "does not divide"), ("xl/128", "does not divide"),
                                           ("huge", "unknown preset")])
def test_a_bad_scale_is_refused_with_the_reason(name, message):
    with pytest.raises(ValueError, match=message):
        get_preset(name)


def test_speedups_are_checked_and_stay_out_of_older_recipes_keys(bench):
    with pytest.raises(ValueError, match="autocast must be None or one of"):
        Speedups(autocast="fp8")
    with pytest.raises(TypeError, match="speedups must be None or a Speedups"):
        TrainConfig(speedups="fast")
    assert "speedups" not in RECIPES["tiny"].to_dict()            # the shipped models' keys are unchanged
    assert RECIPES["xl"].to_dict()["speedups"] == {"autocast": "bf16", "compile": "inductor", "fused": True}
    plain, fast = (cache_key("vanilla", bench, ["a"], get_preset("tiny"), 0, recipe) for recipe in
                   (TrainConfig(), TrainConfig(speedups=Speedups())))
    assert plain != fast


def test_the_xl_recipe_path_trains_compiled_and_gives_back_a_plain_model(bench, make_vlm):
    """bf16 autocast, the blocks compiled (``eager`` backend: dynamo's tracing without kernel
    generation) and fused AdamW: the losses stay those of the plain fp32 loop within bf16's
    precision, and afterwards every block runs eagerly again."""
    from torch._dynamo.utils import counters
    examples = training_examples(bench)
    options = dict(steps=3, batch_size=4, warmup=1, progress=False)

    def losses(speedups=None, vlm=None):
        return train(vlm or make_vlm(bench, "xl/16"), examples, speedups=speedups, **options).losses

    plain = losses()
    traced = sum(counters["frames"].values())
    compiled = losses(Speedups(autocast=None, compile="eager", fused=False))
    assert sum(counters["frames"].values()) > traced                 # dynamo did trace the blocks
    assert compiled == pytest.approx(plain, rel=1e-5)
    autocast = losses(Speedups(autocast="bf16", compile=None, fused=False))
    assert autocast == pytest.approx(plain, rel=2e-2) and autocast != pytest.approx(plain, rel=1e-5)   # bf16 matmuls
    fast_vlm = make_vlm(bench, "xl/16")
    assert losses(Speedups(compile="eager"), fast_vlm) == pytest.approx(autocast, rel=1e-3)   # + fused AdamW
    blocks = repeated_blocks(fast_vlm.model)
    assert len(blocks) == 28 and all(block._compiled_call_impl is None for block in blocks)
