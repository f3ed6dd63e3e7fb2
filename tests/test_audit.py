"""mini_unlearn.attacks (chapter 09, second part): relearning, the recall probes, the hidden-state readouts
(linear probe, logit lens), the audit frame, the verdict, and the bad inputs they refuse."""
import numpy as np
import pandas as pd
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.attacks import auditing
from mini_unlearn.attacks import linear_probe, logit_lens, probes, readout, relearning
from mini_unlearn.bench.questions import PARAPHRASES, paraphrased
from mini_unlearn.models import VLM
from mini_unlearn.models.families import FAMILIES

RATIO = 0.05


@pytest.fixture(scope="module")
def course():
    bench = mu.bench.make_benchmark(n_profiles=40, seed=0)
    vanilla = mu.models.vanilla(bench, preset="tiny", seed=0, progress=False)
    retain_only = mu.models.retain_only(bench, RATIO, preset="tiny", seed=0, progress=False)
    return bench, vanilla, retain_only


@pytest.fixture(scope="module")
def hidden(course):
    """MIP-Editor at its defaults: the forget people's answers gone by name (measured: text cloze 0.0)."""
    bench, vanilla, _ = course
    return mu.unlearn(vanilla, bench, method="mip_editor", ratio=RATIO, progress=False).vlm


# ---- relearning ------------------------------------------------------------------------------------------
def test_relearning_recovers_more_on_a_hidden_model_than_on_one_that_never_knew(course, hidden):
    bench, _, retain_only = course
    before = {n: p.detach().clone() for n, p in hidden.model.named_parameters()}

    def gain(model):
        curve = relearning.relearn(model, bench, RATIO, progress=False)
        text = curve[curve["modality"] == "text"].groupby("step")["recall"].mean()
        return text.iloc[0], text.iloc[-1]

    never_before, never_after = gain(retain_only)
    hidden_before, hidden_after = gain(hidden)
    assert hidden_before <= 0.1 and never_before <= 0.1          # neither recalls the facts by name at first
    assert hidden_after - hidden_before >= never_after - never_before + 0.3   # measured: +0.7 vs +0.0
    assert all(torch.equal(p, before[n]) for n, p in hidden.model.named_parameters())   # a copy was trained


def test_relearning_measures_only_the_facts_it_did_not_teach(course, monkeypatch):
    bench, vanilla, _ = course
    seen = []
    real = relearning.Monitor
    monkeypatch.setattr(relearning, "Monitor", lambda *a, **k: seen.append(k["facts"]) or real(*a, **k))
    curve = relearning.relearn(vanilla, bench, RATIO, steps=2, probe_every=1, progress=False)
    assert seen == [tuple(f for f in mu.bench.FACTS if f != "birthplace")]
    assert list(curve["step"].unique()) == [0, 1, 2]
    assert set(curve["modality"]) == {"image+text", "text"} and set(curve["task"]) == {"cloze"}
    people, others = bench.split("forget", RATIO).ids, [f for f in mu.bench.FACTS if f != "birthplace"]
    monitor = mu.models.train.Monitor(vanilla, bench, people, images="canonical", tasks=("cloze",), facts=others)
    assert sum(len(keys) for keys, _ in monitor.batches) == len(people) * len(others) * 2
    for bad, match in [({"facts": ()}, "facts must name"), ({"facts": tuple(mu.bench.FACTS)}, "leaves no other fact"),
                       ({"modalities": ("video",)}, "modalities"), ({"steps": 0}, "steps"), ({"lr": 0}, "lr")]:
        with pytest.raises(ValueError, match=match):
            relearning.RelearnConfig(**bad)


# ---- recall probes ---------------------------------------------------------------------------------------
def test_paraphrases_keep_the_answer_and_change_the_words(course):
    bench, _, _ = course
    person = bench.profiles[0]
    for q in bench.questions[person.id]:
        if q.task != "gen":
            with pytest.raises(ValueError, match="needs a gen question"):
                paraphrased(q, person.name)
            continue
        other = paraphrased(q, person.name)
        assert other.answer == q.answer and other.image == q.image and other.question != q.question
        assert (person.name in other.question) == (q.modality == "text")
    assert len(set(PARAPHRASES.values())) == len(mu.bench.FACTS)


def test_recall_probes_read_the_vanilla_model_as_knowing_and_retain_only_as_not(course):
    bench, vanilla, retain_only = course
    known = probes.recall_probes(vanilla, bench, RATIO).set_index(["probe", "modality", "task"])["recall"]
    unknown = probes.recall_probes(retain_only, bench, RATIO).set_index(["probe", "modality", "task"])["recall"]
    assert set(known.index.get_level_values("probe")) == set(probes.PROBES)
    assert known[("as trained", "image+text", "cloze")] == 1.0 and known[("as trained", "text", "gen")] == 1.0
    assert 0.8 < known[("test views", "image+text", "cloze")] < 1.0    # measured 0.92: one view not recognised
    assert probes.probe_questions(bench, RATIO)["test views"][1] == "test"
    assert ("test views", "text", "cloze") not in known.index                      # only portraits transform
    assert unknown[("as trained", "image+text", "cloze")] < 0.2
    with pytest.raises(ValueError, match="unknown split name 'validation'"):
        probes.recall_probes(vanilla, bench, RATIO, split="validation")


# ---- the hidden states -----------------------------------------------------------------------------------
def test_answer_states_keep_the_callers_order_across_modalities(course):
    bench, vanilla, _ = course
    questions = [q for q in bench.questions[bench.profiles[0].id] if q.task == "cloze"]
    mixed = questions[::-1]                                         # text first, then image questions
    together = readout.answer_states(vanilla, mixed, batch_size=4)
    alone = readout.answer_states(vanilla, [mixed[3]])
    assert together.states.shape[:2] == (vanilla.model.config.text_config.num_hidden_layers + 1, len(mixed))
    torch.testing.assert_close(together.states[:, 3], alone.states[:, 0], atol=1e-5, rtol=1e-4)
    assert together.first_token[3] == alone.first_token[0]
    with pytest.raises(ValueError, match="questions is empty"):
        readout.answer_states(vanilla, [])


def _answer_position(vlm, question):
    """One question's batch (labels removed), the column of its first answer token, and that token."""
    batch = mu.models.train_data.make_batch(vlm.processor, [(mu.models.question_prompt(question),
                                                             mu.models.target(question.answer), question.image.load())])
    labels = batch.pop("labels")
    first = int((labels[0] != -100).int().argmax())
    return batch, first, int(labels[0, first])


def _own_rank(vlm, question) -> int:
    """The rank of the question's first answer token in the model's own output, computed directly."""
    batch, first, wanted = _answer_position(vlm, question)
    with torch.no_grad():
        logits = vlm.model(**batch).logits[0, first - 1]
    return int((logits > logits[wanted]).sum())


def test_the_logit_lens_at_the_last_layer_is_the_models_own_output(course):
    bench, vanilla, _ = course
    questions = [q for q in bench.split("forget", RATIO).questions if q.task == "cloze"]
    ranks = logit_lens.answer_ranks(vanilla, questions)
    batch, first, wanted = _answer_position(vanilla, questions[0])
    assert int(ranks[-1, 0]) == _own_rank(vanilla, questions[0])
    with torch.no_grad():                                  # a hidden layer: the final norm, then the head
        state = vanilla.model(**batch, output_hidden_states=True).hidden_states[1][0, first - 1]
        lens = vanilla.model.get_output_embeddings()(vanilla.model.get_decoder().norm(state))
    assert int(ranks[1, 0]) == int((lens > lens[wanted]).sum())
    lens = logit_lens.logit_lens(vanilla, questions)
    assert (lens[lens["layer"] == ranks.shape[0] - 1]["top_k"] == 1.0).all()      # vanilla answers all of them
    assert (lens[lens["layer"] == 0]["top_k"] < 0.5).all()                         # the embeddings do not
    with pytest.raises(ValueError, match="k must be a positive integer"):
        logit_lens.logit_lens(vanilla, questions, k=0)


def test_a_linear_probe_is_at_chance_on_random_labels_and_reads_a_planted_signal():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(120, 16))
    random_labels = rng.integers(0, 2, size=120)
    assert abs(linear_probe.cv_accuracy(features, random_labels) - 0.5) < 0.15
    planted = features.copy()
    planted[:, 0] += 3.0 * random_labels
    assert linear_probe.cv_accuracy(planted, random_labels) > 0.9
    groups = np.repeat(np.arange(12), 10)                      # 12 people, 10 samples each, one label per person
    per_person = np.repeat(rng.integers(0, 2, size=12), 10)
    identity = np.eye(12)[groups] * 5 + rng.normal(size=(120, 12)) * 0.1
    assert linear_probe.cv_accuracy(identity, per_person) > 0.9                      # individuals recognised
    assert linear_probe.cv_accuracy(identity, per_person, groups) < 0.75             # not their class
    with pytest.raises(ValueError, match="two classes"):
        linear_probe.cv_accuracy(features, np.zeros(120))


def test_the_probes_on_the_course_models(course):
    bench, vanilla, retain_only = course
    what_known = linear_probe.what_probe(vanilla, bench, RATIO)
    what_unknown = linear_probe.what_probe(retain_only, bench, RATIO)
    last = what_known["layer"].max()
    assert (what_known[what_known["layer"] == last]["accuracy"] == 1.0).all()       # the letter it answers
    assert (what_unknown[what_unknown["layer"] == last]["accuracy"] < 0.5).all()    # near chance (0.25)
    who = linear_probe.who_probe(vanilla, bench, RATIO)
    assert (who["accuracy"] <= 0.75).all()          # vanilla knows forget and retain people alike (measured ≤ 0.5)


# ---- the audit and the verdict ---------------------------------------------------------------------------
def test_audit_is_a_tidy_frame_with_directions_and_reference_values(course):
    bench, vanilla, retain_only = course
    frame = mu.attacks.audit(vanilla, bench, RATIO, reference=retain_only, progress=False)
    assert list(frame.columns) == ["attack", "metric", "modality", "value", "reference", "direction"]
    assert not frame.duplicated(["attack", "metric", "modality"]).any()
    assert set(frame["attack"]) == {"membership", "forget quality", "recall probes", "logit lens", "linear probe",
                                    "relearning"}
    assert set(frame["direction"]) <= {"up", "down", "to 0"} and set(frame["modality"]) == {"image+text", "text"}
    row = frame.set_index(["attack", "metric", "modality"])
    # measured 0.87: with the names left out, the pairs that ask for the name tie (chapter 09)
    assert row.loc[("membership", "AUC loss", "image+text"), "value"] > 0.8
    assert row.loc[("membership", "AUC loss", "image+text"), "reference"] < 0.6
    assert row.loc[("membership", "PrivLeak (loss)", "image+text"), "value"] < -50      # a leak (measured −77)
    assert row.loc[("forget quality", "KS p-value", "text"), "value"] < 0.05
    assert row.loc[("forget quality", "KS p-value", "text"), "reference"] == 1.0
    alone = mu.attacks.audit(vanilla, bench, RATIO, progress=False)
    assert alone["reference"].isna().all() and "KS p-value" not in set(alone["metric"])


def test_the_audit_refuses_bad_input_before_it_runs(course):
    bench, vanilla, _ = course
    with pytest.raises(ValueError, match="only 6 holdout people"):
        mu.attacks.audit(vanilla, bench, 0.2, progress=False)
    with pytest.raises(ValueError, match="not the audited model itself"):
        mu.attacks.audit(vanilla, bench, RATIO, reference=vanilla, progress=False)
    with pytest.raises(ValueError, match="same architecture"):
        mu.attacks.audit(vanilla, bench, RATIO, reference=VLM.tiny("qwen2_vl", bench), progress=False)
    without = mu.bench.make_benchmark(n_profiles=40, seed=0, n_holdout=0)
    with pytest.raises(ValueError, match="has no holdout people"):
        mu.attacks.audit(vanilla, without, RATIO, progress=False)


def _frame(values: dict, references: dict) -> pd.DataFrame:
    rows = [{"attack": a, "metric": m, "modality": "text", "value": v, "reference": references[(a, m)],
             "direction": "down"} for (a, m), v in values.items()]
    return pd.DataFrame(rows)


def test_the_verdict_reads_the_gap_closed_on_the_surface_and_by_the_strongest_attack():
    keys = [auditing.SURFACE, *auditing.DEEP]
    reference = {k: 0.0 for k in keys}
    vanilla = _frame({k: 1.0 for k in keys}, reference)
    removed = _frame({k: 0.1 for k in keys}, reference)
    hidden = _frame({**{k: 0.1 for k in keys}, auditing.DEEP[-1]: 0.7}, reference)     # relearning brings it back
    kept = _frame({k: 0.9 for k in keys}, reference)
    table = mu.attacks.verdict({"vanilla": vanilla, "removed": removed, "hidden": hidden, "kept": kept})
    table = table.set_index("method")
    assert table["verdict"].to_dict() == {"removed": "removed", "hidden": "hidden", "kept": "not forgotten"}
    assert table.loc["hidden", "depth"] == pytest.approx(0.3)
    assert table.loc["hidden", "weakest"] == auditing.DEEP[-1][1]
    assert auditing.gap_closed(0.5, 1.0, 0.0) == 0.5 and np.isnan(auditing.gap_closed(0.5, 1.0, 0.98))
    with pytest.raises(ValueError, match="vanilla"):
        mu.attacks.verdict({"removed": removed})


# ---- every family ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_audit_runs_on_every_family(name):
    """A tiny random model of each family: the hidden-state readout, the lens and the whole audit run, and the
    lens's last row is the model's own output (the families differ in where the image and the answer sit)."""
    small = mu.bench.make_benchmark(n_profiles=8, seed=0, n_utility=1, n_holdout=2)   # 2 to forget at 0.25
    vlm = VLM.tiny(name, small)
    questions = [q for q in small.split("forget", 0.25).questions if q.task == "cloze"][:4]
    read = readout.answer_states(vlm, questions)
    assert read.states.shape[:2] == (vlm.model.config.text_config.num_hidden_layers + 1, len(questions))
    ranks = logit_lens.answer_ranks(vlm, questions)
    assert int(ranks[-1, 0]) == _own_rank(vlm, questions[0])     # an image question: the answer after the image
    found = mu.attacks.findings(vlm, small, 0.25, relearning=relearning.RelearnConfig(steps=1, probe_every=1),
                                progress=False)
    frame = mu.attacks.summarise(found, found)
    assert set(frame["attack"]) >= {"membership", "forget quality", "logit lens", "linear probe", "relearning"}
    assert frame["value"].notna().any() and (frame.query("metric == 'KS p-value'")["value"] == 1.0).all()


def test_the_who_probe_needs_two_forget_people_to_hold_one_out():
    small = mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1)          # ratio 0.25: one person
    vlm = VLM.tiny("llava", small)
    assert linear_probe.who_probe(vlm, small, 0.25)["accuracy"].isna().all()
    assert linear_probe.who_probe(vlm, small, 0.5)["accuracy"].notna().all()
