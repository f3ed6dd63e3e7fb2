"""mini_unlearn.evaluation: the metrics on hand-made cases, the model plumbing, the report, bad input."""
from types import SimpleNamespace

import math

import matplotlib
import pandas as pd
import pytest
import torch

matplotlib.use("Agg")

import mini_unlearn as mu
from mini_unlearn.bench import LETTERS, Split
from mini_unlearn.evaluation import (GOALS, METRIC, TASKS, Report, cloze_correct, evaluate, letter_of,
                                     option_log_likelihoods, predict_by_likelihood, predict_letters, rouge_l)
from mini_unlearn.evaluation import tasks
from mini_unlearn.text import COLUMN
from mini_unlearn.models import PRESETS, VLM, build_model, build_processor, build_tokenizer, question_prompt, target


@pytest.fixture(scope="module")
def bench():
    return mu.bench.make_benchmark(n_profiles=40, seed=0)


@pytest.fixture(scope="module")
def tokenizer(bench):
    return build_tokenizer(bench, 1024)


def untrained(tokenizer, seed=0):
    return VLM(build_model("tiny", tokenizer, seed=seed), build_processor(tokenizer, PRESETS["tiny"]))


@pytest.fixture(scope="module", autouse=True)
def one_thread():   # module scope: it must be set before the module-scoped model fixtures run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- metrics ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, letter", [
    ("B", "B"), (" C", "C"), ("  b) Paris", "B"), ("d", "D"), ("\nA.", "A"), ("A: Caldera Bay", "A"),
    ("E", None), ("", None), ("   ", None), ("The answer is B", None), ("1", None), ("Bob", "B"),
])
def test_letter_of_reads_the_first_non_space_character(text, letter):
    assert letter_of(text) == letter


def test_rouge_l_is_one_for_an_exact_answer_and_zero_for_nothing_shared():
    sentence = "The person in the image was born in Caldera Bay."
    assert rouge_l(sentence, sentence) == pytest.approx(1.0)
    assert rouge_l(sentence, "") == 0.0
    assert rouge_l(sentence, "zzz qqq") == 0.0


def test_rouge_l_partial_overlap_is_the_f1_of_the_longest_common_subsequence():
    # reference 4 words, prediction 3 words, LCS "born in bay" = 3: P = 3/3, R = 3/4, F1 = 6/7
    assert rouge_l("born in caldera bay", "born in bay") == pytest.approx(6 / 7)
    # the stemmer makes "works" and "working" the same word
    assert rouge_l("she works hard", "she working hard") == pytest.approx(1.0)


@pytest.mark.parametrize("answer, response, correct", [
    ("Caldera Bay", "Caldera Bay", True), ("Caldera Bay", "caldera bay.", True),
    ("caldera bay", "She was born in CALDERA BAY", True), ("Caldera Bay", "Caldera", False),
    ("Caldera Bay", "", False), ("1984", "born in 1984.", True), ("1984", "1985", False),
])
def test_cloze_is_a_case_insensitive_substring(answer, response, correct):
    assert cloze_correct(answer, response) is correct


def test_score_rows_for_each_task(bench):
    split = bench.split("forget", 0.05)
    mcq, gen, cloze = (split.select(task)[0] for task in ("mcq", "gen", "cloze"))
    assert tasks.score("mcq_letter", mcq, mcq.correct)["score"] == 1.0
    assert tasks.score("mcq_letter", mcq, None)["correct"] is False
    assert tasks.score("gen", gen, gen.answer)["score"] == pytest.approx(1.0)
    assert tasks.score("cloze", cloze, f"It is {cloze.answer.upper()}!")["correct"] is True
    with pytest.raises(ValueError, match="unknown task 'mcq'"):
        tasks.score("mcq", mcq, "A")


# -- the model plumbing ---------------------------------------------------------------------------
def test_letter_by_forward_pass_equals_letter_by_generate(bench, tokenizer):
    questions = bench.split("retain", 0.05).select("mcq")[:40:3]     # both modalities
    for seed in (0, 2):   # seed 2's first greedy token is sometimes a bare space: the generate path
        vlm = untrained(tokenizer, seed)
        fast = predict_letters(vlm, questions, batch_size=5, max_new_tokens=8)
        with tasks.evaluating(vlm.model):
            slow = [letter_of(tasks.generate(vlm, tasks.encode(vlm, [question_prompt(q)], [q]), 8)[0])
                    for q in questions]
        assert fast == slow


def test_batched_answers_come_back_in_the_order_of_the_questions(bench, tokenizer):
    vlm = untrained(tokenizer, seed=2)
    questions = bench.split("retain", 0.05).select("gen")[:30:4]       # modalities interleaved
    batched = tasks.predict_text(vlm, questions, batch_size=3, max_new_tokens=4)
    alone = [tasks.predict_text(vlm, [q], max_new_tokens=4)[0] for q in questions]
    assert batched == alone and len(set(alone)) > 1


def test_a_blank_first_token_is_continued_by_generate(bench, tokenizer, monkeypatch):
    vlm = untrained(tokenizer)
    space = tokenizer.convert_tokens_to_ids("Ġ")
    original = vlm.model.forward

    def first_token_is_a_space(*args, **kwargs):
        output = original(*args, **kwargs)
        output.logits[..., space] = 1e4
        return output

    monkeypatch.setattr(vlm.model, "forward", first_token_is_a_space)
    monkeypatch.setattr(tasks, "generate", lambda vlm, batch, max_new_tokens: [" c) ..."] * len(batch["input_ids"]))
    questions = bench.split("forget", 0.05).select("mcq", "text")[:3]
    assert predict_letters(vlm, questions) == ["C", "C", "C"]


class FavouriteOption(torch.nn.Module):
    """A stand-in model: every position predicts one of the tokens of a chosen text, never anything else.

    (A mild preference is not enough under ``normalize="sum"``: a 7-token option whose tokens each get
    probability 1/7 scores 7·log 7 ≈ -13.6, below a 1-token option at -12.)
    """

    config = SimpleNamespace(model_type="fake")

    def __init__(self, favourite_ids, vocab_size):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(vocab_size))
        self.bias.data[favourite_ids] = 100.0

    def forward(self, input_ids, attention_mask=None, pixel_values=None, position_ids=None, logits_to_keep=0):
        logits = self.bias.expand(*input_ids.shape, -1)
        return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)


@pytest.mark.parametrize("normalize", ["sum", "mean"])
def test_likelihood_picks_the_option_the_model_prefers(bench, tokenizer, normalize):
    questions = bench.split("forget", 0.05).select("mcq")[:4]
    processor = build_processor(tokenizer, PRESETS["tiny"])
    for q in questions:
        for letter in LETTERS:
            ids = {other: tokenizer(target(q.options[other]), add_special_tokens=False)["input_ids"]
                   for other in LETTERS}
            favourite = ids[letter]
            if any(set(ids[other]) <= set(favourite) for other in LETTERS if other != letter):
                continue   # another option is spelled with the favourite's tokens only: no preference to make
            vlm = VLM(FavouriteOption(favourite, len(tokenizer)), processor)
            assert predict_by_likelihood(vlm, [q], normalize=normalize) == [letter]


def test_option_sentences_write_each_option_into_the_reference_answer(bench):
    for q in bench.split("forget", 0.05).select("mcq"):
        sentences = bench.option_sentences(q)
        reference = next(g for g in bench.questions[q.profile_id]
                         if g.task == "gen" and g.fact == q.fact and g.modality == q.modality)
        assert sentences[q.correct] == reference.answer
        for letter in LETTERS:
            assert q.options[letter] in sentences[letter]
            assert sentences[letter] != sentences[q.correct] or letter == q.correct
    gen = bench.split("forget", 0.05).select("gen")[0]
    with pytest.raises(ValueError, match="needs an MCQ"):
        bench.option_sentences(gen)


def test_the_sentence_form_picks_the_option_the_model_prefers(bench, tokenizer):
    """Each option is scored inside its answer sentence, after the one-sentence question (no option list)."""
    processor = build_processor(tokenizer, PRESETS["tiny"])
    checked = 0
    for q in bench.split("forget", 0.05).select("mcq")[:4]:
        sentences = bench.option_sentences(q)
        rows = tasks.likelihood_rows(q, sentences)
        assert all("A: " not in prompt and prompt.endswith("ASSISTANT:") for prompt, _ in rows)
        assert [answer for _, answer in rows] == [target(sentences[letter]) for letter in LETTERS]
        for letter in LETTERS:
            ids = {other: tokenizer(target(q.options[other]), add_special_tokens=False)["input_ids"] for other in LETTERS}
            if any(set(ids[other]) <= set(ids[letter]) for other in LETTERS if other != letter):
                continue
            vlm = VLM(FavouriteOption(ids[letter], len(tokenizer)), processor)
            assert predict_by_likelihood(vlm, [q], sentences=[sentences]) == [letter]
            checked += 1
    assert checked >= 8


def test_a_wrong_number_of_sentence_sets_is_refused(bench, tokenizer):
    q = bench.split("forget", 0.05).select("mcq")[0]
    with pytest.raises(ValueError, match="one dict per question"):
        option_log_likelihoods(untrained(tokenizer), [q], sentences=[])


def test_option_likelihoods_in_a_padded_batch_equal_one_sequence_at_a_time(bench, tokenizer):
    vlm = untrained(tokenizer)
    questions = bench.split("forget", 0.05).select("mcq")[::5]       # both modalities
    with tasks.evaluating(vlm.model):
        batched = torch.cat([option_log_likelihoods(vlm, [q]) for q in questions if q.image is not None]
                            + [option_log_likelihoods(vlm, [q for q in questions if q.image is None])])
        alone = []
        for q in [q for q in questions if q.image is not None] + [q for q in questions if q.image is None]:
            row = []
            for letter in LETTERS:
                prompt, answer = question_prompt(q), target(q.options[letter])
                n = len(tokenizer(prompt + answer)["input_ids"]) - len(tokenizer(prompt)["input_ids"])
                batch = tasks.encode(vlm, [prompt + answer], [q])
                logp = torch.log_softmax(vlm.model(**batch).logits[0, :-1].float(), -1)
                ids = batch["input_ids"][0, 1:]
                row.append(logp.gather(-1, ids[:, None])[-n:].sum())
            alone.append(torch.stack(row))
    assert torch.allclose(batched, torch.stack(alone), atol=1e-4)


# -- evaluate and Report ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_report():
    small = mu.bench.make_benchmark(n_profiles=4, seed=3, n_utility=1)
    small_tokenizer = build_tokenizer(small, 512)
    vlm = VLM(build_model("tiny", small_tokenizer), build_processor(small_tokenizer, PRESETS["tiny"]))
    vlm.model.train()
    report = evaluate(vlm, small, ratio=0.25, max_new_tokens=3, progress=False)
    return small, vlm, report


def test_evaluate_answers_every_question_of_every_split_and_task(small_report):
    small, vlm, report = small_report
    assert vlm.model.training, "evaluate must restore the model's train/eval mode"
    n_questions = sum(len(small.split(s, 0.25).questions) for s in mu.bench.SPLITS)
    # 3 question tasks; MCQ is scored twice
    assert len(report.details) == n_questions * 4 // 3
    assert set(report.details.columns) >= {"question_id", "profile_id", "prediction", "correct", "score"}
    frame = report.to_frame()
    assert list(frame.columns) == ["split", "modality", "task", "metric", "score", "n"]
    assert len(frame) == 4 * 2 * (len(TASKS) + 1)    # gen has ROUGE-L and ROUGE-1
    assert frame["score"].between(0, 1).all()
    people = {name: len(small.split(name, 0.25)) for name in mu.bench.SPLITS}
    assert (frame["n"] == frame["split"].map(people).astype(int) * len(mu.bench.FACTS)).all()   # people × facts
    assert report.table().shape == (8, len(TASKS))
    assert report.settings["likelihood"] == "sentence"


def test_report_repr_is_a_rounded_plain_table(small_report):
    _, _, report = small_report
    text = repr(report)
    lines = text.splitlines()
    assert lines[0].startswith("Report(ratio=0.25, few_shot=0, likelihood=sentence, normalize=sum;")
    head = 2 if "answers;" in lines[1] else 1         # a long header wraps onto two lines
    assert all(len(line) <= COLUMN for line in lines)
    assert "mcq_letter" in lines[head] and "gen (ROUGE-L)" in lines[head]
    assert len(lines) == head + 2 + 8                 # header, column names, index names, 8 rows
    numbers = [word for line in lines[head + 2:] for word in line.split() if "." in word]
    assert numbers and all(len(word.split(".")[1]) == 3 for word in numbers)
    assert "0x" not in text


def test_one_number_and_a_clear_error_for_a_missing_one(small_report):
    _, _, report = small_report
    rows = report.details[(report.details["split"] == "forget") & (report.details["modality"] == "image+text")
                          & (report.details["task"] == "mcq_letter")]
    assert report.score("forget", "image+text", "mcq_letter") == pytest.approx(rows["score"].mean())
    gen = report.details[(report.details["split"] == "retain") & (report.details["task"] == "gen")
                         & (report.details["modality"] == "text")]
    assert report.score("retain", "text", "gen", metric="rouge1") == pytest.approx(gen["rouge1"].mean())
    with pytest.raises(KeyError, match="split='forgotten'"):
        report.score("forgotten", "image+text", "mcq_letter")


def test_plot_returns_a_figure_with_one_heatmap_per_task(small_report):
    _, _, report = small_report
    figure = report.plot()
    assert isinstance(figure, matplotlib.figure.Figure)
    assert [ax.get_title().split()[0] for ax in figure.axes if ax.get_title()] == list(TASKS)


def test_report_from_hand_made_details():
    rows = [
        {"split": "forget", "modality": "text", "task": "cloze", "question_id": f"q{i}", "profile_id": "p",
         "fact": "hobby", "answer": "x", "prediction": "x" if i < 3 else "y", "correct": i < 3,
         "score": float(i < 3), "rouge1": math.nan}
        for i in range(4)
    ]
    report = Report(pd.DataFrame(rows), {"ratio": 0.05, "few_shot": 0})
    assert report.score("forget", "text", "cloze") == 0.75
    assert report.to_frame().to_dict("records") == [
        {"split": "forget", "modality": "text", "task": "cloze", "metric": "accuracy", "score": 0.75, "n": 4}]
    assert repr(report).splitlines()[-1].split() == ["forget", "text", "0.750", "4"]
    assert report.person("cloze").loc["p", ("forget", "text")] == 0.75
    with pytest.raises(ValueError, match="lack the columns"):
        Report(pd.DataFrame({"split": ["forget"]}))


def test_goals_say_which_way_each_split_and_modality_should_move():
    for goal in GOALS.values():
        assert set(goal["direction"]) == {(s, m) for s in mu.bench.SPLITS for m in mu.bench.MODALITIES}
        assert set(goal["direction"].values()) <= {"up", "down"}
    assert GOALS["forget_both"]["direction"][("forget", "text")] == "down"
    assert GOALS["forget_visual"]["direction"][("forget", "text")] == "up"
    assert set(METRIC) == set(TASKS)


def test_mu_evaluate_is_the_function():
    assert mu.evaluate is mu.evaluation.evaluate
    assert callable(mu.evaluate)


# -- bad input --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vlm(tokenizer):
    return untrained(tokenizer)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"splits": ("forget", "forgotten")}, ValueError, r"unknown split names \['forgotten'\]"),
    ({"splits": ()}, ValueError, "no split names"),
    ({"tasks": ("mcq",)}, ValueError, r"unknown task names \['mcq'\].*mcq_letter"),
    ({"tasks": ("gen", "rouge")}, ValueError, r"unknown task names \['rouge'\]"),
    ({"ratio": 1.5}, ValueError, "ratio must lie strictly between 0 and 1"),
    ({"ratio": "5%"}, TypeError, "ratio must be a number"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
    ({"max_new_tokens": 2.5}, ValueError, "max_new_tokens must be a positive integer"),
    ({"normalize": "max"}, ValueError, "normalize must be one of"),
    ({"few_shot": 2}, NotImplementedError, "few_shot=2: few-shot evaluation is not implemented"),
    ({"few_shot": -1}, ValueError, "few_shot must be a non-negative integer"),
])
def test_bad_arguments_raise_clearly(bench, vlm, kwargs, error, message):
    with pytest.raises(error, match=message):
        evaluate(vlm, bench, **kwargs)


def test_an_empty_split_raises(vlm):
    class EmptyBench:
        def split(self, name, ratio):
            return Split(name, ratio, (), ())

    with pytest.raises(ValueError, match="split 'forget' at ratio=0.05 has no questions"):
        evaluate(vlm, EmptyBench(), splits="forget")


def test_not_a_vlm_raises(bench, vlm):
    with pytest.raises(TypeError, match="vlm must be a mini_unlearn VLM"):
        evaluate(vlm.model, bench)


def test_questions_of_any_list_make_a_report_under_a_name_of_ones_own(bench, vlm):
    questions = bench.split("forget", 0.05).select("cloze", "text")[:2]
    details = mu.evaluation.evaluate_questions(vlm, questions, "paraphrased", tasks=("cloze",), max_new_tokens=2)
    report = Report(details)
    assert report.to_frame()[["split", "n"]].astype(str).values.tolist() == [["paraphrased", "2"]]


def _one_cell_report(correct: list[bool]) -> Report:
    rows = [{"split": split, "modality": modality, "task": "cloze", "question_id": f"{split}{modality}{i}",
             "profile_id": "p", "fact": "hobby", "answer": "x", "prediction": "x" if ok else "y", "correct": ok,
             "score": float(ok), "rouge1": math.nan}
            for split in ("forget", "retain") for modality in mu.bench.MODALITIES for i, ok in enumerate(correct)]
    return Report(pd.DataFrame(rows))


def test_score_table_and_goal_rows():
    reports = {"vanilla": _one_cell_report([True] * 4), "edited": _one_cell_report([True, False, False, False])}
    cells = (("forget", "image+text"), ("forget", "text"), ("retain", "image+text"))
    table = mu.evaluation.score_table(reports, tasks="cloze", cells=cells)
    assert list(table.index) == ["vanilla", "edited"]
    assert table.loc["edited", ("forget / text", "cloze")] == 0.25 and table.loc["vanilla"].eq(1.0).all()
    shown = mu.evaluation.mark_goals(table)
    assert shown.loc["edited"].tolist() == ["0.25", "0.25", "0.25"]
    # the two goals disagree on exactly one of these columns: the forget people asked by name
    assert shown.loc["forget_both wants"].tolist() == ["↓", "↓", "↑"]
    assert shown.loc["forget_visual wants"].tolist() == ["↓", "↑", "↑"]
    with pytest.raises(ValueError, match="unknown goal"):
        mu.evaluation.mark_goals(table, goals=("forget_everything",))
    with pytest.raises(ValueError, match="reports is empty"):
        mu.evaluation.score_table({})
