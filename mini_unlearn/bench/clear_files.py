"""Read and write CLEAR's files (Hugging Face ``therem/CLEAR``), the layout of the Hub.

:func:`write_clear` writes a :class:`~mini_unlearn.bench.clear.ClearBenchmark` in CLEAR's layout and
:func:`load_clear` reads that layout (ours or the Hub's) back into a ``ClearBenchmark``, so the same
``split``, ``clear_items`` and ``mu.unlearn`` serve the real CLEAR, and our generated one can be fed to CLEAR's
own scripts. One folder per Hugging Face config, each holding its ``train`` rows::

    {directory}/{config}/train-00000-of-00001.parquet   format="parquet", as on the Hub (every *.parquet in
                                                        the folder is read: the Hub's full+tofu has three shards)
    {directory}/{config}/train.jsonl                    format="jsonl": one JSON object a line, every image's
                                                        bytes base64-encoded

==================================  =====================================================================
config                              rows (fields)
==================================  =====================================================================
``full``                            every picture of every fictitious person: ``image``, ``caption``, ``name``
``forget01/05/10``                  the pictures of the people to forget at 1/5/10 % (same fields)
``retain99/95/90``                  the pictures of everyone else (same fields)
``full+tofu``, ``forgetNN+tofu``,   the same pictures (``image``, ``caption``), then the questions by name:
``retainNN+tofu``                   rows with ``question`` and ``answer`` and no image
``forget01/05/10_perturbed``        the forget pictures with ``name``, ``perturbed_captions`` (a list),
                                    ``paraphrased_caption`` and ``perturbed_names`` (a list)
``retain_perturbed``                the same for retain pictures (the Hub's: about 20 retain people; ours:
                                    everyone outside the largest forget set)
``real_faces``                      other people's portraits: ``image``, ``answer`` (the name), ``options``
                                    (wrong names)
``real_world``                      pictures of no fictitious person: ``image``, ``question``, ``answer``,
                                    ``options`` (wrong answers)
==================================  =====================================================================

Images are stored as the ``datasets`` library stores them: ``{"bytes": <PNG or JPEG bytes>, "path": …}``; we
write PNG. (The Hub also has a ``default`` config, the folder ``data/``, with the rows of ``full``; it is not
needed and not written.)

**How the questions are linked to people.** The ``+tofu`` rows carry no name. On the Hub, ``full+tofu`` is
``full``'s pictures followed by TOFU's question–answer pairs in one block per author, every block of the same
size (TOFU: 20), and the block's questions and answers name its author. :func:`load_clear` cuts the question
rows of ``full+tofu`` into blocks of TOFU's 20 (or, when the rows do not make 20 for everyone, into
``len(people)`` equal blocks: our files' six) and gives each block to the person of ``full`` whose full name it
mentions most often (case, accents and punctuation ignored); a block that names two people equally often, or
someone another block already has, is an error naming its rows, and so is one that names nobody, unless there
are more blocks of 20 than people (an author without pictures: that block is left out with a warning).

**Extra fields (ours; CLEAR's code ignores them).** TOFU has a paraphrased answer and perturbed answers for
every question; CLEAR's files do not. Our ``+tofu`` question rows add ``paraphrased_answer`` and
``perturbed_answer`` (TOFU's names for them); without them a loaded question has ``paraphrased=None`` and no
perturbed answers. One extra config, ``test_views`` (``image``, ``caption``, ``name``), holds each person's
held-out picture (the ``test`` split); without it the ``test`` split asks the forget split's questions again.
The holdout people of chapter 09 are not written.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import re
import struct
import unicodedata
import warnings
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

from .. import validate
from .clear import (CLEAR_RATIOS, FACE_QUESTION, WORLD_ID, ClearBenchmark, ClearItem, assemble, caption_question,
                    forget_config, ratio_config, retain_config, world_profile)
from .images import EncodedImage
from .mllmu import (FORMATS, JSONL_FILE, PARQUET_FILE, _base64_bytes, _forget_order, _ImageEncoder, _pyarrow,
                    _read_jsonl)
from .mllmu import _prepare_directory as _prepare
from .profiles import Profile

FULL, TOFU, PERTURBED = "full", "+tofu", "_perturbed"
RETAIN_PERTURBED, REAL_FACES, REAL_WORLD = "retain_perturbed", "real_faces", "real_world"
TEST_VIEWS = "test_views"                                # ours: each person's held-out picture
IMAGE_FIELDS = ("image", "caption", "name")
PERTURBED_FIELDS = ("image", "caption", "name", "perturbed_captions", "paraphrased_caption", "perturbed_names")
REAL_FACES_FIELDS = ("image", "answer", "options")
REAL_WORLD_FIELDS = ("image", "question", "answer", "options")
QA_EXTRA = ("paraphrased_answer", "perturbed_answer")   # ours, TOFU's names
TOFU_BLOCK = 20                                         # TOFU's questions per author


def config_names() -> tuple[str, ...]:
    """Every config :func:`load_clear` needs, in the order :func:`write_clear` writes them."""
    names = [FULL, FULL + TOFU]
    for ratio in CLEAR_RATIOS:
        names += [forget_config(ratio), forget_config(ratio) + TOFU, forget_config(ratio) + PERTURBED]
    for ratio in CLEAR_RATIOS:
        names += [retain_config(ratio), retain_config(ratio) + TOFU]
    return tuple(names + [RETAIN_PERTURBED, REAL_FACES, REAL_WORLD])


CONFIGS: tuple[str, ...] = config_names()


# ==== writing ===========================================================================================
def write_clear(bench: ClearBenchmark, directory, format: str = "parquet", overwrite: bool = False) -> Path:
    """Write ``bench`` in CLEAR's layout under ``directory`` (every config of :data:`CONFIGS`, plus
    ``test_views``); return the directory as a Path.

    ``format="parquet"`` writes the Hub's files (needs pyarrow), ``format="jsonl"`` one ``train.jsonl`` per
    config with every image base64-encoded. The forget configs are the benchmark's forget sets at
    :data:`~mini_unlearn.bench.clear.CLEAR_RATIOS`. A directory that exists and is not empty is refused (a
    FileExistsError) unless ``overwrite=True``, which replaces the CLEAR config folders in it and leaves
    anything else alone.
    """
    if not isinstance(bench, ClearBenchmark):
        raise validate.WrongTypeError(f"bench must be a ClearBenchmark (mu.bench.make_clear or load_clear); got "
                                      f"{type(bench).__name__}")
    validate.one_of(format, "format", FORMATS)
    if format == "parquet":
        _pyarrow()                                       # fail before anything is written
    configs = _config_rows(bench)
    directory = _prepare_directory(Path(directory), overwrite)
    for name, rows in configs.items():
        folder = directory / name
        folder.mkdir()
        if format == "parquet":
            pa, pq = _pyarrow()
            pq.write_table(pa.Table.from_pylist(rows), folder / PARQUET_FILE)
        else:
            with open(folder / JSONL_FILE, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(_base64_bytes(row), ensure_ascii=False) + "\n" for row in rows)
    return directory


def _prepare_directory(directory: Path, overwrite: bool) -> Path:
    return _prepare(directory, overwrite, writer="write_clear", benchmark="CLEAR",
                    is_config=lambda name: name in CONFIGS + (TEST_VIEWS,))


def _config_rows(bench: ClearBenchmark) -> dict[str, list[dict]]:
    """Every config's rows, built in memory before anything touches the disk."""
    encode = _ImageEncoder()

    def image(item: ClearItem, number: int) -> dict:
        return {"bytes": encode(item.image), "path": f"{item.profile_id or WORLD_ID}_{number:02d}.png"}

    pictures, questions = {}, {}
    for person in bench.profiles:
        own = bench.items.get(person.id, ())
        pictures[person.id] = [item for item in own if item.kind == "caption"]
        questions[person.id] = [item for item in own if item.kind == "qa"]

    def image_rows(ids):
        return [{"image": image(item, k), "caption": item.answer, "name": item.name}
                for pid in ids for k, item in enumerate(pictures[pid], 1)]

    def tofu_rows(ids):
        return ([{"image": image(item, k), "caption": item.answer, "question": None, "answer": None,
                  "paraphrased_answer": None, "perturbed_answer": None}
                 for pid in ids for k, item in enumerate(pictures[pid], 1)]
                + [{"image": None, "caption": None, "question": item.question, "answer": item.answer,
                    "paraphrased_answer": item.paraphrased, "perturbed_answer": list(item.perturbed)}
                   for pid in ids for item in questions[pid]])

    def perturbed_rows(ids):
        return [{"image": image(item, k), "caption": item.answer, "name": item.name,
                 "perturbed_captions": list(item.perturbed), "paraphrased_caption": item.paraphrased,
                 "perturbed_names": list(item.perturbed_names)}
                for pid in ids for k, item in enumerate(pictures[pid], 1) if item.perturbed]

    everyone = [p.id for p in bench.profiles]
    configs = {FULL: image_rows(everyone), FULL + TOFU: tofu_rows(everyone)}
    for ratio in CLEAR_RATIOS:
        forget, retain = bench.forget_and_retain_ids(ratio)
        name = forget_config(ratio)
        configs.update({name: image_rows(forget), name + TOFU: tofu_rows(forget),
                        name + PERTURBED: perturbed_rows(forget),
                        retain_config(ratio): image_rows(retain), retain_config(ratio) + TOFU: tofu_rows(retain)})
    largest = set(bench.forget_ids(max(CLEAR_RATIOS)))
    configs[RETAIN_PERTURBED] = perturbed_rows([pid for pid in everyone if pid not in largest])
    faces = [item for p in bench.utility_profiles if p.id != WORLD_ID for item in bench.items.get(p.id, ())]
    configs[REAL_FACES] = [{"image": image(item, k), "answer": item.answer, "options": list(item.perturbed)}
                           for k, item in enumerate(faces, 1)]
    configs[REAL_WORLD] = [{"image": image(item, k), "question": item.question, "answer": item.answer,
                            "options": list(item.perturbed)} for k, item in enumerate(bench.items.get(WORLD_ID, ()), 1)]
    configs[TEST_VIEWS] = [{"image": {"bytes": encode(q.image), "path": f"{pid}_test.png"}, "caption": q.answer,
                            "name": bench.profile(pid).name}
                           for pid, own in bench.test_questions.items() for q in own if q.image is not None]
    return configs


# ==== reading ===========================================================================================
class _Row(dict):
    """A row of a config, remembering where it came from (for errors)."""

    where: str


def load_clear(directory) -> ClearBenchmark:
    """A :class:`~mini_unlearn.bench.clear.ClearBenchmark` read from CLEAR's layout (ours or the Hub's; parquet
    or jsonl; see the module docstring).

    People are told apart by ``name`` (ids ``001``, ``002``, … in the order ``full`` first shows them); the
    forget sets come from ``forget01/05/10``; every picture's describe request is
    :func:`~mini_unlearn.bench.clear.caption_question` of its name and caption; the questions by name come from
    ``full+tofu`` (linked as the module docstring says); the perturbed fields from the ``_perturbed`` configs
    (a picture is matched by name and caption); ``real_faces`` names the utility people (ids ``u001``, …).

    Everything is checked before the benchmark is made: a FileNotFoundError names every missing config and the
    file it expects; a ValueError names the config, file and row of a row without a field, of an image that does
    not decode, or of a name that no row of ``full`` has; ImportError (``pip install pyarrow``) for parquet
    without pyarrow.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no CLEAR folder at {directory}: expected one folder per config, e.g. "
                                f"{directory / FULL / PARQUET_FILE}")
    missing = [name for name in CONFIGS if _files(directory / name) is None]
    if missing:
        raise FileNotFoundError(f"{directory} lacks {len(missing)} CLEAR config(s): " + "; ".join(
            f"{name!r} (expected {directory / name / PARQUET_FILE} or {directory / name / JSONL_FILE})"
            for name in missing))
    full = _rows(directory, FULL, IMAGE_FIELDS)
    names = list(dict.fromkeys(row["name"] for row in full))
    people = [Profile(id=f"{i:03d}", name=name, face=None, facts={}) for i, name in enumerate(names, 1)]
    id_of = {p.name: p.id for p in people}
    extras = _perturbed_fields(directory, full, id_of)
    items: dict[str, list[ClearItem]] = defaultdict(list)
    for row in full:
        paraphrased, perturbed, wrong_names = extras.get(id(row), (None, (), ()))
        items[id_of[row["name"]]].append(_picture_item(row, id_of[row["name"]], paraphrased, perturbed, wrong_names))
    for name, block in _question_blocks(directory, names).items():
        items[id_of[name]] += [ClearItem("", "qa", id_of[name], None, row["question"], row["answer"],
                                         row.get("paraphrased_answer"), tuple(row.get("perturbed_answer") or ()),
                                         None, ()) for row in block]
    forget_sets = _forget_sets(directory, id_of)
    utility = _real_faces(directory, items)
    items[WORLD_ID] = [ClearItem("", "caption", None, _image(row), row["question"], row["answer"], row["answer"],
                                 tuple(row["options"]), None, ())
                       for row in _rows(directory, REAL_WORLD, REAL_WORLD_FIELDS)]
    test_captions = {}
    if _files(directory / TEST_VIEWS) is not None:
        for row in _rows(directory, TEST_VIEWS, IMAGE_FIELDS):
            if row["name"] not in id_of:
                raise ValueError(f"{row.where}: name {row['name']!r} is nobody in {FULL}")
            test_captions[id_of[row["name"]]] = _picture_item(row, id_of[row["name"]], None, (), ())
    return assemble(f"CLEAR files in {directory.name}", people, utility + [world_profile()], [], dict(items), {},
                    test_captions, _forget_order(people, forget_sets), forget_sets)


def _files(folder: Path) -> list[Path] | None:
    """The parquet files of a config folder, else its jsonl files, else None."""
    for pattern in ("*.parquet", "*.jsonl"):
        found = sorted(folder.glob(pattern)) if folder.is_dir() else []
        if found:
            return found
    return None


def _rows(directory: Path, config: str, fields: tuple[str, ...], *, optional: tuple[str, ...] = (),
          check: bool = True) -> list[_Row]:
    """Every row of a config with ``fields`` (and ``optional`` ones when there), each knowing its file and row.

    With ``check``, a row whose field is missing or null is an error; images are checked to decode."""
    rows = []
    for path in _files(directory / config):
        if path.suffix == ".parquet":
            _, pq = _pyarrow()
            available = pq.read_schema(path).names
            wanted = [f for f in fields + optional if f in available]
            records = pq.read_table(path, columns=wanted).to_pylist()
        else:
            records = _read_jsonl(path)
        for index, record in enumerate(records):
            row = _Row(record)
            row.where = f"{config}/{path.name} row {index}"
            if check:
                for name in fields:
                    if row.get(name) is None:
                        raise ValueError(f"{row.where}: field {name!r} is missing (CLEAR's {config} rows have "
                                         f"{', '.join(fields)}; see mini_unlearn.bench.clear_files)")
                if "image" in fields:
                    row["image"] = _decoded(row["image"], row.where)
            rows.append(row)
    return rows


def _decoded(value, where: str) -> bytes:
    """The bytes of an image field (``{"bytes": …}``, base64 text in jsonl), checked to decode as a picture."""
    data = value.get("bytes") if isinstance(value, dict) else value
    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=True)
        except binascii.Error:
            raise ValueError(f"{where}: field 'image' is not valid base64") from None
    if not isinstance(data, bytes) or not data:
        raise ValueError(f"{where}: field 'image' has no bytes (CLEAR embeds every picture in the file as "
                         f"{{'bytes': …, 'path': …}})")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.draft("RGB", (64, 64))               # JPEG: decode at a small scale, enough to find damage
            picture.load()
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:   # PIL's kinds of damage
        raise ValueError(f"{where}: the image does not decode ({type(error).__name__}: {error})") from None
    return data


def _image(row: _Row) -> EncodedImage:
    return EncodedImage(row["image"])


def _picture_item(row: _Row, profile_id: str, paraphrased, perturbed, wrong_names) -> ClearItem:
    return ClearItem("", "caption", profile_id, _image(row), caption_question(row["name"], row["caption"]),
                     row["caption"], paraphrased, tuple(perturbed), row["name"], tuple(wrong_names))


def _perturbed_fields(directory: Path, full: list[_Row], id_of: dict[str, str]) -> dict[int, tuple]:
    """``id(row of full) -> (paraphrased caption, perturbed captions, perturbed names)`` from every
    ``_perturbed`` config: the k-th row with a (name, caption) is the k-th picture of ``full`` with them."""
    pictures = defaultdict(list)
    for row in full:
        pictures[row["name"], row["caption"]].append(row)
    found = {}
    configs = [forget_config(r) + PERTURBED for r in CLEAR_RATIOS] + [RETAIN_PERTURBED]
    for config in configs:
        seen = Counter()
        for row in _rows(directory, config, PERTURBED_FIELDS[1:]):
            key = (row["name"], row["caption"])
            if row["name"] not in id_of:
                raise ValueError(f"{row.where}: name {row['name']!r} is nobody in {FULL}")
            if seen[key] >= len(pictures[key]):
                raise ValueError(f"{row.where}: no picture of {row['name']!r} in {FULL} has this caption")
            target = pictures[key][seen[key]]
            seen[key] += 1
            found.setdefault(id(target), (row["paraphrased_caption"], tuple(row["perturbed_captions"]),
                                          tuple(row["perturbed_names"])))
    return found


def _normal(text: str) -> str:
    """Lower case, no accents, every run of other characters one space (to find a name in a sentence)."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " " + re.sub(r"[\W_]+", " ", text.casefold()).strip() + " "


def _question_blocks(directory: Path, names: list[str]) -> dict[str, list[_Row]]:
    """The question rows of ``full+tofu``, one equal block per person, each given to the name it mentions most."""
    config = FULL + TOFU
    rows = _rows(directory, config, ("caption", "question", "answer"), optional=QA_EXTRA, check=False)
    texts = []
    for row in rows:
        if row.get("caption") is not None:
            continue                                     # a picture (its rows repeat full's)
        for name in ("question", "answer"):
            if row.get(name) is None:
                raise ValueError(f"{row.where}: field {name!r} is missing (a {config} row is a picture with "
                                 f"'caption' or a question with 'question' and 'answer')")
        texts.append(row)
    if not texts:
        return {}
    if len(texts) % TOFU_BLOCK == 0 and len(texts) // TOFU_BLOCK >= len(names):
        size = TOFU_BLOCK                                # TOFU's 20 a person; blocks beyond the people are left out
    elif len(texts) % len(names) == 0:
        size = len(texts) // len(names)                  # ours: one block per person, of any size
    else:
        raise ValueError(f"{config} has {len(texts)} question rows for the {len(names)} people of {FULL}: not a "
                         f"whole number each. CLEAR's question rows come in one equal block per person (TOFU: "
                         f"{TOFU_BLOCK})")
    spelled = {name: _normal(name) for name in names}
    owner: dict[str, str] = {}
    blocks, skipped = {}, []
    for start in range(0, len(texts), size):
        block = texts[start:start + size]
        text = "".join(_normal(row["question"]) + _normal(row["answer"]) for row in block)
        counts = Counter({name: text.count(form) for name, form in spelled.items()})
        counts = Counter({name: n for name, n in counts.items() if n})
        first, last = block[0].where, block[-1].where
        span = f"{first} to {last.rsplit(' ', 1)[-1] if first.rsplit(' ', 1)[0] == last.rsplit(' ', 1)[0] else last}"
        ranked = counts.most_common(2)
        if not ranked and len(texts) > size * len(names):   # an author without pictures
            skipped.append(span)
            continue
        if not ranked:
            raise ValueError(f"the question rows {span} name nobody in {FULL}, so they cannot be given to a "
                             f"person")
        if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
            raise ValueError(f"the question rows {span} name {ranked[0][0]!r} and {ranked[1][0]!r} equally "
                             f"often")
        name = ranked[0][0]
        if name in owner:
            raise ValueError(f"the question rows {span} and {owner[name]} both name {name!r}")
        owner[name], blocks[name] = span, block
    if skipped:
        warnings.warn(f"{config}: {len(skipped)} blocks of {TOFU_BLOCK} question rows name nobody in {FULL} "
                      f"(authors without pictures) and are left out: {'; '.join(skipped[:3])}"
                      f"{' …' if len(skipped) > 3 else ''}", stacklevel=3)
    return blocks


def _forget_sets(directory: Path, id_of: dict[str, str]) -> dict[float, list[str]]:
    """``{0.01: [ids], 0.05: …, 0.10: …}`` from the forgetNN configs, checked against full and retainNN."""
    forget_sets = {}
    for ratio in CLEAR_RATIOS:
        config = forget_config(ratio)
        names = []
        for row in _rows(directory, config, ("name",)):
            if row["name"] not in id_of:
                raise ValueError(f"{row.where}: name {row['name']!r} is nobody in {FULL}")
            names.append(row["name"])
        forget_sets[ratio] = [id_of[n] for n in dict.fromkeys(names)]
        kept = {row["name"] for row in _rows(directory, retain_config(ratio), ("name",))}
        expected = set(id_of) - set(names)
        if kept != expected:
            warnings.warn(f"{retain_config(ratio)} is not {FULL} minus {config} ({len(kept ^ expected)} names differ); "
                          f"the retain split uses {FULL} minus {config}", stacklevel=3)
    return forget_sets


def _real_faces(directory: Path, items: dict[str, list[ClearItem]]) -> list[Profile]:
    """The utility people (ids u001, …) and their items, from real_faces (one person per name)."""
    utility: dict[str, Profile] = {}
    for row in _rows(directory, REAL_FACES, REAL_FACES_FIELDS):
        name = row["answer"]
        if name not in utility:
            utility[name] = Profile(id=f"u{len(utility) + 1:03d}", name=name, face=None, facts={}, kind="utility")
        wrong = tuple(row["options"])
        items[utility[name].id].append(ClearItem("", "caption", utility[name].id, _image(row), FACE_QUESTION, name,
                                                 name, wrong, name, wrong))
    return list(utility.values())


__all__ = ["CONFIGS", "TEST_VIEWS", "config_names", "load_clear", "ratio_config", "write_clear"]
