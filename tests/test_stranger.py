"""The course's own method (chapter 13): its strangers, its alignment, its three terms by hand, and real runs."""
import math
import random

import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.bench.portraits import MIN_ATTRIBUTE_DISTANCE, attribute_distance
from mini_unlearn.bench.strangers import invent_strangers, stranger_twin
from mini_unlearn.methods import stranger as method
from mini_unlearn.models.train import IGNORE_INDEX


# -- strangers ----------------------------------------------------------------------------------------

def test_invented_strangers_are_nobody_in_the_benchmark_and_reproducible(bench):
    people = invent_strangers(bench, 3, seed=0)
    everyone = bench.profiles + bench.utility_profiles + bench.holdout_profiles
    assert [p.id for p in people] == ["s001", "s002", "s003"] and {p.kind for p in people} == {"stranger"}
    assert not {p.name for p in people} & {p.name for p in everyone}
    assert all(attribute_distance(s.face, p.face) >= MIN_ATTRIBUTE_DISTANCE for s in people for p in everyone)
    assert invent_strangers(bench, 3, seed=0) == people
    assert [p.name for p in invent_strangers(bench, 3, seed=1)] != [p.name for p in people]


def test_a_stranger_twin_swaps_the_name_and_the_portrait_and_keeps_the_fact(bench):
    person = bench.profiles[0]
    stranger = invent_strangers(bench, 1)[0]
    by_name = next(p for p in bench.pairs[person.id] if p.modality == "text")
    twin = stranger_twin(by_name, person, stranger)
    assert twin.question == by_name.question.replace(person.name, stranger.name) and person.name not in twin.question
    assert twin.answer == by_name.answer.replace(person.name, stranger.name)
    assert person.fact(by_name.fact) in twin.answer and twin.image is None
    portrait = next(p for p in bench.pairs[person.id] if p.modality == "image+text" and p.fact != "name")
    twin = stranger_twin(portrait, person, stranger)
    assert twin.answer == portrait.answer and twin.image.face == stranger.face != person.face
    with pytest.raises(ValueError, match="not person"):
        stranger_twin(portrait, bench.profiles[1], stranger)


def test_multiple_choice_items_ask_each_fact_with_fresh_options(bench):
    pairs = bench.pairs[bench.profiles[0].id]
    items = method.multiple_choice_items(bench, pairs, seed=0)
    assert len(items) == sum(p.fact != "name" for p in pairs)           # the name has no pool of options
    for item in items:
        assert item.options[item.correct] == bench.profile(item.profile_id).fact(item.fact) == item.answer
        assert len(set(item.options.values())) == 4 and item.id.endswith("-twin")
    assert [i.options for i in method.multiple_choice_items(bench, pairs, seed=1)] != [i.options for i in items]


# -- which positions are compared ---------------------------------------------------------------------

def test_matched_tokens_by_hand():
    # prompt [1 2 | 8 8 | 3], answer [4 | 8 8 | 5 6]  vs  the stranger's [1 2 | 9 | 3], [4 | 9 | 5 6]
    mine, theirs = [1, 2, 8, 8, 3, 4, 8, 8, 5, 6], [1, 2, 9, 3, 4, 9, 5, 6]
    states, predictions = method.matched_tokens(mine, theirs, 5, 4, portrait=False)
    assert states == [(0, 0), (1, 1), (3, 2), (4, 3), (5, 4), (7, 5), (8, 6), (9, 7)]
    assert predictions == [(4, 3), (7, 5), (8, 6)]       # predicting 4, 5, 6: never the name, a copy of the question's
    _, predictions = method.matched_tokens(mine, theirs, 5, 4, portrait=True)
    assert predictions == [(4, 3), (5, 4), (7, 5), (8, 6)]   # a portrait's answer names the face: its first piece counts


def test_aligned_positions_predict_the_same_answer_tokens(bench, vlm):
    forget, _ = mu.methods.unlearning_sets(bench, 0.25, "both")
    twins = method.strangers_for(bench, forget)
    batch = method.paired_batch_maker(twins)(vlm.processor, forget[:8], random.Random(0))
    mine, theirs, portrait = method.split_batch(batch)
    where = method.aligned_positions(mine, theirs, portrait)
    assert len(where["prediction_rows"]) > 0 and len(where["state_rows"]) > len(where["prediction_rows"])
    for row, i, j in zip(*(where[k].tolist() for k in ("prediction_rows", "prediction_columns",
                                                        "prediction_stranger_columns"))):
        assert mine["labels"][row, i + 1] != IGNORE_INDEX and theirs["labels"][row, j + 1] != IGNORE_INDEX
        if not portrait[row]:
            assert mine["input_ids"][row, i + 1] == theirs["input_ids"][row, j + 1]


@pytest.mark.parametrize("stranger", [False, True])
def test_outputs_at_reads_the_full_forward_at_the_matched_positions(bench, vlm, stranger):
    forget, _ = mu.methods.unlearning_sets(bench, 0.25, "both")
    batch = method.paired_batch_maker(method.strangers_for(bench, forget))(vlm.processor, forget[:8],
                                                                            random.Random(0))
    mine, theirs, portrait = method.split_batch(batch)
    where = method.aligned_positions(mine, theirs, portrait)
    side, chosen = ("_stranger", theirs) if stranger else ("", mine)
    with torch.no_grad():
        logits, states = method.outputs_at(vlm.model, chosen, where, stranger=stranger)   # the head on a span
        full = vlm.model(**{k: v for k, v in chosen.items() if k != "labels"}, output_hidden_states=True)
    expected = full.logits[where["prediction_rows"], where[f"prediction{side}_columns"]]
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert states.shape[0] == len(full.hidden_states) - 1
    torch.testing.assert_close(states[-1], full.hidden_states[-1][where["state_rows"], where[f"state{side}_columns"]])


# -- the three terms, by hand ------------------------------------------------------------------------

def test_answer_term_is_the_kl_from_the_stranger_by_hand():
    torch.manual_seed(0)
    logits, stranger = torch.randn(3, 5), torch.randn(3, 5)
    p, q = torch.softmax(stranger, -1), torch.softmax(logits, -1)
    by_hand = sum(float(p[i, v]) * math.log(float(p[i, v]) / float(q[i, v])) for i in range(3) for v in range(5)) / 3
    assert method.answer_match_loss(logits, stranger).item() == pytest.approx(by_hand, rel=1e-5)
    assert method.answer_match_loss(stranger, stranger).item() == pytest.approx(0.0, abs=1e-6)    # its floor


def test_state_term_is_the_mean_squared_distance_over_layers_by_hand():
    torch.manual_seed(0)
    states, stranger = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    per_layer = [sum(float(states[l, i, d] - stranger[l, i, d]) ** 2 for i in range(3) for d in range(4)) / 12
                 for l in range(2)]
    assert method.state_match_loss(states, stranger).item() == pytest.approx(sum(per_layer) / 2, rel=1e-5)


def test_the_loss_adds_each_term_with_its_weight():
    a, s, r = torch.tensor(0.7), torch.tensor(0.2), torch.tensor(0.05)
    assert method.stranger_loss(a, s, r).item() == pytest.approx(0.95)
    assert method.stranger_loss(a, s, r, answer_weight=2, state_weight=3, retain_weight=4).item() == pytest.approx(
        2 * 0.7 + 3 * 0.2 + 4 * 0.05)
    for dropped, weights in (("answer", {"answer_weight": 0}), ("state", {"state_weight": 0}),
                             ("retain", {"retain_weight": 0})):
        kept = {"answer": 0.7, "state": 0.2, "retain": 0.05}
        kept.pop(dropped)
        assert method.stranger_loss(a, s, r, **weights).item() == pytest.approx(sum(kept.values()))


# -- the method --------------------------------------------------------------------------------------

@pytest.mark.parametrize("weights", [{}, {"state_weight": 0.0}, {"retain_weight": 0.0}, {"answer_weight": 0.0},
                                     {"state_weight": 2.0, "retain_weight": 3.0}])
def test_the_logged_loss_is_the_weighted_sum_of_the_logged_terms(bench, vlm, weights):
    result = mu.unlearn(vlm, bench, method="stranger", ratio=0.25, steps=2, progress=False, **weights)
    config = mu.methods.make_config("stranger", **weights)
    for row in result.log.losses:
        assert row["loss"] == pytest.approx(config.answer_weight * row["answer_kl"] + config.state_weight * row["state_mse"]
                                            + config.retain_weight * row["retain_kl"], rel=1e-5)
        assert row["answer_kl"] > 0 and row["state_mse"] >= 0


def test_each_term_moves_the_model(bench, vlm):
    """Dropping a term changes the weights the run ends with (each term has a gradient)."""
    def final(**weights):
        out = mu.unlearn(vlm, bench, method="stranger", ratio=0.25, steps=2, progress=False, **weights).vlm
        return torch.cat([p.detach().flatten() for p in out.model.parameters()])
    full = final()
    for weights in ({"answer_weight": 0.0}, {"state_weight": 0.0}, {"retain_weight": 0.0}):
        assert not torch.equal(final(**weights), full), weights


def test_the_multiple_choice_twins_join_the_forget_pairs(bench, vlm):
    config = mu.methods.make_config("stranger")
    context = method._prepare(vlm, bench, 0.25, config)
    pairs, _ = mu.methods.unlearning_sets(bench, 0.25, "both")
    tasks = [example.task for example in context["forget"]]
    assert tasks.count("pair") == len(pairs) and tasks.count("mcq") == sum(e.source.fact != "name" for e in pairs)
    kept = context["retain"]            # the retain people are held in the same two formats
    assert [e.task for e in kept].count("mcq") == sum(e.source.fact != "name" for e in kept if e.task == "pair") > 0
    without = method._prepare(vlm, bench, 0.25, mu.methods.make_config("stranger", multiple_choice=False))
    assert len(without["forget"]) == len(pairs) and {e.task for e in without["retain"]} == {"pair"}


@pytest.mark.parametrize("bad, match", [({"state_weight": -1.0}, "state_weight"), ({"retain_weight": float("inf")},
                                        "retain_weight"), ({"strangers_seed": 1.5}, "strangers_seed"),
                                        ({"lr": 0}, "lr"), ({"forget_on": "audio"}, "forget_on")])
def test_bad_settings_are_refused_before_any_weight_changes(bench, vlm, bad, match):
    before = [p.detach().clone() for p in vlm.model.parameters()]
    with pytest.raises((ValueError, TypeError), match=match):
        mu.unlearn(vlm, bench, method="stranger", ratio=0.25, progress=False, **bad)
    assert all(torch.equal(a, b) for a, b in zip(before, vlm.model.parameters()))
