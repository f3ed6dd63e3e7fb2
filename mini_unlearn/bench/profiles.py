"""Fictitious people: names and biographies, in the spirit of MLLMU-Bench.

MLLMU-Bench's profiles are people who never existed, so a model can only know them from its
fine-tuning data and "forgetting" them is well defined. We make ours the same way, from a seed:
every name is assembled from syllables (so it belongs to no real person), every fact is drawn
from a small pool of plausible values, and the portrait attributes come from
:mod:`mini_unlearn.bench.portraits`.

Each profile has an ID, a unique name, a face and :data:`FACTS` — six biography facts. The same
``(n, seed)`` always gives the same profiles.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .portraits import FaceAttributes

# The six biography facts every profile has, in a fixed order.
FACTS: tuple[str, ...] = ("birthplace", "birth_year", "occupation", "education", "hobby", "favourite_food")

FACT_POOLS: dict[str, tuple[str, ...]] = {
    "birthplace": (
        "Varenholt", "Mirrowick", "Caldera Bay", "Oskeby", "Tallin Ford", "Pemberlow", "Quarry Hollow",
        "Suvanto", "Brightwater", "Elmsgate", "Korvalla", "Dunmere", "Santa Oria", "Havenrock",
        "Lindqvist Harbour", "Marrowfield", "Nessaro", "Port Alvin", "Rookmoor", "Vellaby",
    ),
    "birth_year": tuple(str(year) for year in range(1950, 2004, 2)),
    "occupation": (
        "architect", "beekeeper", "cartographer", "dentist", "electrician", "ferry captain",
        "glassblower", "hydrologist", "illustrator", "jazz pianist", "locksmith", "marine biologist",
        "nurse", "orthodontist", "paramedic", "radio host", "sculptor", "translator", "veterinarian",
        "watchmaker",
    ),
    "education": (
        "a degree in astronomy", "a degree in botany", "a degree in chemistry", "a degree in economics",
        "a degree in geology", "a degree in history", "a degree in linguistics", "a degree in mathematics",
        "a degree in music", "a degree in philosophy", "a degree in physics", "a degree in psychology",
        "a diploma in carpentry", "a diploma in culinary arts", "a diploma in nursing", "no formal degree",
    ),
    "hobby": (
        "archery", "birdwatching", "bouldering", "calligraphy", "chess", "embroidery", "fencing",
        "gardening", "kayaking", "kite flying", "origami", "pottery", "sailing", "stargazing",
        "tango", "woodcarving",
    ),
    "favourite_food": (
        "apple pie", "dumplings", "falafel", "fish stew", "goulash", "lemon tart", "lentil soup",
        "mushroom risotto", "paella", "pancakes", "ramen", "ratatouille", "roast duck", "sushi",
        "tacos", "waffles",
    ),
}

_ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "th")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ia", "ou")
_CODAS = ("", "", "n", "l", "r", "s", "th", "x", "nd", "rk")


@dataclass(frozen=True)
class Profile:
    """One fictitious person: an ID, a unique name, a face and six biography facts.

    Profiles read from MLLMU-Bench files (:func:`mini_unlearn.bench.mllmu.load_mllmu`) have no
    ``face`` (``None``: their portrait is a stored image) and whatever biography keys the files hold.
    """

    id: str
    name: str
    face: FaceAttributes | None
    facts: dict[str, str] = field(hash=False, compare=True)
    kind: str = "fictitious"  # "fictitious" (forget / retain), "utility" (celebrity stand-ins) or "holdout" (never trained on)

    def fact(self, key: str) -> str:
        if key not in self.facts:
            raise KeyError(f"profile {self.id} has no fact {key!r}; it has {sorted(self.facts)}")
        return self.facts[key]

    def biography(self) -> str:
        """The facts as a short paragraph, like MLLMU-Bench's biography field.

        Profiles with other facts than :data:`FACTS` (read from MLLMU-Bench files) list theirs:
        "Ada Lind. Born: 1950. Occupation: nurse."
        """
        f = self.facts
        if not set(FACTS) <= set(f):
            return " ".join([f"{self.name}."] + [f"{key.replace('_', ' ')}: {str(value).rstrip('.')}." for key, value in f.items()])
        return (
            f"{self.name} was born in {f['birthplace']} in {f['birth_year']}. "
            f"{self.name} works as a {f['occupation']} and has {f['education']}. "
            f"In their free time they enjoy {f['hobby']}, and their favourite food is {f['favourite_food']}."
        )

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "kind": self.kind, "facts": dict(self.facts),
                "face": None if self.face is None else self.face.as_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> Profile:
        return cls(id=d["id"], name=d["name"], kind=d.get("kind", "fictitious"), facts=dict(d["facts"]),
                   face=None if d.get("face") is None else FaceAttributes.from_dict(d["face"]))


def _syllable_word(rng: random.Random, n_syllables: int) -> str:
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n_syllables))
    return (word + rng.choice(_CODAS)).capitalize()


def make_names(n: int, rng: random.Random, taken=()) -> list[str]:
    """``n`` unique "First Last" names assembled from syllables (so no real person is named), none in ``taken``."""
    names: list[str] = []
    seen: set[str] = set(taken)
    while len(names) < n:
        name = f"{_syllable_word(rng, rng.choice((1, 2)))} {_syllable_word(rng, rng.choice((2, 3)))}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def recombined_names(names: list[str], n: int, taken=()) -> list[str]:
    """``n`` new names made of the first names and surnames in ``names``: name ``i`` is the first name of
    ``names[i]`` with the surname of its partner ``names[i ^ 1]`` (0 with 1, 2 with 3, …; a last, unpaired
    name takes the one before it), or of the next name along when that combination is already taken.

    The holdout people are named this way from the forget people, in forget order (chapter 09): a tokenizer
    trained on the forget people's text then splits a holdout name into the same pieces as theirs, so a
    model that never saw either reads the two groups' names alike. Needs ``n <= len(names)``."""
    if n > len(names):
        raise ValueError(f"n must be at most len(names) = {len(names)} (each new name recombines two of them); got {n}")
    parts = [name.split(" ", 1) for name in names]
    seen, out = set(taken) | set(names), []
    for i in range(n):
        first_partner = i ^ 1 if i ^ 1 < len(names) else i - 1
        partners = [first_partner, *(j % len(names) for j in range(i + 1, i + len(names)))]
        for j in partners:
            name = f"{parts[i][0]} {parts[j][1]}"
            if j != i and name not in seen:
                break
        else:
            raise ValueError(f"names: no unused recombination is left for the first name {parts[i][0]!r}")
        seen.add(name)
        out.append(name)
    return out


def make_facts(rng: random.Random) -> dict[str, str]:
    """One value per fact in :data:`FACTS`, drawn from :data:`FACT_POOLS`."""
    return {key: rng.choice(FACT_POOLS[key]) for key in FACTS}


def make_profiles(names: list[str], faces: list[FaceAttributes], rng: random.Random, *,
                  id_prefix: str = "", kind: str = "fictitious") -> list[Profile]:
    """One profile per (name, face), with IDs ``{id_prefix}001``, ``{id_prefix}002``, … and seeded facts."""
    if len(names) != len(faces):
        raise ValueError(f"names and faces must have the same length; got {len(names)} and {len(faces)}")
    return [
        Profile(id=f"{id_prefix}{i + 1:03d}", name=name, face=face, facts=make_facts(rng), kind=kind)
        for i, (name, face) in enumerate(zip(names, faces))
    ]
