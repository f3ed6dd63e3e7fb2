"""CLEAR's data (mini_unlearn.bench.clear, .clear_files): the generator's people, pictures, captions and questions,
the forget sets, CLEAR's items; the files written in the Hub's layout and read back (ours, and rows as the Hub has
them: no extra fields, sharded, questions in any block order); every bad folder refused with the config, file and
row named; ``--bench clear`` / ``clear:PATH`` on the command line."""
import random
import re
import shutil

import numpy as np
import pytest

import mini_unlearn as mu
from mini_unlearn.bench import FACT_POOLS, FACTS
from mini_unlearn.bench.clear import (CAPTION_QUESTIONS, CLEAR_RATIOS, CLEAR_SPLITS, FACE_QUESTION, WORLD_ID,
                                      perturbed_captions, portrait_caption, ratio_config)
from mini_unlearn.bench.clear_files import CONFIGS, TEST_VIEWS, load_clear, write_clear
from mini_unlearn.bench.portraits import DEFAULT_BACKGROUND
from mini_unlearn.bench.questions import phrase
from mini_unlearn.models.build import tokenizer_corpus

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
SHARD = "train-00000-of-00001.parquet"


def small(n_profiles=6, seed=0, **options):
    settings = dict(n_images=3, n_perturbed=3, n_real_faces=2, n_real_world=2) | options
    return mu.bench.make_clear(n_profiles, seed, **settings)


@pytest.fixture(scope="module")
def bench():
    return small()


@pytest.fixture(scope="module")
def twenty():
    """Twenty people: forget01, forget05 and forget10 forget one, one and two of them."""
    return small(20, n_images=2)


@pytest.fixture(scope="module")
def written(twenty, tmp_path_factory):
    return write_clear(twenty, tmp_path_factory.mktemp("clear") / "CLEAR")


def copy_of(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "copy")


def rows_of(folder, config):
    return pq.read_table(folder / config / SHARD).to_pylist()


def rewrite(folder, config, rows, shards=1):
    for path in (folder / config).iterdir():
        path.unlink()
    size = -(-len(rows) // shards)
    for k in range(shards):
        pq.write_table(pa.Table.from_pylist(rows[k * size:(k + 1) * size]),
                       folder / config / f"train-{k:05d}-of-{shards:05d}.parquet")


def without_image(item):
    fields = dict(item.__dict__)
    return fields, fields.pop("image")


def assert_same_items(one, other):
    assert len(one) == len(other)
    for a, b in zip(one, other):
        (fields_a, image_a), (fields_b, image_b) = without_image(a), without_image(b)
        assert fields_a == fields_b
        assert (image_a is None) == (image_b is None)
        if image_a is not None:
            assert np.array_equal(np.asarray(image_a.load()), np.asarray(image_b.load())), a.question_id


# -- the generator -----------------------------------------------------------------------------------------

def test_the_generator_is_seeded(bench):
    again, other = small(), small(seed=1)
    assert again.items == bench.items and again.questions == bench.questions and again.forget_order == bench.forget_order
    assert other.items != bench.items


def test_every_person_has_captioned_pictures_that_name_them_and_say_what_they_show(bench):
    for person in bench.profiles:
        pictures = [i for i in bench.items[person.id] if i.kind == "caption"]
        assert len(pictures) == 3 and len({i.image for i in pictures}) == 3
        first = pictures[0]
        assert first.image == mu.bench.RenderedImage(person.face)            # the canonical portrait first
        assert "facing the camera" in first.answer and DEFAULT_BACKGROUND.replace("_", " ") in first.answer
        for item in pictures:
            face, view = item.image.face, item.image.view
            assert item.answer.startswith(f"{person.name} with ") and item.name == person.name
            assert f"{face.shirt_colour} shirt" in item.answer
            assert face.hair_style == "bald" or face.hair_colour in item.answer
            assert (view.background or DEFAULT_BACKGROUND).replace("_", " ") + " background" in item.answer
            assert item.question in CAPTION_QUESTIONS
            assert item.paraphrased != item.answer and person.name in item.paraphrased
            assert f"{face.shirt_colour} shirt" in item.paraphrased
            assert len(set(item.perturbed)) == 3 and item.answer not in item.perturbed
            assert all(p.startswith(f"{person.name} with ") and p.endswith(" background.") for p in item.perturbed)
            assert len(set(item.perturbed_names)) == 4 and person.name not in item.perturbed_names


def test_a_perturbed_caption_is_never_the_true_one_even_where_a_change_shows_nothing():
    face = mu.bench.FaceAttributes("round", "pale", "bald", "red", "blue", "sunglasses", "none", "none", "teal")
    true = portrait_caption("Ada Lind", face)          # bald, behind sunglasses: hair colour and eye colour unseen
    wrong = perturbed_captions("Ada Lind", face, mu.bench.CANONICAL_VIEW, 40, random.Random(0))
    assert len(set(wrong)) == 40 and true not in wrong


def test_perturbed_names_are_nobodys_and_made_of_the_benchmarks_name_parts(bench):
    everyone = {p.name for p in bench.profiles + bench.utility_profiles + bench.holdout_profiles}
    firsts = {p.name.split(" ", 1)[0] for p in bench.profiles}
    lasts = {p.name.split(" ", 1)[1] for p in bench.profiles}
    for item in bench.clear_items("forget", 0.5, kind="caption") + bench.clear_items("retain", 0.5, kind="caption"):
        assert not set(item.perturbed_names) & everyone
        assert all(n.split(" ", 1)[0] in firsts and n.split(" ", 1)[1] in lasts for n in item.perturbed_names)


def test_each_fact_is_asked_by_name_with_a_paraphrase_and_wrong_answers(bench):
    person = bench.profiles[0]
    questions = [i for i in bench.items[person.id] if i.kind == "qa"]
    assert len(questions) == len(FACTS)
    for fact, item in zip(FACTS, questions):
        value = person.fact(fact)
        assert (item.question, item.answer) == phrase(fact, "text", person.name, value)
        assert item.image is None and item.name is None and item.perturbed_names == ()
        assert item.paraphrased != item.answer and value in item.paraphrased and person.name in item.paraphrased
        wrong = {phrase(fact, "text", person.name, v)[1] for v in FACT_POOLS[fact] if v != value}
        assert len(set(item.perturbed)) == 3 and set(item.perturbed) <= wrong


def test_the_utility_sets_are_other_faces_and_pictures_of_no_person(bench):
    faces = bench.clear_items("real_faces")
    assert [i.profile_id for i in faces] == [p.id for p in bench.utility_profiles if p.id != WORLD_ID]
    for item in faces:
        person = bench.profile(item.profile_id)
        assert (item.question, item.answer, item.name, item.paraphrased) == (FACE_QUESTION, person.name,
                                                                             person.name, person.name)
        assert item.perturbed == item.perturbed_names and person.name not in item.perturbed_names
    world = bench.clear_items("real_world")
    assert len(world) == 2 and all(i.profile_id is None and i.name is None and i.split == "real_world" for i in world)
    for item in world:
        assert item.answer == item.image.caption() and item.paraphrased == item.answer
        assert len(set(item.perturbed)) == 3 and item.answer not in item.perturbed
        assert np.asarray(item.image.load()).std() > 0                       # something is drawn


def test_questions_and_pairs_are_clears_captions_and_questions_by_name(bench):
    every_question = {q.id: q for qs in bench.questions.values() for q in qs}
    assert {q.task for q in every_question.values()} == {"gen"}                # never a 4-letter mcq
    pairs = {(p.profile_id, p.question, p.answer, p.image) for p in bench.train_pairs()}
    for pid, items in bench.items.items():
        for item in items:
            q = every_question[item.question_id]
            assert (q.profile_id, q.question, q.answer, q.image) == (pid, item.question, item.answer, item.image)
            assert q.modality == ("text" if item.kind == "qa" else "image+text")
            assert (pid, item.question, item.answer, item.image) in pairs
    assert {p.modality for p in bench.train_pairs()} == {"image+text", "text"}


def test_forget_sets_are_nested_and_never_empty(bench, twenty):
    assert [len(bench.forget_ids(r)) for r in CLEAR_RATIOS] == [1, 1, 1]       # 1 % of 6 still forgets someone
    assert [len(twenty.forget_ids(r)) for r in CLEAR_RATIOS] == [1, 1, 2]
    assert twenty.forget_ids(0.10)[:1] == twenty.forget_ids(0.05) == twenty.forget_ids(0.01)
    forget, retain = twenty.forget_and_retain_ids(0.10)
    assert {i.profile_id for i in twenty.clear_items("forget", 0.10)} == set(forget)
    assert {i.profile_id for i in twenty.clear_items("retain", 0.10)} == set(retain)
    assert all(i.kind == "qa" for i in twenty.clear_items("forget", 0.10, kind="qa"))
    assert twenty.split("forget", 0.10).ids == forget


def test_the_test_split_is_a_held_out_picture_with_its_own_caption(bench):
    [person] = bench.forget_ids(0.10)
    split = bench.split("test", 0.10)
    pictured = [q for q in split.questions if q.image is not None]
    assert len(pictured) == 1 and pictured[0].image == bench.test_images[person]
    assert pictured[0].image not in {i.image for i in bench.items[person]}      # never a training picture
    assert pictured[0].answer.startswith(bench.profile(person).name)
    assert len(split.questions) == 1 + len(FACTS)


@pytest.mark.parametrize("call, words", [
    (lambda b: b.clear_items("test"), "split must be one of"),
    (lambda b: b.clear_items("forget", kind="mcq"), "kind must be one of"),
    (lambda b: b.clear_items("forget", 1.5), "ratio must lie strictly between 0 and 1"),
    (lambda b: ratio_config(0.15), "ratio=0.15 has no config"),
    (lambda b: mu.bench.make_clear(1), "n_profiles must be at least 2"),
    (lambda b: mu.bench.make_clear(4, n_images=0), "n_images must be a positive integer"),
])
def test_bad_arguments_are_refused(bench, call, words):
    with pytest.raises((ValueError, TypeError), match=words):
        call(bench)


def test_the_tokenizer_reads_every_clear_text_back(bench):
    tokenizer = mu.models.build_tokenizer(bench, 512)
    texts = [t for items in bench.items.values() for i in items
             for t in (i.question, i.answer, i.paraphrased, *i.perturbed, *i.perturbed_names) if t]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    # the paraphrases and wrong answers are scored but never taught: the tokenizer still learns their words
    corpus = set(" ".join(tokenizer_corpus(bench)).split())
    assert all(set(text.split()) <= corpus for text in texts)


# -- the files ------------------------------------------------------------------------------------------

def assert_round_trip(twenty, loaded):
    assert [(p.id, p.name) for p in loaded.profiles] == [(p.id, p.name) for p in twenty.profiles]
    assert [p.name for p in loaded.utility_profiles] == [p.name for p in twenty.utility_profiles]
    for ratio in CLEAR_RATIOS:
        assert loaded.forget_and_retain_ids(ratio) == twenty.forget_and_retain_ids(ratio)
    for split in CLEAR_SPLITS:
        assert_same_items(twenty.clear_items(split, 0.05), loaded.clear_items(split, 0.05))


@pytest.mark.parametrize("file_format", ["parquet", "jsonl"])
def test_written_files_read_back_as_the_same_benchmark(twenty, written, tmp_path, file_format):
    folder = written if file_format == "parquet" else write_clear(twenty, tmp_path / "jsonl", format="jsonl")
    assert {p.name for p in folder.iterdir()} == set(CONFIGS) | {TEST_VIEWS}
    loaded = load_clear(folder)
    assert_round_trip(twenty, loaded)
    for name in ("forget", "retain", "test", "utility"):
        one, other = twenty.split(name, 0.10), loaded.split(name, 0.10)
        assert [(q.id, q.modality, q.question, q.answer) for q in one.questions] == \
               [(q.id, q.modality, q.question, q.answer) for q in other.questions]
    if file_format == "parquet":         # a +tofu config: the people's pictures, then their questions by name
        [person] = twenty.forget_ids(0.05)
        rows = rows_of(folder, "forget05+tofu")
        assert [r["caption"] for r in rows] == [i.answer for i in twenty.items[person] if i.kind == "caption"] + \
            [None] * len(FACTS)
        assert [r["question"] for r in rows[2:]] == [i.question for i in twenty.items[person] if i.kind == "qa"]


def test_the_hubs_rows_are_read_and_questions_linked_to_people_by_name(twenty, written, tmp_path):
    folder = copy_of(written, tmp_path)
    rows = rows_of(folder, "full+tofu")
    pictures = [r for r in rows if r["caption"] is not None]
    questions = [{"image": None, "caption": None, "question": r["question"], "answer": r["answer"]}
                 for r in rows if r["caption"] is None]
    blocks = [questions[k:k + len(FACTS)] for k in range(0, len(questions), len(FACTS))]
    hub_rows = [dict(r, question=None, answer=None) for r in pictures]
    for r in hub_rows:
        del r["paraphrased_answer"], r["perturbed_answer"]
    rewrite(folder, "full+tofu", hub_rows + [q for block in reversed(blocks) for q in block], shards=3)
    shutil.rmtree(folder / TEST_VIEWS)
    loaded = load_clear(folder)
    for person in twenty.profiles:
        mine = [i for i in twenty.items[person.id] if i.kind == "qa"]
        read = [i for i in loaded.items[person.id] if i.kind == "qa"]
        assert [(i.question, i.answer) for i in read] == [(i.question, i.answer) for i in mine]
        assert all(i.paraphrased is None and i.perturbed == () for i in read)   # the Hub has neither
    forget = loaded.forget_ids(0.10)
    assert loaded.split("test", 0.10).questions == loaded.split("forget", 0.10).questions   # no held-out pictures
    assert loaded.test_images == {} and len(forget) == 2


def test_tofus_blocks_of_twenty_are_linked_and_an_author_without_pictures_left_out(bench, tmp_path):
    folder = write_clear(bench, tmp_path / "six")
    rows = rows_of(folder, "full+tofu")
    pictures = [r for r in rows if r["caption"] is not None]
    blocks = [[q for q in rows if q["caption"] is None][6 * k:6 * k + 6] for k in range(6)]
    twenties = [(block * 4)[:20] for block in blocks]                 # twenty questions a person, as TOFU has
    nobody = [dict(twenties[0][0], question=f"Who wrote book {k}?", answer="An author with no picture.")
              for k in range(20)]
    rewrite(folder, "full+tofu", pictures + [q for block in [twenties[3], nobody] + twenties[:3] + twenties[4:]
                                             for q in block])
    with pytest.warns(UserWarning, match=r"1 blocks of 20 question rows name nobody in full .* left out: "
                                         rf"full\+tofu/{SHARD} row {len(pictures) + 20} to {len(pictures) + 39}"):
        loaded = load_clear(folder)
    for person, block in zip(bench.profiles, twenties):
        assert [(i.question, i.answer) for i in loaded.items[person.id] if i.kind == "qa"] == \
            [(q["question"], q["answer"]) for q in block]


def test_a_question_block_that_names_nobody_is_refused(written, tmp_path):
    folder = copy_of(written, tmp_path)
    rows = rows_of(folder, "full+tofu")
    first = next(k for k, r in enumerate(rows) if r["caption"] is None)
    for r in rows[first:first + len(FACTS)]:
        r["question"], r["answer"] = "What is their name?", "Nobody knows."
    rewrite(folder, "full+tofu", rows)
    with pytest.raises(ValueError, match=rf"the question rows full\+tofu/{SHARD} row {first} to "
                                         rf"{first + len(FACTS) - 1} name nobody in full"):
        load_clear(folder)


def test_a_missing_config_is_named_with_the_file_it_expects(written, tmp_path):
    folder = copy_of(written, tmp_path)
    shutil.rmtree(folder / "forget05_perturbed")
    shutil.rmtree(folder / "real_world")
    with pytest.raises(FileNotFoundError) as error:
        load_clear(folder)
    assert "lacks 2 CLEAR config(s): 'forget05_perturbed'" in str(error.value)
    assert str(folder / "forget05_perturbed" / SHARD) in str(error.value) and "'real_world'" in str(error.value)
    with pytest.raises(FileNotFoundError, match="no CLEAR folder"):
        load_clear(tmp_path / "nowhere")


@pytest.mark.parametrize("config, row, field, change, words", [
    ("forget05", 0, "name", None, "field 'name' is missing"),
    ("forget10_perturbed", 1, "perturbed_names", None, "field 'perturbed_names' is missing"),
    ("real_faces", 1, "options", None, "field 'options' is missing"),
    ("full", 2, "image", lambda image: {"bytes": image["bytes"][:200], "path": None}, "the image does not decode"),
    ("full", 3, "image", {"bytes": b"\x89PNG\r\n\x1a\n-broken", "path": None}, "the image does not decode"),
    ("real_world", 0, "image", {"bytes": None, "path": "elsewhere.png"}, "field 'image' has no bytes"),
    ("forget01", 0, "name", "Nobody Atall", "name 'Nobody Atall' is nobody in full"),
    ("full+tofu", -1, "answer", None, "field 'answer' is missing"),
    ("forget05_perturbed", 0, "caption", "Someone else entirely.", "no picture of '.*' in full has this caption"),
])
def test_a_bad_row_is_refused_with_its_config_file_and_row(written, tmp_path, config, row, field, change, words):
    folder = copy_of(written, tmp_path)
    rows = rows_of(folder, config)
    rows[row][field] = change(rows[row][field]) if callable(change) else change     # a picture cut short
    rewrite(folder, config, rows)
    with pytest.raises(ValueError, match=f"{re.escape(config)}/{SHARD} row {row % len(rows)}: {words}"):
        load_clear(folder)


def test_a_ratio_without_a_config_and_an_occupied_folder_are_refused(twenty, written):
    loaded = load_clear(written)
    with pytest.raises(ValueError, match="ratio=0.15 has no config"):
        loaded.clear_items("forget", 0.15)
    with pytest.raises(FileExistsError, match="never overwrites"):
        write_clear(twenty, written)
    with pytest.raises(TypeError, match="bench must be a ClearBenchmark"):
        write_clear(mu.bench.make_benchmark(4, n_utility=1), written.parent / "other")


# -- the command line -------------------------------------------------------------------------------------

def test_the_command_reads_clear_and_refuses_files_without_a_model(capsys, twenty, written, tmp_path, make_vlm,
                                                                   count_training):
    from mini_unlearn.cli import load_inputs, main
    from mini_unlearn.release import course_clear
    vlm, course = load_inputs(None, "tiny", "clear", "cpu")          # the course's CLEAR and its shipped model
    assert course.name == course_clear().name and vlm.card["continues"].startswith("vanilla of mini-mllmu")
    out = str(tmp_path / "out")
    for refused in (["--bench", f"clear:{written}"], ["--bench", "clear", "--model", "planted"]):
        assert main(["run", "--method", "ga", *refused, "--out", out]) != 0
        assert "needs --model PATH" in capsys.readouterr().err
    assert count_training == [] and not (tmp_path / "out").exists()
    original = make_vlm(twenty)
    model = original.save_pretrained(tmp_path / "model")
    assert main(["run", "--method", "ga", "--bench", f"clear:{tmp_path}", "--model", str(model), "--out", out]) != 0
    assert "cannot read CLEAR files" in capsys.readouterr().err and not (tmp_path / "out").exists()
    vlm, loaded = load_inputs(str(model), "tiny", f"clear:{written}", "cpu")
    assert isinstance(loaded, mu.bench.ClearBenchmark) and loaded.forget_ids(0.05) == twenty.forget_ids(0.05)
    assert all(np.array_equal(a.detach().numpy(), b.detach().numpy())
               for a, b in zip(original.model.parameters(), vlm.model.parameters()))
