"""mini_unlearn.neurons.activations: hooks on both towers, token aggregation, streaming statistics."""
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.models import build_model, build_tokenizer, find_mlp_neurons
from mini_unlearn.neurons import NeuronStats, aggregate_tokens, collect_stats, mean_activations, recording


def test_aggregate_tokens_mean_skips_padding_and_last_takes_the_final_position():
    h = torch.arange(24, dtype=torch.float32).view(2, 3, 4)
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert torch.equal(aggregate_tokens(h, mask, "mean"), torch.stack([h[0, 1:].mean(0), h[1].mean(0)]))
    assert torch.equal(aggregate_tokens(h, None, "mean"), h.mean(1))
    assert torch.equal(aggregate_tokens(h, mask, "last"), h[:, -1])
    with pytest.raises(ValueError, match="aggregation"):
        aggregate_tokens(h, mask, "max")


def test_streaming_statistics_equal_the_stored_computation():
    torch.manual_seed(0)
    site = find_mlp_neurons(build_model("tiny", build_tokenizer(mu.bench.make_benchmark(4, seed=0, n_utility=1), 1024)))[0]
    chunks = [torch.randn(n, site.width) * 3 + 1 for n in (5, 1, 7)]
    stats = NeuronStats(site)
    for chunk in chunks:
        stats.add(chunk)
    stored = torch.cat(chunks).double()
    assert stats.count == 13
    assert torch.allclose(stats.mean(), stored.mean(0))
    assert torch.allclose(stats.variance(), stored.var(0, unbiased=False))
    assert torch.allclose(stats.rms(), stored.pow(2).mean(0).sqrt())
    assert NeuronStats(site).mean().isnan().all()     # never ran: NaN, not 0


def test_hooks_see_every_mlp_of_both_towers_and_are_removed(vlm, bench):
    sites = find_mlp_neurons(vlm.model)
    seen = {}
    question = next(q for q in bench.questions[bench.profiles[0].id] if q.modality == "image+text")
    batch = vlm.encode([mu.models.question_prompt(question)], [question.image.load()])
    with recording(vlm, sites, lambda site, h: seen.setdefault(site.name, h.shape)), torch.no_grad():
        vlm.model(**batch)
    assert set(seen) == {s.name for s in sites}
    assert all(shape[-1] == s.width for s, shape in ((s, seen[s.name]) for s in sites))
    seen.clear()
    with torch.no_grad():
        vlm.model(**batch)
    assert not seen, "hooks must be removed after the block"


def test_mean_activations_match_a_per_question_loop(vlm, bench):
    questions = [q for q in bench.questions[bench.profiles[0].id] if q.task == "cloze"]
    means = mean_activations(vlm, questions, batch_size=4)
    site = next(s for s in find_mlp_neurons(vlm.model) if s.tower == "language")
    per_question = []
    for q in questions:   # one at a time: no padding at all
        batch = vlm.encode([mu.models.question_prompt(q)], [q.image.load()] if q.image is not None else None)
        grabbed = []
        with recording(vlm, [site], lambda s, h, grabbed=grabbed: grabbed.append(h[0].mean(0))), torch.no_grad():
            vlm.model(**batch)
        per_question.append(grabbed[0])
    assert torch.allclose(means[site.name].float(), torch.stack(per_question).mean(0), atol=1e-5)


def test_language_tokens_text_leaves_out_the_image_placeholders(vlm, bench):
    questions = [q for q in bench.questions[bench.profiles[0].id] if q.task == "cloze"][:4]
    with_images = [q for q in questions if q.image is not None] or questions
    site = next(s for s in find_mlp_neurons(vlm.model) if s.tower == "language")
    image_token = vlm.model.config.image_token_id
    expected = {"all": [], "text": []}
    for q in with_images:      # one at a time, by hand: the mean over every token, and over the non-image ones
        batch = vlm.encode([mu.models.question_prompt(q)], [q.image.load()] if q.image is not None else None)
        grabbed = []
        with recording(vlm, [site], lambda s, h, grabbed=grabbed: grabbed.append(h[0])), torch.no_grad():
            vlm.model(**batch)
        text = batch["input_ids"][0] != image_token
        expected["all"].append(grabbed[0].mean(0))
        expected["text"].append(grabbed[0][text].mean(0))
    for tokens, values in expected.items():
        stats = collect_stats(vlm, mu.neurons.question_batches(vlm, with_images, 1), sites=[site],
                              language_tokens=tokens)
        assert torch.allclose(stats[site.name].mean().float(), torch.stack(values).mean(0), atol=1e-5), tokens
    assert not torch.allclose(torch.stack(expected["all"]), torch.stack(expected["text"]), atol=1e-4)
    with pytest.raises(ValueError, match="language_tokens"):
        collect_stats(vlm, [], language_tokens="answer")


def test_text_only_questions_leave_the_vision_neurons_without_samples(vlm, bench):
    text_only = [q for q in bench.questions[bench.profiles[0].id] if q.modality == "text"]
    stats = collect_stats(vlm, mu.neurons.question_batches(vlm, text_only))
    for stat in stats.values():
        if stat.site.tower == "vision":
            assert stat.count == 0 and stat.mean().isnan().all()
        else:
            assert stat.count == len(text_only)
    with pytest.raises(ValueError, match="tower"):
        collect_stats(vlm, [], towers=("audio",))
