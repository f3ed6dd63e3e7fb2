"""mini_unlearn.bench: determinism, splits, questions, options and bad input."""
from collections import Counter
from itertools import combinations

import pytest

import mini_unlearn as mu
from mini_unlearn.bench import (FACTS, IMAGE_TEXT, LETTERS, MIN_ATTRIBUTE_DISTANCE, TEXT_ONLY, attribute_distance,
                                make_benchmark, text_only_twin)


@pytest.fixture(scope="module")
def bench():
    return make_benchmark(n_profiles=40, seed=0)


def _fingerprint(b):
    return ([p.to_dict() for p in b.profiles + b.utility_profiles],
            {pid: [(q.id, q.question, q.answer, q.options, q.correct) for q in qs] for pid, qs in b.questions.items()},
            b.forget_order)


def test_same_arguments_give_identical_profiles_questions_and_images(bench):
    again = make_benchmark(n_profiles=40, seed=0)
    assert _fingerprint(again) == _fingerprint(bench)
    for pid in bench.forget_order[:3]:
        first = bench.questions[pid][0].image.load().tobytes()
        mu.bench.render_portrait.cache_clear()
        assert again.questions[pid][0].image.load().tobytes() == first
        assert again.test_images[pid] == bench.test_images[pid]


def test_another_seed_gives_other_people(bench):
    other = make_benchmark(n_profiles=40, seed=1)
    assert [p.name for p in other.profiles] != [p.name for p in bench.profiles]
    assert other.forget_order != bench.forget_order


def test_profiles_have_ids_unique_names_and_six_facts(bench):
    everyone = bench.profiles + bench.utility_profiles
    assert len({p.id for p in everyone}) == len({p.name for p in everyone}) == 50
    assert all(set(FACTS) <= set(p.facts) and len(FACTS) >= 6 for p in everyone)
    assert [p.id for p in bench.profiles[:2]] == ["001", "002"]


def test_every_two_people_differ_in_enough_visible_attributes(bench):
    everyone = bench.profiles + bench.utility_profiles
    distances = [attribute_distance(a.face, b.face) for a, b in combinations(everyone, 2)]
    assert min(distances) >= MIN_ATTRIBUTE_DISTANCE


@pytest.mark.parametrize("n, sizes", [(40, [2, 4, 6]), (50, [3, 5, 8]), (500, [25, 50, 75])])
def test_forget_sets_are_nested_and_sized_by_ratio(n, sizes):
    b = make_benchmark(n_profiles=n, seed=0)
    f5, f10, f15 = (set(b.forget_ids(r)) for r in (0.05, 0.10, 0.15))
    assert f5 < f10 < f15
    assert [len(f5), len(f10), len(f15)] == sizes


def test_splits_partition_the_people(bench):
    for ratio in (0.05, 0.10, 0.15):
        forget, retain = bench.split("forget", ratio), bench.split("retain", ratio)
        test, utility = bench.split("test", ratio), bench.split("utility", ratio)
        assert set(forget.ids).isdisjoint(retain.ids)
        assert set(forget.ids) | set(retain.ids) == {p.id for p in bench.profiles}
        assert test.ids == forget.ids
        assert set(utility.ids).isdisjoint(set(forget.ids) | set(retain.ids))
        assert len(utility) == 10


def test_test_split_asks_the_same_questions_with_transformed_portraits(bench):
    forget, test = bench.split("forget", 0.10), bench.split("test", 0.10)
    assert [(q.id, q.question, q.answer) for q in forget.questions] == [(q.id, q.question, q.answer) for q in test.questions]
    for original, moved in zip(forget.select(modality=IMAGE_TEXT, task="gen"), test.select(modality=IMAGE_TEXT, task="gen")):
        assert original.image.load().tobytes() != moved.image.load().tobytes()
    assert all(q.image is None for q in test.select(modality=TEXT_ONLY))
    assert test.pairs == () and len(forget.pairs) > 0


def test_each_profile_has_every_task_modality_and_fact(bench):
    for person in bench.profiles[:5]:
        qs = bench.questions[person.id]
        assert Counter((q.task, q.modality) for q in qs) == {(t, m): len(FACTS) for t in ("mcq", "gen", "cloze")
                                                              for m in (IMAGE_TEXT, TEXT_ONLY)}
        for q in qs:
            if q.modality == IMAGE_TEXT:
                assert q.image is not None and person.name not in q.question
            else:
                assert q.image is None and person.name in q.question


def test_cloze_blank_filled_with_the_answer_gives_the_generation_answer(bench):
    person = bench.profiles[0]
    by_id = {q.id: q for q in bench.questions[person.id]}
    for q in bench.questions[person.id]:
        if q.task == "cloze":
            assert q.question.count("__") == 1
            assert q.question.replace("__", q.answer) == by_id[q.id.replace("-cloze", "-gen")].answer


def test_mcq_options_are_four_distinct_with_the_answer_under_the_correct_letter(bench):
    mcqs = [q for qs in bench.questions.values() for q in qs if q.task == "mcq"]
    for q in mcqs:
        assert tuple(q.options) == LETTERS
        assert len(set(q.options.values())) == 4
        assert q.options[q.correct] == q.answer
    counts = Counter(q.correct for q in mcqs)
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    # the shuffle is real: the correct letter is not a function of the fact or of the position
    assert len({q.correct for q in mcqs if q.fact == "birthplace"}) == 4


def test_text_only_twin_turns_each_image_question_into_the_name_question(bench):
    person = bench.profiles[3]
    by_id = {q.id: q for q in bench.questions[person.id]}
    for q in bench.questions[person.id]:
        if q.modality == IMAGE_TEXT and q.task in ("mcq", "cloze"):
            twin = by_id[q.id.replace(IMAGE_TEXT, TEXT_ONLY)]
            assert text_only_twin(q.question, person.name) == twin.question


def test_training_pairs_cover_both_modalities_and_the_name(bench):
    pairs = bench.split("forget", 0.05).pairs
    person = bench.profile(bench.forget_ids(0.05)[0])
    mine = [p for p in pairs if p.profile_id == person.id]
    assert len(mine) == 2 * len(FACTS) + 1
    assert any(p.fact == "name" and person.name in p.answer and p.image is not None for p in mine)
    assert len(bench.train_pairs()) == 50 * (2 * len(FACTS) + 1)


def test_summary_counts(bench):
    table = bench.summary(0.10)
    assert table.loc["forget", "people"] == 4 and table.loc["retain", "people"] == 36
    assert table.loc["test", f"{IMAGE_TEXT} questions"] == 4 * 3 * len(FACTS)


@pytest.mark.parametrize("ratio", [0, 1, -0.1, 1.5, float("nan")])
def test_ratio_outside_zero_one_is_refused(bench, ratio):
    with pytest.raises(ValueError, match="ratio"):
        bench.split("forget", ratio)


@pytest.mark.parametrize("ratio", ["0.05", None, True])
def test_ratio_of_the_wrong_type_is_refused(bench, ratio):
    with pytest.raises(TypeError, match="ratio"):
        bench.split("retain", ratio)


def test_unknown_split_name_is_refused(bench):
    with pytest.raises(ValueError, match="split name 'train'.*forget"):
        bench.split("train")


def test_too_few_profiles_for_the_ratio():
    with pytest.raises(ValueError, match="too few profiles for ratio=0.05.*n_profiles=8"):
        make_benchmark(n_profiles=8, seed=0).split("forget", 0.05)


@pytest.mark.parametrize("seed", [1.5, "0", None, True])
def test_non_integer_seed_is_refused(seed):
    with pytest.raises(TypeError, match="seed"):
        make_benchmark(n_profiles=10, seed=seed)


@pytest.mark.parametrize("n", [1, 0, 2.0])
def test_bad_profile_counts_are_refused(n):
    with pytest.raises((ValueError, TypeError), match="n_profiles"):
        make_benchmark(n_profiles=n, seed=0)


def test_twin_checker_passes_the_package_and_catches_a_subtle_mistake(capsys):
    mu.checks.check_text_only_twin(text_only_twin)
    assert "✓ text_only_twin" in capsys.readouterr().out
    lowercase_only = lambda question, name: question.replace("the person in the image", name)
    with pytest.raises(AssertionError, match="The person in the image"):
        mu.checks.check_text_only_twin(lowercase_only)


# ==== holdout people: never trained on, for the membership attacks (chapter 09) ================================
def test_holdout_people_leave_everyone_else_unchanged(bench):
    without = make_benchmark(n_profiles=40, seed=0, n_holdout=0)
    assert without.holdout_profiles == [] and len(bench.holdout_profiles) == 6      # 15 % of 40
    strip = {p.id for p in bench.holdout_profiles}
    assert ([p.to_dict() for p in without.profiles + without.utility_profiles],
            {pid: [(q.id, q.question, q.answer, q.options, q.correct) for q in qs] for pid, qs in without.questions.items()},
            without.forget_order) == \
        ([p.to_dict() for p in bench.profiles + bench.utility_profiles],
         {pid: [(q.id, q.question, q.answer, q.options, q.correct) for q in qs]
          for pid, qs in bench.questions.items() if pid not in strip}, bench.forget_order)
    assert without.test_images == bench.test_images
    for name in mu.bench.SPLITS:
        assert without.split(name, 0.1).questions == bench.split(name, 0.1).questions


def test_holdout_people_are_new_people_that_no_model_trains_on(bench):
    holdout = bench.holdout_profiles
    assert [p.id for p in holdout] == [f"h{i:03d}" for i in range(1, 7)] and {p.kind for p in holdout} == {"holdout"}
    others = bench.profiles + bench.utility_profiles
    assert not {p.name for p in holdout} & {p.name for p in others}
    assert min(attribute_distance(h.face, o.face) for h in holdout for o in others + holdout if o is not h) \
        >= MIN_ATTRIBUTE_DISTANCE
    assert not {pair.profile_id for pair in bench.train_pairs()} & {p.id for p in holdout}
    corpus = " ".join(mu.models.build.tokenizer_corpus(bench))
    assert not any(p.name in corpus for p in holdout)
    assert all(bench.pairs[p.id] and len(bench.questions[p.id]) == 36 for p in holdout)
    assert "holdout" not in mu.bench.SPLITS                     # evaluate() and summary() leave them out


def test_holdout_names_recombine_the_forget_people_names_at_every_ratio(bench):
    # holdout i = the first name of forget person i with the surname of forget person i ^ 1 (0↔1, 2↔3, 4↔5)
    forget = [bench.profile(i).name.split(" ", 1) for i in bench.forget_order[:6]]
    expected = [f"{forget[i][0]} {forget[i ^ 1][1]}" for i in range(6)]
    assert [p.name for p in bench.holdout_profiles] == expected
    for ratio in mu.bench.PAPER_RATIOS:     # each ratio's holdout names use that ratio's forget people only
        parts = {part for i in bench.forget_ids(ratio) for part in bench.profile(i).name.split(" ", 1)}
        used = {part for i in bench.holdout_ids(ratio) for part in bench.profile(i).name.split(" ", 1)}
        assert used == parts
    assert mu.bench.profiles.recombined_names(["Ab Cd", "Ef Cd", "Gh Ij"], 3) == ["Ab Ij", "Ef Ij", "Gh Cd"]
    with pytest.raises(ValueError, match="n_holdout must be at most n_profiles"):
        make_benchmark(n_profiles=4, seed=0, n_utility=1, n_holdout=5)
    with pytest.raises(ValueError, match="holdout_names must be one of"):
        make_benchmark(n_profiles=4, seed=0, n_utility=1, holdout_names="random")
    drawn = make_benchmark(n_profiles=40, seed=0, holdout_names="syllables")     # new names, nothing else changes
    recombined_parts = {part for name in expected for part in name.split(" ")}
    assert not {part for p in drawn.holdout_profiles for part in p.name.split(" ")} & recombined_parts
    assert [p.face for p in drawn.holdout_profiles] == [p.face for p in bench.holdout_profiles]
    assert drawn.forget_order == bench.forget_order and drawn.profiles == bench.profiles


def test_the_holdout_split_matches_the_forget_split_in_size_and_is_nested(bench):
    previous = []
    for ratio in mu.bench.PAPER_RATIOS:
        split = bench.split("holdout", ratio)
        assert len(split) == len(bench.split("forget", ratio)) and split.ratio == ratio
        assert split.ids[:len(previous)] == previous
        assert {q.profile_id for q in split.questions} == set(split.ids) and split.pairs
        previous = split.ids


def test_a_ratio_with_too_few_holdout_people_is_refused(bench):
    with pytest.raises(ValueError, match="forgets 8 people but .* only 6 holdout people"):
        bench.split("holdout", 0.2)
    with pytest.raises(ValueError, match="has no holdout people"):
        make_benchmark(n_profiles=40, seed=0, n_holdout=0).split("holdout", 0.05)
    with pytest.raises(ValueError, match="n_holdout must be a non-negative integer"):
        make_benchmark(n_profiles=40, seed=0, n_holdout=-1)
    assert len(make_benchmark(n_profiles=40, seed=0, n_holdout=8).split("holdout", 0.2)) == 8


def test_sample_faces_keeps_away_from_the_faces_to_avoid():
    import random
    first = mu.bench.portraits.sample_faces(5, random.Random(1))
    again = mu.bench.portraits.sample_faces(5, random.Random(1), avoid=first)     # the same draws, now refused
    assert min(attribute_distance(a, b) for a in again for b in first) >= MIN_ATTRIBUTE_DISTANCE
