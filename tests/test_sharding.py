"""Two CPU processes each holding half of the language model (FSDP2, launched by ``accelerate launch`` with
the package's committed config) give one process's results, on two families.

``python -m mini_unlearn.distributed.sharded_check run`` takes, from the same tiny model: two steps each of
GA_Diff, NPO on the vision side (the embeddings frozen) against the (sharded) initial model, RMU against
the (sharded) input, MMUnlearner with its saliency mask and MIP-Editor's RMisU along its IGI/IFI paths
(the mask and the paths found on a sharded copy), stranger matching, MANU (its statistics on a sharded copy, its pruning on an
ordinary copy), and MANU's statistics on a sharded model. It runs once on one process and once sharded on
two. And what cannot shard must say so before anything is copied.
"""
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn import distributed
from mini_unlearn.distributed import sharded_check
from mini_unlearn.models import sharding
from mini_unlearn.models.sharding import ShardingError


@pytest.fixture(scope="module", params=sharded_check.FAMILIES)
def runs(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"sharded_{request.param}")
    sharded_check.launch(base / "one", request.param, 1)
    sharded_check.launch(base / "two", request.param, 2)
    return sharded_check.load(base / "one"), sharded_check.load(base / "two")


def test_the_second_run_was_sharded_on_two_processes(runs):
    (_, one), (_, two) = runs
    assert (one["processes"], one["sharded"]) == (1, False)
    assert (two["processes"], two["sharded"]) == (2, True)


def test_each_process_holds_half_of_every_language_weight_and_the_whole_vision_side(runs):
    (_, one), (_, two) = runs
    total = one["held"]["whole"]
    assert one["held"]["sharded"] == 0
    assert two["held"]["sharded"] > two["held"]["whole"] > 0
    assert 2 * two["held"]["sharded"] + two["held"]["whole"] == total      # even splits of the tiny model


def test_the_weights_each_process_holds_are_what_the_memory_model_counts(runs):
    """:func:`~mini_unlearn.methods.memory.sharded_footprint` counts the copy each process holds from the
    model's parameters; the launched run counted the elements its process really held."""
    (_, _), (_, two) = runs
    model = mu.models.VLM.tiny(two["family"], mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1)).model
    counted = mu.methods.memory.sharded_footprint(model, "ga_diff", 2, dtype=torch.float32, unit=1)["copy"] / 4
    assert counted == two["held"]["sharded"] + two["held"]["whole"]


@pytest.mark.parametrize("method", list(sharded_check.UNLEARNING))
def test_a_sharded_run_gives_one_process_losses_and_weights(runs, method):
    (first_t, first), (second_t, second) = runs
    flat = [v for row in first[f"{method}_losses"] for v in row.values()]
    other = [v for row in second[f"{method}_losses"] for v in row.values()]
    assert len(flat) == len(other) > 1 and flat == pytest.approx(other, rel=1e-4, abs=1e-5)
    names = [name for name in first_t if name.startswith(method + "/")]
    assert len(names) > 40
    gaps = torch.cat([(first_t[name] - second_t[name]).abs().flatten() for name in names])
    # as the data-parallel test: AdamW can turn a rounding-sized gradient into a step, so all but a few
    # weights agree to 1e-6 and none is a step apart (measured: largest gap 2e-6)
    assert (gaps > 1e-6).float().mean() < 1e-4 and gaps.max() < 1e-3, method


def test_the_copy_and_every_frozen_model_are_sharded_never_the_input(runs):
    (_, one), (_, two) = runs
    assert not any(one["sharded_models"].values())
    assert two["sharded_models"] == {"copy": True, "input": False, "frozen input": True, "reference": True}


def test_mmunlearner_leaves_every_weight_outside_its_mask_bit_identical_on_each_shard(runs):
    (_, _), (tensors, _) = runs
    masks = {name[len("mask/"):]: t.bool() for name, t in tensors.items() if name.startswith("mask/")}
    assert masks and any(m.any() for m in masks.values()) and any((~m).any() for m in masks.values())
    for name, mask in masks.items():
        after, before = tensors[f"mmunlearner/{name}"], tensors[f"input/{name}"]
        assert torch.equal(after[~mask], before[~mask]), name
        assert not torch.equal(after[mask], before[mask]) or not mask.any(), name


def test_the_saliency_mask_and_the_neuron_paths_found_on_a_sharded_copy_are_one_process_ones(runs):
    """Every process ran every batch of MMUnlearner's saliency and every sample of MIP-Editor's IGI/IFI
    attribution on a sharded copy of the input: the same mask and the same path neurons."""
    (first_t, _), (second_t, _) = runs
    for stage in ("mask/", "paths/"):
        names = [name for name in first_t if name.startswith(stage)]
        assert names and names == [name for name in second_t if name.startswith(stage)], stage
        for name in names:
            assert torch.equal(first_t[name], second_t[name]), name


def test_a_method_that_trains_nothing_prunes_what_one_process_prunes(runs):
    """MANU under the launcher: its statistics pass on a sharded copy, its pruning on an ordinary copy."""
    (first_t, _), (second_t, two) = runs
    names = [name for name in first_t if name.startswith("pruned/")]
    assert len(names) > 40 and not two["pruned_sharded"]
    zeroed = sum(int((first_t[name] == 0).sum()) for name in names)
    assert zeroed > 0
    for name in names:
        assert torch.equal(first_t[name], second_t[name]), name


def test_neuron_hooks_on_a_sharded_model_see_whole_activations(runs):
    (first_t, _), (second_t, _) = runs
    names = [name for name in first_t if name.startswith("manu/")]
    assert names
    for name in names:          # every process ran every batch on gathered weights: the same sums
        assert torch.allclose(first_t[name], second_t[name], rtol=1e-12, atol=0), name


def test_the_input_is_untouched_and_the_result_is_an_ordinary_checkpoint(runs):
    (_, one), (_, two) = runs
    assert one["input_unchanged"] and two["input_unchanged"]
    assert one["loads_back"] and two["loads_back"]


# ---------------------------------------------------------------------------------------------------
# What cannot shard says so (a launcher simulated by its environment: nothing is copied)

@pytest.fixture
def sharded_launch(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    assert sharding.requested()


@pytest.mark.parametrize("method, options, expected", [
    ("ga", {"lora_rank": 4}, "lora_rank=4"),
    ("kl_min", {"lora_rank": 2}, "LoRA adapters are not sharded"),
])
def test_what_has_no_sharded_form_is_refused_before_any_copy(sharded_launch, vlm, bench, method, options,
                                                              expected):
    with pytest.raises(ShardingError, match=expected):
        mu.unlearn(vlm, bench, method, 0.25, progress=False, **options)


def test_a_device_is_refused_in_a_sharded_run(sharded_launch, vlm, bench):
    with pytest.raises(ShardingError, match="device="):
        mu.unlearn(vlm, bench, "ga", 0.25, progress=False, device="cpu")


def test_fsdp_version_1_names_the_setting(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "1")
    with pytest.raises(ValueError, match="fsdp_version: 2"):
        sharding.requested()


def test_no_fsdp_config_means_no_sharding(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    assert not sharding.requested()


def test_a_model_whose_blocks_the_policy_misses_is_refused(monkeypatch, vlm):
    assert [name for name, _ in sharding.language_blocks(vlm.model)] == \
        ["model.language_model.layers.0", "model.language_model.layers.1"]
    monkeypatch.setenv("FSDP_TRANSFORMER_CLS_TO_WRAP", "NoSuchDecoderLayer")
    with pytest.raises(ShardingError, match="NoSuchDecoderLayer"):
        sharding.language_blocks(vlm.model)


def test_accelerates_mixed_precision_is_refused_with_the_alternative(monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    with pytest.raises(ShardingError, match="load the model in bf16"):
        sharding.require_plain_precision()


def test_the_vision_side_is_replicated(vlm):
    replicated = sharding.replicated_parameters(vlm.model)
    names = {name for name, p in vlm.model.named_parameters() if p in replicated}
    assert names and all(name.startswith(("model.vision_tower", "model.multi_modal_projector")) for name in names)


def test_the_committed_config_asks_for_fsdp2_and_its_cpu_form_only_moves_to_the_cpu(tmp_path):
    import yaml
    committed = yaml.safe_load(sharding.CONFIG.read_text())
    assert committed["distributed_type"] == "FSDP" and committed["fsdp_config"]["fsdp_version"] == 2
    cpu = yaml.safe_load(sharded_check.cpu_config(tmp_path).read_text())
    assert cpu == {**committed, "use_cpu": True}


def test_on_one_process_the_shard_helpers_are_the_identity():
    mask = torch.tensor([[1.0], [0.0], [1.0]])
    parameter = torch.zeros(3, 4)
    assert torch.equal(distributed.local_part(mask, parameter), mask)
    assert distributed.local(parameter) is parameter
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    norm = distributed.clip_gradients([p], 1.0)
    assert norm == pytest.approx(12 ** 0.5) and p.grad.norm() == pytest.approx(1.0, rel=1e-5)
    assert distributed.whole(mask, parameter) is mask


def test_without_a_sharding_launcher_a_pass_reads_the_model_itself(vlm):
    with sharding.for_pass(vlm) as read:
        assert read is vlm


def test_the_statistics_passes_read_the_model_through_for_pass(monkeypatch, vlm, bench):
    """Under the launcher ``for_pass`` yields a sharded copy (the launched runs above compare what it
    finds); here a stand-in records that MMUnlearner's saliency, the IGI/IFI path search and MANU's
    statistics ask it for their model."""
    from contextlib import contextmanager
    from mini_unlearn.neurons import paths, saliency
    asked = []

    @contextmanager
    def recording(model_vlm):
        asked.append(model_vlm)
        yield model_vlm
    monkeypatch.setattr(sharding, "for_pass", recording)
    saliency.compute_saliency(vlm, bench, 0.25, "language", batch_size=4)
    examples = [e for e in mu.models.train_data.training_examples(bench, bench.split("forget", 0.25).ids,
                                                                   practice=False) if e.modality == "text"][:1]
    paths.find_paths(vlm, examples, "igi", k=1, m=2)
    mu.methods.manu.manu_statistics(vlm, bench, 0.25)
    assert asked == [vlm, vlm, vlm]


def test_shard_rows_splits_a_weight_as_torch_chunk_does():
    for n, processes in ((8, 2), (10, 4), (5, 4), (3, 8), (64, 3)):
        chunks = [c.tolist() for c in torch.arange(n).chunk(processes)]
        chunks += [[]] * (processes - len(chunks))
        assert [list(range(n)[distributed.shard_rows(n, processes, r)]) for r in range(processes)] == chunks


def test_the_shard_checker_passes_the_answer_and_fails_the_usual_slips(capsys):
    mu.checks.check_shard_rows(distributed.shard_rows)
    assert "✓ shard_rows" in capsys.readouterr().out
    slips = {"a batch's split": distributed.row_slice,
             "equal shares, remainder dropped": lambda n, p, r: slice(n // p * r, n // p * (r + 1)),
             "not clamped": lambda n, p, r: slice(r * -(-n // p), (r + 1) * -(-n // p) + (r == p - 1)),
             "strided rows": lambda n, p, r: slice(r, n, p)}
    for slip in slips.values():
        with pytest.raises(AssertionError, match="shard_rows"):
            mu.checks.check_shard_rows(slip)
