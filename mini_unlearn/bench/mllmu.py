"""Read and write the real MLLMU-Bench files (Hugging Face ``MLLMMU/MLLMU-Bench``).

:func:`write_mllmu` writes a :class:`~mini_unlearn.bench.benchmark.Benchmark` in MLLMU-Bench's schema
and :func:`load_mllmu` reads files in that schema (ours or the real ones) back into a ``Benchmark``, so
the same ``split("forget", 0.05)`` API serves the real benchmark, and our generated one can be fed to
MLLMU-Bench's own scripts.

Layout: one folder per Hugging Face config, each holding the rows of its ``train`` split::

    {directory}/{config}/train-00000-of-00001.parquet   format="parquet", as on the Hub (the real
                                                        Test_Set has two shards: every *.parquet is read)
    {directory}/{config}/train.jsonl                    format="jsonl": one JSON object a line, every
                                                        image's bytes base64-encoded: {"bytes": "<base64>"}

The configs (MLLMU-Bench name → our name):

==========================  ==========================================================================
``Full_Set``                every fictitious person (``bench.profiles``); the only config required
``forget_5/10/15``          the people to forget at 5/10/15 % (``bench.forget_ids(0.05)`` …)
``retain_95/90/85``         the other fictitious people (the ``retain`` split)
``Test_Set``                the fictitious people again, ``images`` = several transformed portraits
``Retain_Set``              MLLMU-Bench's real celebrities = our ``utility`` people (not the retain split!)
``ft_Data``                 the fine-tuning pairs (``bench.pairs``): ``image``, ``ID``, ``metadata``
``Holdout_Set``             ours, not MLLMU-Bench's: people no model trained on (the ``holdout`` split
                            of chapter 09's attacks), rows as in Full_Set
``Holdout_ft_Data``         ours: the holdout people's pairs, rows as in ft_Data, kept out of ft_Data so
                            MLLMU-Bench's ``finetune.py`` never trains on them
==========================  ==========================================================================

One evaluation row (Full_Set, forget_*, retain_*, Retain_Set; Test_Set has ``images``, a list, instead
of ``image``)::

    {"ID": "001",                                        zero-padded string
     "image": {"bytes": <PNG or JPEG bytes>},
     "biography": '{"Name": "Ada Lind", "Born": "…", …}',  a JSON string with at least Name
     "Classification_Task": {
         "Image_Textual_Questions": [{"Question": "…the person in the image…?",
                                      "Options": {"A": "…", "B": "…", "C": "…", "D": "…"},
                                      "Correct_Answer": "C"}, …],
         "Pure_Text_Questions": [… the same, naming the person …]},
     "Generation_Task": [{"Question": "…", "Ground_Truth": "…", "Type": "Image_Textual" | "Pure_Text"}, …],
     "Mask_Task": [{"Question": "… __ …", "Ground_Truth": "<the blank>", "Type": …}, …]}

An ``ft_Data`` row: ``{"ID": "001", "image": {"bytes": …}, "metadata": '[{"Question": …, "Answer": …}, …]'}``
(``metadata`` is a JSON string).

How the schema maps onto ours: the biography's ``Name`` is :attr:`Profile.name` and its other keys
are the facts; ``Image_Textual`` is the ``"image+text"`` modality and ``Pure_Text`` is ``"text"``;
Classification_Task holds the ``mcq`` questions, Generation_Task the ``gen`` ones and Mask_Task the
``cloze`` ones.

Two extra keys that MLLMU-Bench's code ignores keep our benchmark whole through a round trip: every
question item carries ``"Fact"`` (which fact it asks), and every ft_Data pair carries ``"Type"`` and
``"Fact"``. The real files lack them. :func:`load_mllmu` then names a question's fact by its position
(``q1``, ``q2``, … within its task and modality) and gives every training pair the image, as
MLLMU-Bench's ``finetune.py`` does.
"""
from __future__ import annotations

import base64
import binascii
import json
import random
import re
import shutil
import warnings
from collections import Counter
from pathlib import Path

from .. import validate
from .benchmark import Benchmark
from .images import EncodedImage, ImageRef, RenderedImage, encode_png
from .portraits import test_views
from .profiles import Profile
from .questions import IMAGE_TEXT, MODALITIES, TEXT_ONLY, QAPair, Question
from .splits import PAPER_RATIOS, require_ratio

FULL_SET, TEST_SET, CELEBRITIES, FT_DATA = "Full_Set", "Test_Set", "Retain_Set", "ft_Data"
HOLDOUT_SET, HOLDOUT_FT = "Holdout_Set", "Holdout_ft_Data"      # ours: people no model is trained on
FORMATS: tuple[str, ...] = ("parquet", "jsonl")
PARQUET_FILE = "train-00000-of-00001.parquet"
JSONL_FILE = "train.jsonl"

TYPES = {IMAGE_TEXT: "Image_Textual", TEXT_ONLY: "Pure_Text"}        # our modality -> MLLMU-Bench "Type"
MODALITY_OF_TYPE = {mllmu: ours for ours, mllmu in TYPES.items()}
MCQ_FIELDS = {IMAGE_TEXT: "Image_Textual_Questions", TEXT_ONLY: "Pure_Text_Questions"}
OPEN_TASK_FIELDS = {"gen": "Generation_Task", "cloze": "Mask_Task"}  # task -> row field
CELEBRITY_PREFIX = "celebrity-"   # given to a Retain_Set ID that a Full_Set person already has
HOLDOUT_PREFIX = "holdout-"       # given to a Holdout_Set ID that someone else already has

_RATIO_CONFIG = re.compile(r"(forget|retain)_(\d+)")
_EXPECTED_LAYOUT = f"{{directory}}/{FULL_SET}/{PARQUET_FILE} (or {FULL_SET}/{JSONL_FILE}), one folder per config"


# ==== names ==========================================================================================
def ratio_configs(ratio: float) -> tuple[str, str]:
    """The forget and retain config names of a ratio: ``0.05 -> ("forget_5", "retain_95")``.

    MLLMU-Bench names its splits by whole percent, so the ratio must be a whole number of percent.
    """
    ratio = require_ratio(ratio)
    percent = round(ratio * 100)
    if abs(percent - ratio * 100) > 1e-6:
        raise ValueError(f"MLLMU-Bench names splits by whole percent (forget_5, forget_10, …); "
                         f"ratio={ratio} is not a whole number of percent")
    return f"forget_{percent}", f"retain_{100 - percent}"


def _is_config_name(name: str) -> bool:
    return name in (FULL_SET, TEST_SET, CELEBRITIES, FT_DATA, HOLDOUT_SET, HOLDOUT_FT) or _RATIO_CONFIG.fullmatch(name) is not None


# ==== writing ========================================================================================
def write_mllmu(bench: Benchmark, directory, ratios=PAPER_RATIOS, format: str = "parquet", *,
                overwrite: bool = False, n_test_views: int = 3) -> Path:
    """Write ``bench`` as MLLMU-Bench files under ``directory``; return the directory as a Path.

    ``format="parquet"`` writes the Hub's layout (``{config}/train-00000-of-00001.parquet``, needs
    pyarrow); ``format="jsonl"`` writes ``{config}/train.jsonl``, one row a line, with every image as
    ``{"bytes": "<base64 of the PNG>"}`` (readable with no extra package). ``ratios`` names the
    forget/retain configs (0.05 -> forget_5 and retain_95). Test_Set holds, for every fictitious person,
    ``n_test_views`` views from :func:`~mini_unlearn.bench.portraits.test_views` plus the view the
    benchmark's test split uses. Images are PNG (:func:`~mini_unlearn.bench.images.encode_png`).

    A directory that exists and is not empty is refused (a FileExistsError) unless ``overwrite=True``,
    which replaces the MLLMU-Bench config folders in it and leaves anything else there alone.
    """
    validate.one_of(format, "format", FORMATS)
    if format == "parquet":
        _pyarrow()  # fail before anything is written
    configs = _config_rows(bench, ratios, n_test_views)
    directory = _prepare_directory(Path(directory), overwrite)
    for name, rows in configs.items():
        folder = directory / name
        folder.mkdir()
        if format == "parquet":
            _write_parquet(rows, folder / PARQUET_FILE)
        else:
            _write_jsonl(rows, folder / JSONL_FILE)
    return directory


def _prepare_directory(directory: Path, overwrite: bool, *, writer: str = "write_mllmu",
                       benchmark: str = "MLLMU-Bench", is_config=None) -> Path:
    """``directory`` made ready for ``writer``: new or empty, or (``overwrite``) emptied of its config folders."""
    is_config = is_config or _is_config_name
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{directory} is not empty; {writer} never overwrites existing files. "
                                  f"Choose a new or empty directory, or pass overwrite=True to replace the "
                                  f"{benchmark} config folders in it")
        for child in directory.iterdir():
            if child.is_dir() and is_config(child.name):
                shutil.rmtree(child)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _config_rows(bench: Benchmark, ratios, n_test_views: int) -> dict[str, list[dict]]:
    """Every config's rows, built in memory before anything touches the disk."""
    encode = _ImageEncoder()
    rows = {p.id: _eval_row(p, bench.questions[p.id], encode(_portrait(bench, p))) for p in bench.profiles}
    configs = {FULL_SET: [rows[p.id] for p in bench.profiles]}
    for ratio in ratios:
        forget_name, retain_name = ratio_configs(ratio)
        forget = bench.forget_ids(ratio)
        configs[forget_name] = [rows[i] for i in forget]
        configs[retain_name] = [rows[p.id] for p in bench.profiles if p.id not in set(forget)]
    configs[TEST_SET] = [_test_row(rows[p.id], [encode(i) for i in _test_pictures(bench, p, n_test_views)])
                         for p in bench.profiles if p.id in bench.test_images]
    configs[CELEBRITIES] = [_eval_row(p, bench.questions[p.id], encode(_portrait(bench, p)))
                            for p in bench.utility_profiles]
    configs[FT_DATA] = [_ft_row(p, bench.pairs[p.id], encode(_portrait(bench, p)))
                        for p in bench.profiles + bench.utility_profiles if bench.pairs.get(p.id)]
    if bench.holdout_profiles:
        configs[HOLDOUT_SET] = [_eval_row(p, bench.questions[p.id], encode(_portrait(bench, p)))
                                for p in bench.holdout_profiles]
        configs[HOLDOUT_FT] = [_ft_row(p, bench.pairs[p.id], encode(_portrait(bench, p)))
                               for p in bench.holdout_profiles if bench.pairs.get(p.id)]
    return configs


class _ImageEncoder:
    """PNG bytes of an image reference, each picture encoded once (stored bytes are kept as they are)."""

    def __init__(self):
        self._cache: dict[ImageRef, bytes] = {}

    def __call__(self, image: ImageRef) -> bytes:
        if isinstance(image, EncodedImage):
            return image.data
        if image not in self._cache:
            self._cache[image] = encode_png(image.load())
        return self._cache[image]


def _portrait(bench: Benchmark, profile: Profile) -> ImageRef:
    """A person's one picture (an MLLMU-Bench row holds one): the image of their questions and pairs."""
    pictures = {q.image for q in bench.questions.get(profile.id, []) if q.image is not None}
    pictures |= {pair.image for pair in bench.pairs.get(profile.id, []) if pair.image is not None}
    if not pictures and profile.face is not None:
        return RenderedImage(profile.face)
    if len(pictures) != 1:
        raise ValueError(f"profile {profile.id} has {len(pictures)} different pictures in its questions and "
                         f"pairs; an MLLMU-Bench row holds exactly one image per person")
    return pictures.pop()


def _test_pictures(bench: Benchmark, profile: Profile, n_views: int) -> list[ImageRef]:
    """The transformed views of a person for Test_Set: ``test_views`` plus the one the test split uses."""
    chosen = bench.test_images[profile.id]
    if profile.face is None:           # a loaded benchmark: only the chosen picture is known
        return [chosen]
    pictures = [RenderedImage(profile.face, view) for view in test_views(profile.face, n_views)]
    return pictures if chosen in pictures else pictures + [chosen]


def _image_field(data: bytes) -> dict:
    return {"bytes": data}


def _eval_row(profile: Profile, questions: list[Question], image: bytes) -> dict:
    """One evaluation row: ID, image, biography and the three tasks."""
    return {
        "ID": profile.id,
        "image": _image_field(image),
        "biography": json.dumps({"Name": profile.name, **profile.facts}, ensure_ascii=False),
        "Classification_Task": {
            MCQ_FIELDS[m]: [_mcq_item(q) for q in questions if q.task == "mcq" and q.modality == m]
            for m in MODALITIES
        },
        **{field: [_open_item(q) for q in questions if q.task == task] for task, field in OPEN_TASK_FIELDS.items()},
    }


def _mcq_item(q: Question) -> dict:
    return {"Question": q.question, "Options": dict(q.options), "Correct_Answer": q.correct, "Fact": q.fact}


def _open_item(q: Question) -> dict:
    return {"Question": q.question, "Ground_Truth": q.answer, "Type": TYPES[q.modality], "Fact": q.fact}


def _test_row(eval_row: dict, images: list[bytes]) -> dict:
    """A Test_Set row: the evaluation row with ``images`` (several pictures) in place of ``image``."""
    row = {"ID": eval_row["ID"], "images": [_image_field(data) for data in images]}
    row.update((key, value) for key, value in eval_row.items() if key not in ("ID", "image"))
    return row


def _ft_row(profile: Profile, pairs: list[QAPair], image: bytes) -> dict:
    metadata = [{"Question": p.question, "Answer": p.answer, "Type": TYPES[p.modality], "Fact": p.fact}
                for p in pairs]
    return {"image": _image_field(image), "ID": profile.id, "metadata": json.dumps(metadata, ensure_ascii=False)}


def _write_parquet(rows: list[dict], path: Path) -> None:
    pa, pq = _pyarrow()
    pq.write_table(pa.Table.from_pylist(rows), path)


def _write_jsonl(rows: list[dict], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(_base64_bytes(row), ensure_ascii=False) + "\n" for row in rows)


def _base64_bytes(value):
    """``value`` with every ``bytes`` replaced by its base64 text (JSON has no bytes)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {key: _base64_bytes(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_base64_bytes(v) for v in value]
    return value


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise ImportError("MLLMU-Bench parquet files need pyarrow: pip install pyarrow "
                          "(or use format='jsonl', which needs nothing extra)") from error
    return pyarrow, pyarrow.parquet


# ==== reading ========================================================================================
def load_mllmu(directory, seed: int = 0) -> Benchmark:
    """A :class:`Benchmark` read from MLLMU-Bench files (parquet or jsonl; see the module docstring).

    * people: ``Full_Set`` (required) gives the fictitious profiles and their questions; ``Retain_Set``
      the utility people (a Retain_Set ID that a Full_Set person has becomes ``celebrity-{ID}``);
    * training pairs: ``ft_Data``;
    * holdout people (ours, optional): ``Holdout_Set`` and their pairs ``Holdout_ft_Data`` (an ID that
      a Full_Set or Retain_Set person has becomes ``holdout-{ID}``);
    * forget sets: every ``forget_N`` config (``forget_5`` -> ``bench.forget_ids(0.05)``). Other ratios
      take the people of the forget sets, smallest first, then the rest in Full_Set order. The retain
      split is Full_Set minus the forget set; a ``retain_M`` config that disagrees gives a warning;
    * test images: ``Test_Set`` rows hold several pictures per person; one is picked per person with
      ``random.Random(f"{seed}/{ID}")``. MLLMU-Bench's eval.py calls an unseeded ``random.choice`` at
      evaluation time, so its test scores change from run to run; ours are fixed by ``seed``.

    Without Retain_Set, ft_Data or Test_Set the benchmark has no utility people, no training pairs or
    no test pictures (``split("test")`` then fails). Loaded profiles have ``face=None``: their pictures
    are :class:`~mini_unlearn.bench.images.EncodedImage` bytes.

    Raises FileNotFoundError when there is no Full_Set, ValueError naming the config, row ID and field
    when a row breaks the schema, and ImportError (``pip install pyarrow``) for parquet without pyarrow.
    """
    seed = validate.seed(seed)
    directory = Path(directory)
    full_set = _read_config(directory, FULL_SET)
    if full_set is None:
        raise FileNotFoundError(f"no MLLMU-Bench {FULL_SET} in {directory}: expected {_EXPECTED_LAYOUT}")
    profiles, questions = _read_people(full_set, FULL_SET, {}, kind="fictitious")
    utility, utility_questions, owners = _read_celebrities(directory, {p.id for p in profiles})
    questions.update(utility_questions)
    pairs = _read_pairs(_read_config(directory, FT_DATA) or [], owners, profiles + utility)
    holdout, holdout_questions, holdout_pairs = _read_holdout(directory, set(questions))
    questions.update(holdout_questions)
    pairs.update(holdout_pairs)
    forget_sets = _read_forget_sets(directory, [p.id for p in profiles])
    test_images = _pick_test_images(_read_config(directory, TEST_SET, columns=["ID", "images"]) or [],
                                    {p.id for p in profiles}, seed)
    return Benchmark(f"MLLMU-Bench files in {directory.name}", profiles, utility, questions, pairs, test_images,
                     _forget_order(profiles, forget_sets), forget_sets, holdout)


def _read_celebrities(directory: Path, fictitious_ids: set[str]):
    """Retain_Set's people and questions, and who each ft_Data ID belongs to (Full_Set IDs win)."""
    owners = {i: i for i in fictitious_ids}
    rows = _read_config(directory, CELEBRITIES)
    if rows is None:
        return [], {}, owners
    source_ids = [_row_id(row, CELEBRITIES, i) for i, row in enumerate(rows)]
    rename = {i: CELEBRITY_PREFIX + i if i in fictitious_ids else i for i in source_ids}
    utility, questions = _read_people(rows, CELEBRITIES, rename, kind="utility")
    return utility, questions, {**rename, **owners}


def _read_holdout(directory: Path, known_ids: set[str]):
    """Holdout_Set's people and questions, and their pairs from Holdout_ft_Data."""
    rows = _read_config(directory, HOLDOUT_SET)
    if rows is None:
        return [], {}, {}
    source_ids = [_row_id(row, HOLDOUT_SET, i) for i, row in enumerate(rows)]
    rename = {i: HOLDOUT_PREFIX + i if i in known_ids else i for i in source_ids}
    holdout, questions = _read_people(rows, HOLDOUT_SET, rename, kind="holdout")
    pairs = _read_pairs(_read_config(directory, HOLDOUT_FT) or [], rename, holdout, HOLDOUT_FT)
    return holdout, questions, pairs


# ---- files ------------------------------------------------------------------------------------------
def _read_config(directory: Path, name: str, columns: list[str] | None = None) -> list[dict] | None:
    """The rows of one config (every parquet shard, else every jsonl file), or None if it is absent.

    ``columns`` limits what parquet reads (jsonl always reads everything).
    """
    folder = directory / name
    parquet_files = sorted(folder.glob("*.parquet"))
    if parquet_files:
        _, pq = _pyarrow()
        rows = []
        for path in parquet_files:
            available = pq.read_schema(path).names
            wanted = None if columns is None else [c for c in columns if c in available]
            rows += pq.read_table(path, columns=wanted).to_pylist()
        return rows
    jsonl_files = sorted(folder.glob("*.jsonl"))
    if jsonl_files:
        return [row for path in jsonl_files for row in _read_jsonl(path)]
    return None


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}, line {number}: not valid JSON ({error})") from None
    return rows


# ---- rows -------------------------------------------------------------------------------------------
def _row_id(row: dict, config: str, index: int) -> str:
    if row.get("ID") is None:
        raise ValueError(f"{config}: row {index} has no 'ID' field")
    return str(row["ID"])


def _schema_error(config: str, row_id: str, field: str, problem: str = "is missing") -> ValueError:
    return ValueError(f"{config} row ID={row_id!r}: field {field!r} {problem} (see the MLLMU-Bench schema in "
                      f"mini_unlearn.bench.mllmu's docstring)")


def _field(container: dict, key: str, config: str, row_id: str, where: str = ""):
    """``container[key]``, or a ValueError naming the config, row ID and field when it is missing."""
    value = container.get(key) if isinstance(container, dict) else None
    if value is None:
        raise _schema_error(config, row_id, where + key)
    return value


def _image_bytes(value, config: str, row_id: str, field: str) -> bytes:
    """The bytes of an image field: ``{"bytes": raw}`` (parquet) or ``{"bytes": "<base64>"}`` (jsonl)."""
    data = value.get("bytes") if isinstance(value, dict) else value
    if isinstance(data, str):
        try:
            return base64.b64decode(data, validate=True)
        except binascii.Error:
            raise _schema_error(config, row_id, field, "is not valid base64") from None
    if isinstance(data, bytes) and data:
        return data
    raise _schema_error(config, row_id, field + ".bytes", "is missing (the image must be embedded as bytes)")


def _read_people(rows: list[dict], config: str, rename: dict[str, str], kind: str):
    """Profiles and their questions from evaluation rows (Full_Set or Retain_Set)."""
    profiles, questions = [], {}
    for index, row in enumerate(rows):
        source_id = _row_id(row, config, index)
        profile_id = rename.get(source_id, source_id)
        if profile_id in questions:
            raise ValueError(f"{config}: ID {source_id!r} appears in more than one row")
        profile = _read_profile(row, config, source_id, profile_id, kind)
        image = EncodedImage(_image_bytes(_field(row, "image", config, source_id), config, source_id, "image"))
        profiles.append(profile)
        questions[profile_id] = _read_questions(row, config, source_id, profile_id, image)
    return profiles, questions


def _json_field(row: dict, key: str, config: str, row_id: str, expected: type, shape: str):
    """A field that MLLMU-Bench stores as a JSON string (or already decoded), checked to be ``expected``."""
    value = _field(row, key, config, row_id)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _schema_error(config, row_id, key, "is not a JSON string") from None
    if not isinstance(value, expected):
        raise _schema_error(config, row_id, key, f"is not {shape}")
    return value


def _read_profile(row: dict, config: str, source_id: str, profile_id: str, kind: str) -> Profile:
    biography = _json_field(row, "biography", config, source_id, dict, "a JSON object")
    name = _field(biography, "Name", config, source_id, where="biography.")
    facts = {key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
             for key, value in biography.items() if key != "Name" and value is not None}
    return Profile(id=profile_id, name=str(name), face=None, facts=facts, kind=kind)


def _modality(item: dict, config: str, row_id: str, where: str) -> str:
    kind = _field(item, "Type", config, row_id, where)
    if kind not in MODALITY_OF_TYPE:
        raise _schema_error(config, row_id, where + "Type", f"is {kind!r}; expected one of {sorted(MODALITY_OF_TYPE)}")
    return MODALITY_OF_TYPE[kind]


def _read_questions(row: dict, config: str, row_id: str, profile_id: str, image: EncodedImage) -> list[Question]:
    """The Classification_Task (mcq), Generation_Task (gen) and Mask_Task (cloze) questions of a row."""
    positions = Counter()   # (task, modality) -> questions so far: names the fact when "Fact" is absent

    def question(item, task, modality, answer, where, **mcq) -> Question:
        positions[task, modality] += 1
        fact = str(item.get("Fact") or f"q{positions[task, modality]}")
        return Question(f"{profile_id}-{modality}-{fact}-{task}", profile_id, task, modality, fact,
                        str(_field(item, "Question", config, row_id, where)), answer,
                        image=image if modality == IMAGE_TEXT else None, **mcq)

    questions = []
    classification = _field(row, "Classification_Task", config, row_id)
    for modality, key in MCQ_FIELDS.items():
        for k, item in enumerate(_field(classification, key, config, row_id, "Classification_Task.")):
            where = f"Classification_Task.{key}[{k}]."
            options, correct = _mcq_options(item, config, row_id, where)
            questions.append(question(item, "mcq", modality, options[correct], where, options=options, correct=correct))
    for task, key in OPEN_TASK_FIELDS.items():
        for k, item in enumerate(_field(row, key, config, row_id)):
            where = f"{key}[{k}]."
            answer = str(_field(item, "Ground_Truth", config, row_id, where))
            questions.append(question(item, task, _modality(item, config, row_id, where), answer, where))
    return questions


def _mcq_options(item: dict, config: str, row_id: str, where: str) -> tuple[dict[str, str], str]:
    raw = _field(item, "Options", config, row_id, where)
    if not isinstance(raw, dict):
        raise _schema_error(config, row_id, where + "Options", "is not an object like {\"A\": …, \"B\": …}")
    options = {str(letter): str(text) for letter, text in raw.items() if text is not None}
    correct = str(_field(item, "Correct_Answer", config, row_id, where))
    if correct not in options:
        raise _schema_error(config, row_id, where + "Correct_Answer",
                            f"is {correct!r}, not one of the options {sorted(options)}")
    return options, correct


def _read_pairs(rows: list[dict], owners: dict[str, str], people: list[Profile],
                config: str = FT_DATA) -> dict[str, list[QAPair]]:
    """Everyone's training pairs from the ft_Data rows (``owners``: ft_Data ID -> profile ID)."""
    pairs = {p.id: [] for p in people}
    for index, row in enumerate(rows):
        source_id = _row_id(row, config, index)
        if source_id not in owners:
            people_of = f"{HOLDOUT_SET}" if config == HOLDOUT_FT else f"{FULL_SET} or {CELEBRITIES}"
            raise _schema_error(config, source_id, "ID", f"names nobody in {people_of}")
        pairs[owners[source_id]] += _row_pairs(row, source_id, owners[source_id], config)
    return pairs


def _row_pairs(row: dict, source_id: str, profile_id: str, config: str = FT_DATA) -> list[QAPair]:
    """The pairs of one ft_Data row: ``metadata`` (a JSON list of {Question, Answer}) and the image."""
    metadata = _json_field(row, "metadata", config, source_id, list, "a list of {Question, Answer}")
    image = None
    pairs = []
    for k, item in enumerate(metadata):
        where = f"metadata[{k}]."
        modality = _modality(item, config, source_id, where) if "Type" in item else IMAGE_TEXT
        if modality == IMAGE_TEXT and image is None:
            image = EncodedImage(_image_bytes(_field(row, "image", config, source_id), config, source_id, "image"))
        pairs.append(QAPair(profile_id, modality, str(item.get("Fact") or f"q{k + 1}"),
                            str(_field(item, "Question", config, source_id, where)),
                            str(_field(item, "Answer", config, source_id, where)),
                            image if modality == IMAGE_TEXT else None))
    return pairs


def _read_forget_sets(directory: Path, profile_ids: list[str]) -> dict[float, list[str]]:
    """``{0.05: [IDs of forget_5], …}`` for every forget_N config, checked against Full_Set and retain_M."""
    known = set(profile_ids)
    forget_sets = {}
    for folder in sorted(directory.iterdir()) if directory.is_dir() else []:
        match = _RATIO_CONFIG.fullmatch(folder.name)
        if not (match and match[1] == "forget" and folder.is_dir()):
            continue
        rows = _read_config(directory, folder.name, columns=["ID"])
        if rows is None:
            continue
        ids = [_row_id(row, folder.name, i) for i, row in enumerate(rows)]
        for profile_id in ids:
            if profile_id not in known:
                raise _schema_error(folder.name, profile_id, "ID", f"names nobody in {FULL_SET}")
        percent = int(match[2])
        forget_sets[require_ratio(percent / 100)] = ids
        _check_retain(directory, f"retain_{100 - percent}", known - set(ids))
    return dict(sorted(forget_sets.items()))


def _check_retain(directory: Path, config: str, expected: set[str]) -> None:
    rows = _read_config(directory, config, columns=["ID"])
    if rows is None:
        return
    found = {_row_id(row, config, i) for i, row in enumerate(rows)}
    if found != expected:
        warnings.warn(f"{config} is not {FULL_SET} minus its forget set ({len(found ^ expected)} IDs differ); "
                      f"the retain split uses {FULL_SET} minus the forget set", stacklevel=4)


def _forget_order(profiles: list[Profile], forget_sets: dict[float, list[str]]) -> list[str]:
    """The forget people, smallest set first, then everyone else in Full_Set order."""
    order = list(dict.fromkeys(i for ids in forget_sets.values() for i in ids))
    return order + [p.id for p in profiles if p.id not in set(order)]


def _pick_test_images(rows: list[dict], known: set[str], seed: int) -> dict[str, EncodedImage]:
    """One of each person's Test_Set pictures, chosen with ``random.Random(f"{seed}/{ID}")``.

    Seeding per person makes the choice independent of row order and of how the rows are sharded.
    """
    chosen = {}
    for index, row in enumerate(rows):
        profile_id = _row_id(row, TEST_SET, index)
        if profile_id not in known:
            raise _schema_error(TEST_SET, profile_id, "ID", f"names nobody in {FULL_SET}")
        images = _field(row, "images", TEST_SET, profile_id)
        if not images:
            raise _schema_error(TEST_SET, profile_id, "images", "is empty")
        k = random.Random(f"{seed}/{profile_id}").randrange(len(images))
        chosen[profile_id] = EncodedImage(_image_bytes(images[k], TEST_SET, profile_id, f"images[{k}]"))
    return chosen
