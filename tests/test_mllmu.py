"""mini_unlearn.bench.mllmu: the real MLLMU-Bench schema, read from a hand-written fixture and round-tripped."""
import base64
import json
import shutil
import sys
from pathlib import Path

import pytest

from mini_unlearn.bench import IMAGE_TEXT, PAPER_RATIOS, TEXT_ONLY, RenderedImage, make_benchmark
from mini_unlearn.bench.images import EncodedImage
from mini_unlearn.bench.mllmu import (CELEBRITY_PREFIX, FULL_SET, _read_config, load_mllmu, ratio_configs,
                                      write_mllmu)

FIXTURE = Path(__file__).parent / "fixtures" / "mllmu"


# ==== the hand-written fixture (real-looking rows, independent of our writer) ============================
@pytest.fixture(scope="module")
def real():
    return load_mllmu(FIXTURE)


def test_fixture_people_names_and_biography_keys(real):
    assert [p.id for p in real.profiles] == ["001", "002", "003"]
    assert [p.name for p in real.profiles] == ["Elara Quinnworth", "Tobias Renfield", "Mireille Okonkwo-Hale"]
    elara = real.profile("001")
    assert elara.face is None and elara.kind == "fictitious"
    assert list(elara.facts)[:3] == ["Born", "Nationality", "Occupation"]
    assert elara.fact("Occupation") == "Marine Biologist"
    assert json.loads(elara.fact("appearance_detail"))["answer"] == "Dark brown"   # nested values kept as JSON text
    assert elara.biography().startswith("Elara Quinnworth. Born: April 3, 1982, Lisbon, Portugal. Nationality:")


def test_fixture_questions_tasks_modalities_and_answers(real):
    questions = real.questions["001"]
    counts = {(t, m): sum(q.task == t and q.modality == m for q in questions)
              for t in ("mcq", "gen", "cloze") for m in (IMAGE_TEXT, TEXT_ONLY)}
    assert counts == {("mcq", IMAGE_TEXT): 2, ("mcq", TEXT_ONLY): 2, ("gen", IMAGE_TEXT): 1, ("gen", TEXT_ONLY): 1,
                      ("cloze", IMAGE_TEXT): 1, ("cloze", TEXT_ONLY): 1}
    first = questions[0]
    assert first.question == "What is the occupation of the person in the image?"
    assert first.correct == "B" and first.answer == "Marine Biologist" and list(first.options) == ["A", "B", "C", "D"]
    assert first.fact == "q1" and first.id == "001-image+text-q1-mcq"
    cloze = next(q for q in questions if q.task == "cloze" and q.modality == TEXT_ONLY)
    assert "__" in cloze.question and cloze.answer == "coral reefs" and cloze.image is None
    assert len({q.id for q in questions}) == len(questions)
    for q in questions:
        if q.modality == IMAGE_TEXT:
            assert isinstance(q.image, EncodedImage) and q.image.load().size == (4, 4)
        else:
            assert q.image is None


def test_fixture_splits_forget_sets_and_celebrity(real):
    assert real.forget_ids(0.05) == ["002"] and real.forget_ids(0.10) == ["002"]
    assert real.forget_ids(0.15) == ["002", "003"]
    assert real.split("retain", 0.15).ids == ["001"]
    utility = real.split("utility")
    assert utility.ids == [CELEBRITY_PREFIX + "001"]          # Retain_Set's "001" clashes with Full_Set's
    marie = real.profile("celebrity-001")
    assert marie.name == "Marie Curie" and marie.kind == "utility"
    assert {q.profile_id for q in utility.questions} == {"celebrity-001"} and len(utility.questions) == 6
    assert real.profile("001").name == "Elara Quinnworth"


def test_fixture_training_pairs_get_the_image(real):
    pairs = real.pairs["001"]
    assert pairs[0].answer == "The person in the image is Elara Quinnworth."
    assert len(pairs) == 3 and all(p.modality == IMAGE_TEXT and p.image is not None for p in pairs)
    assert real.pairs["celebrity-001"] == []
    assert len(real.train_pairs()) == 3 + 2 + 2


def test_fixture_test_images_are_seeded_choices_from_test_set(real):
    test = real.split("test", 0.15)
    rows = {r["ID"]: r for r in _read_config(FIXTURE, "Test_Set")}
    for q in test.select(modality=IMAGE_TEXT):
        candidates = [EncodedImage(base64.b64decode(i["bytes"])) for i in rows[q.profile_id]["images"]]
        assert q.image in candidates
    assert load_mllmu(FIXTURE, seed=0).test_images == real.test_images
    picks = {tuple(sorted((k, v.data) for k, v in load_mllmu(FIXTURE, seed=s).test_images.items())) for s in range(8)}
    assert len(picks) > 1                                     # the seed matters


# ==== round trip of a generated benchmark =================================================================
@pytest.fixture(scope="module")
def generated():
    return make_benchmark(n_profiles=20, seed=3, n_utility=3)


@pytest.fixture(scope="module", params=["parquet", "jsonl"])
def round_trip(request, generated, tmp_path_factory):
    if request.param == "parquet":
        pytest.importorskip("pyarrow")
    directory = write_mllmu(generated, tmp_path_factory.mktemp(request.param) / "mllmu", format=request.param)
    return directory, load_mllmu(directory)


def _question_view(questions):
    return {q.id: (q.question, q.answer, q.options, q.correct, q.modality, q.task, q.fact, q.image is None)
            for q in questions}


def test_layout_is_the_hubs(round_trip):
    directory, _ = round_trip
    expected = {"Full_Set", "Test_Set", "Retain_Set", "ft_Data", "forget_5", "forget_10", "forget_15",
                "retain_95", "retain_90", "retain_85", "Holdout_Set", "Holdout_ft_Data"}   # the last two are ours
    assert {p.name for p in directory.iterdir()} == expected
    files = {p.name for p in directory.glob("*/*")}
    assert files in ({"train-00000-of-00001.parquet"}, {"train.jsonl"})


def test_round_trip_people_questions_and_splits(generated, round_trip):
    _, loaded = round_trip
    for ours, theirs in ((generated.profiles, loaded.profiles), (generated.utility_profiles, loaded.utility_profiles),
                         (generated.holdout_profiles, loaded.holdout_profiles)):
        assert [(p.id, p.name, p.facts, p.kind) for p in ours] == [(p.id, p.name, p.facts, p.kind) for p in theirs]
    assert [p.kind for p in loaded.holdout_profiles] == ["holdout"] * 3
    for p in generated.profiles + generated.utility_profiles + generated.holdout_profiles:
        assert _question_view(loaded.questions[p.id]) == _question_view(generated.questions[p.id])
        assert ([(x.question, x.answer, x.modality, x.fact) for x in loaded.pairs[p.id]]
                == [(x.question, x.answer, x.modality, x.fact) for x in generated.pairs[p.id]])
    for ratio in PAPER_RATIOS:
        assert loaded.forget_ids(ratio) == generated.forget_ids(ratio) and len(loaded.forget_ids(ratio)) >= 1
        assert loaded.split("retain", ratio).ids == generated.split("retain", ratio).ids
        assert loaded.split("forget", ratio).ids == generated.split("forget", ratio).ids
        assert loaded.split("holdout", ratio).ids == generated.split("holdout", ratio).ids
    assert not {pair.profile_id for pair in loaded.train_pairs()} & {p.id for p in loaded.holdout_profiles}
    assert loaded.profile("001").biography() == generated.profile("001").biography()


def test_round_trip_images_are_pixel_identical(generated, round_trip):
    directory, loaded = round_trip
    for p in generated.profiles[:4] + generated.utility_profiles[:1]:
        canonical = RenderedImage(p.face).load().tobytes()
        image_question = next(q for q in loaded.questions[p.id] if q.image is not None)
        assert image_question.image.load().tobytes() == canonical
        assert next(x for x in loaded.pairs[p.id] if x.image is not None).image.load().tobytes() == canonical
    # Test_Set holds the benchmark's chosen view among the test views; the loader picks one of them
    rows = {r["ID"]: r for r in _read_config(directory, "Test_Set", columns=["ID", "images"])}
    person = generated.forget_ids(0.05)[0]
    chosen = generated.test_images[person].load().tobytes()
    written = [EncodedImage(_bytes(i)).load().tobytes() for i in rows[person]["images"]]
    assert chosen in written and len(written) >= 3
    assert loaded.test_images[person].load().tobytes() in written


def _bytes(image_field):
    data = image_field["bytes"]
    return base64.b64decode(data) if isinstance(data, str) else data


def test_writing_a_loaded_benchmark_again_gives_the_same_benchmark(round_trip, tmp_path):
    _, loaded = round_trip
    again = load_mllmu(write_mllmu(loaded, tmp_path / "again", format="jsonl"))
    assert [p.name for p in again.profiles] == [p.name for p in loaded.profiles]
    assert {k: _question_view(v) for k, v in again.questions.items()} == \
        {k: _question_view(v) for k, v in loaded.questions.items()}
    assert again.test_images == loaded.test_images


# ==== refusals and errors ====================================================================================
def test_refuses_to_overwrite_a_non_empty_directory(generated, tmp_path):
    (tmp_path / "notes.txt").write_text("my data")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_mllmu(generated, tmp_path, format="jsonl")
    write_mllmu(generated, tmp_path, format="jsonl", overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "my data"        # only config folders are replaced
    (tmp_path / "forget_20").mkdir()                                  # a stale config from an earlier write
    write_mllmu(generated, tmp_path, format="jsonl", overwrite=True)
    assert not (tmp_path / "forget_20").exists()


def test_bad_arguments(generated, tmp_path):
    with pytest.raises(ValueError, match="format"):
        write_mllmu(generated, tmp_path / "x", format="csv")
    with pytest.raises(ValueError, match="whole percent"):
        write_mllmu(generated, tmp_path / "x", ratios=(0.125,), format="jsonl")
    assert ratio_configs(0.05) == ("forget_5", "retain_95")
    assert not (tmp_path / "x").exists()                              # nothing written before the check


def test_missing_full_set_names_the_directory_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Full_Set.*train-00000-of-00001\.parquet") as error:
        load_mllmu(tmp_path)
    assert str(tmp_path) in str(error.value)


def _broken_fixture(tmp_path, config, change):
    copy = tmp_path / "mllmu"
    shutil.copytree(FIXTURE, copy)
    path = copy / config / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    change(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return copy


@pytest.mark.parametrize("config, change, field", [
    (FULL_SET, lambda rows: rows[1].pop("Mask_Task"), "'Mask_Task'"),
    (FULL_SET, lambda rows: rows[1].update(biography=json.dumps({"Born": "1975"})), "'biography.Name'"),
    (FULL_SET, lambda rows: rows[1]["Classification_Task"]["Pure_Text_Questions"][1].pop("Correct_Answer"),
     r"'Classification_Task\.Pure_Text_Questions\[1\]\.Correct_Answer'"),
    (FULL_SET, lambda rows: rows[1]["Generation_Task"][0].update(Type="Video"), r"'Generation_Task\[0\]\.Type'"),
    (FULL_SET, lambda rows: rows[1].pop("image"), "'image'"),
    ("ft_Data", lambda rows: rows[1].update(metadata=json.dumps([{"Question": "Who?"}])), r"'metadata\[0\]\.Answer'"),
    ("Test_Set", lambda rows: rows[1].update(images=[]), "'images'"),
])
def test_rows_missing_fields_name_config_id_and_field(tmp_path, config, change, field):
    with pytest.raises(ValueError, match=rf"{config} row ID='002'.*{field}"):
        load_mllmu(_broken_fixture(tmp_path, config, change))


def test_parquet_without_pyarrow_says_how_to_install(generated, tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    directory = write_mllmu(generated, tmp_path / "p", format="parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)                  # import pyarrow now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        load_mllmu(directory)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        write_mllmu(generated, tmp_path / "q", format="parquet")


def test_a_retain_config_that_disagrees_with_full_set_warns(tmp_path):
    broken = _broken_fixture(tmp_path, "retain_95", lambda rows: rows.pop())
    with pytest.warns(UserWarning, match="retain_95 is not Full_Set minus its forget set"):
        bench = load_mllmu(broken)
    assert bench.split("retain", 0.05).ids == ["001", "003"]          # Full_Set minus forget_5 all the same
