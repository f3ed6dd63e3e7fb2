"""Cartoon portraits of people who never existed.

MLLMU-Bench pairs each fictitious person with a synthetic face. We draw ours with PIL instead: a
person's face is a handful of categorical attributes (:data:`ATTRIBUTE_VALUES` — face shape, skin
tone, hair, eyes, glasses, beard, hat, shirt) and :func:`render_portrait` turns them into a small
head-and-shoulders picture. Nothing is downloaded and nobody real is depicted.

Three ideas matter for unlearning experiments:

* **Every person is visibly distinct.** :func:`sample_faces` draws faces so that any two differ in at
  least :data:`MIN_ATTRIBUTE_DISTANCE` attributes, and every attribute is big enough to see at 64x64.
  A model that "recognises" a person has to use the picture, and forgetting one person is not the
  same as forgetting their look-alike.
* **Pictures are byte-deterministic.** The same face and :class:`View` always give the same pixels,
  so a benchmark stores only attributes and redraws images on demand.
* **Test images are transformed views.** MLLMU-Bench's Test_Set asks the same questions with
  transformed pictures of each person. :func:`test_views` plays that role here: the same face with
  a different pose, crop, background and colour. :func:`augment` is the random per-sample jitter
  used while training, which is much milder.
"""
from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

# ---------------------------------------------------------------------------------------------------
# Palettes (name -> RGB) and the attribute table

SKIN_TONES = {
    "pale": (255, 228, 210),
    "peach": (240, 190, 150),
    "golden": (222, 170, 90),
    "caramel": (184, 124, 76),
    "brown": (130, 82, 50),
    "deep": (78, 50, 34),
}
HAIR_COLOURS = {
    "black": (28, 26, 30),
    "brown": (110, 66, 34),
    "blonde": (240, 204, 96),
    "red": (196, 72, 28),
    "white": (250, 250, 250),
    "blue": (48, 100, 226),
    "pink": (242, 108, 182),
}
EYE_COLOURS = {
    "brown": (104, 56, 20),
    "blue": (30, 120, 240),
    "green": (30, 176, 70),
    "violet": (168, 60, 220),
}
SHIRT_COLOURS = {
    "red": (214, 40, 40),
    "orange": (244, 140, 30),
    "yellow": (244, 216, 48),
    "green": (48, 160, 70),
    "teal": (26, 160, 164),
    "blue": (40, 78, 204),
    "purple": (128, 58, 172),
    "black": (40, 40, 46),
}
BACKGROUND_COLOURS = {
    "pale_grey": (208, 211, 218),
    "sky": (160, 204, 244),
    "mint": (176, 232, 188),
    "peach": (252, 208, 176),
    "lavender": (212, 192, 244),
    "sand": (236, 222, 164),
    "rose": (244, 180, 198),
    "charcoal": (72, 72, 82),
}
DEFAULT_BACKGROUND = "pale_grey"
HEADWEAR_COLOURS = {"cap": (32, 52, 124), "beanie": (226, 162, 28), "headband": (232, 36, 140), "hat": (112, 72, 40)}
DARK = (34, 30, 32)  # glasses frames, pupils, outlines
WHITE = (250, 250, 250)
MOUTH_COLOUR = (168, 40, 56)

ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "face_shape": ("round", "oval", "square", "long", "heart"),
    "skin_tone": tuple(SKIN_TONES),
    "hair_style": ("short", "long", "bald", "bun", "curly", "spiky", "side_part", "mohawk"),
    "hair_colour": tuple(HAIR_COLOURS),
    "eye_colour": tuple(EYE_COLOURS),
    "eyewear": ("none", "round", "square", "sunglasses"),
    "facial_hair": ("none", "moustache", "beard", "goatee"),
    "headwear": ("none", "cap", "beanie", "headband", "hat"),
    "shirt_colour": tuple(SHIRT_COLOURS),
}
MIN_ATTRIBUTE_DISTANCE: int = 3  # any two sampled people differ in at least this many attributes


# ---------------------------------------------------------------------------------------------------
# Faces: attributes, distance, sampling

@dataclass(frozen=True)
class FaceAttributes:
    """What a person looks like: one value from :data:`ATTRIBUTE_VALUES` per attribute."""

    face_shape: str
    skin_tone: str
    hair_style: str
    hair_colour: str
    eye_colour: str
    eyewear: str
    facial_hair: str
    headwear: str
    shirt_colour: str

    def __post_init__(self):
        for name, allowed in ATTRIBUTE_VALUES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {allowed}")

    def as_dict(self) -> dict[str, str]:
        """The attributes as a plain dict, in :data:`ATTRIBUTE_VALUES` order."""
        return {name: getattr(self, name) for name in ATTRIBUTE_VALUES}

    @classmethod
    def from_dict(cls, d: dict) -> FaceAttributes:
        """Inverse of :meth:`as_dict`; raises ``ValueError`` naming any unknown, missing or bad entry."""
        unknown = sorted(set(d) - set(ATTRIBUTE_VALUES))
        missing = [name for name in ATTRIBUTE_VALUES if name not in d]
        if unknown:
            raise ValueError(f"unknown face attribute(s) {unknown}; expected {list(ATTRIBUTE_VALUES)}")
        if missing:
            raise ValueError(f"missing face attribute(s) {missing}")
        return cls(**{name: d[name] for name in ATTRIBUTE_VALUES})


def attribute_distance(a: FaceAttributes, b: FaceAttributes) -> int:
    """How many attributes two faces differ in (0 for the same face)."""
    return sum(getattr(a, name) != getattr(b, name) for name in ATTRIBUTE_VALUES)


def random_face(rng: random.Random) -> FaceAttributes:
    """One face with every attribute drawn uniformly."""
    return FaceAttributes(**{name: rng.choice(values) for name, values in ATTRIBUTE_VALUES.items()})


def sample_faces(n: int, rng: random.Random, min_distance: int = MIN_ATTRIBUTE_DISTANCE,
                 avoid=()) -> list[FaceAttributes]:
    """``n`` random faces, any two differing in at least ``min_distance`` attributes (and from every face in ``avoid``).

    Greedy rejection sampling: draw a random face and keep it if it is far enough from every face
    kept so far. Gives up with ``ValueError`` after a bounded number of draws.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got n={n}")
    if n > 1 and min_distance > len(ATTRIBUTE_VALUES):
        raise ValueError(f"cannot find n={n} faces at min_distance={min_distance}: "
                         f"faces only have {len(ATTRIBUTE_VALUES)} attributes")
    max_draws = 1000 + 100 * n
    faces, kept = [], list(avoid)
    for _ in range(max_draws):
        if len(faces) == n:
            break
        face = random_face(rng)
        if all(attribute_distance(face, other) >= min_distance for other in kept):
            faces.append(face)
            kept.append(face)
    if len(faces) < n:
        raise ValueError(f"found only {len(faces)} of n={n} faces at min_distance={min_distance} "
                         f"after {max_draws} draws; ask for fewer faces or a smaller min_distance")
    return faces


# ---------------------------------------------------------------------------------------------------
# Views: how a face is shown

@dataclass(frozen=True)
class View:
    """How a face is shown. ``View()`` is the canonical, front-facing portrait."""

    rotation: float = 0.0  # degrees, head tilt (counter-clockwise), about the face centre
    turn: float = 0.0  # -1..1, simulated head turn: features slide sideways, the face narrows
    zoom: float = 1.0  # >1 crops in (closer), <1 zooms out
    shift: tuple[int, int] = (0, 0)  # pixels in the 128-px canonical frame, (right, down)
    background: str | None = None  # a BACKGROUND_COLOURS name, or None for DEFAULT_BACKGROUND
    colour_shift: float = 0.0  # hue rotation of the whole image, in turns (-0.5..0.5)
    brightness: float = 1.0  # 1 keeps the image as drawn

    def __post_init__(self):
        if not -1.0 <= self.turn <= 1.0:
            raise ValueError(f"turn must be in [-1, 1], got {self.turn}")
        if self.zoom <= 0:
            raise ValueError(f"zoom must be > 0, got {self.zoom}")
        if not -0.5 <= self.colour_shift <= 0.5:
            raise ValueError(f"colour_shift must be in [-0.5, 0.5], got {self.colour_shift}")
        if self.background is not None and self.background not in BACKGROUND_COLOURS:
            raise ValueError(f"unknown background {self.background!r}; expected one of {tuple(BACKGROUND_COLOURS)}")
        object.__setattr__(self, "shift", tuple(self.shift))  # a list would make the view unhashable


CANONICAL_VIEW = View()


def test_views(face: FaceAttributes, n: int = 3, seed: int = 0) -> list[View]:
    """``n`` transformed views of ``face`` for the test split (MLLMU-Bench's Test_Set images).

    Each view changes the pose (tilt and turn), the crop (zoom and shift), the background and the
    colours, by amounts large enough to be obvious but small enough that hair, eyes, glasses, beard and
    face shape stay in the picture. The views depend on ``face`` and ``seed`` only.
    """
    rng = random.Random(f"test_views|{seed}|{sorted(face.as_dict().items())}")
    backgrounds = [name for name in BACKGROUND_COLOURS if name != DEFAULT_BACKGROUND]
    rng.shuffle(backgrounds)
    views = []
    for i in range(n):
        views.append(View(
            rotation=_away_from(rng, 0.0, 6.0, 12.0),
            turn=_away_from(rng, 0.0, 0.4, 0.8),
            zoom=_away_from(rng, 1.0, 0.08, 0.16),
            shift=(rng.randint(-8, 8), rng.randint(-6, 6)),
            background=backgrounds[i % len(backgrounds)],
            colour_shift=_away_from(rng, 0.0, 0.03, 0.06),
            brightness=_away_from(rng, 1.0, 0.12, 0.22),
        ))
    return views


test_views.__test__ = False  # the name starts with "test": tell pytest it is not a test


def _away_from(rng: random.Random, centre: float, low: float, high: float) -> float:
    """``centre`` plus or minus a random amount between ``low`` and ``high``."""
    sign = rng.choice((-1.0, 1.0))
    return centre + sign * rng.uniform(low, high)


# ---------------------------------------------------------------------------------------------------
# Rendering

FRAME = 128  # the canonical frame: all drawing coordinates are in these pixels
MARGIN = 32  # extra canvas around the frame, so rotating or zooming out shows more shoulders, not corners
SUPERSAMPLE = 2  # draw at 2x and shrink, for smooth edges
FACE_CENTRE = (64.0, 58.0)
FACE_HALF_SIZES = {"round": (27, 28), "oval": (23, 31), "square": (26, 29), "long": (20, 34), "heart": (27, 31)}


def render_portrait(face: FaceAttributes, view: View = CANONICAL_VIEW, size: int = 128) -> Image.Image:
    """An RGB ``size`` x ``size`` portrait of ``face`` seen through ``view``; identical bytes every time."""
    return _render_portrait_cached(face, view, size).copy()  # a copy: callers may draw on it


@functools.lru_cache(maxsize=2048)
def _render_portrait_cached(face: FaceAttributes, view: View, size: int) -> Image.Image:
    background = view.background or DEFAULT_BACKGROUND
    canvas = draw_face(face, turn=view.turn, background=background)
    image = _frame_view(canvas, view, BACKGROUND_COLOURS[background])
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    if view.colour_shift:
        image = shift_hue(image, view.colour_shift)
    if view.brightness != 1.0:
        image = ImageEnhance.Brightness(image).enhance(view.brightness)
    return image


render_portrait.cache_clear = _render_portrait_cached.cache_clear
render_portrait.cache_info = _render_portrait_cached.cache_info


def _frame_view(canvas: Image.Image, view: View, fill: tuple[int, int, int]) -> Image.Image:
    """Tilt, zoom and shift the supersampled canvas, and cut out the (supersampled) frame."""
    s = SUPERSAMPLE
    centre_x, centre_y = (FACE_CENTRE[0] + MARGIN) * s, (FACE_CENTRE[1] + MARGIN) * s
    if view.rotation:
        canvas = canvas.rotate(view.rotation, Image.Resampling.BILINEAR, center=(centre_x, centre_y), fillcolor=fill)
    # The face centre lands at FACE_CENTRE + shift in the output, magnified by zoom.
    side = FRAME * s / view.zoom
    left = centre_x - (FACE_CENTRE[0] + view.shift[0]) * s / view.zoom
    top = centre_y - (FACE_CENTRE[1] + view.shift[1]) * s / view.zoom
    return canvas.transform((FRAME * s, FRAME * s), Image.Transform.EXTENT, (left, top, left + side, top + side),
                            Image.Resampling.BILINEAR, fillcolor=fill)


def shift_hue(image: Image.Image, amount: float) -> Image.Image:
    """Rotate every pixel's hue by ``amount`` turns (greys stay grey)."""
    hsv = np.array(image.convert("HSV"))
    steps = round(amount * 256)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + steps) % 256).astype(np.uint8)
    return Image.fromarray(hsv, "HSV").convert("RGB")


class Pen:
    """Draws on the supersampled canvas, taking coordinates in the 128-px canonical frame."""

    def __init__(self, image: Image.Image):
        self.draw = ImageDraw.Draw(image)

    def point(self, x: float, y: float) -> tuple[float, float]:
        return (x + MARGIN) * SUPERSAMPLE, (y + MARGIN) * SUPERSAMPLE

    def box(self, box) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = box
        return (*self.point(x0, y0), *self.point(x1, y1))

    def ellipse(self, box, fill=None, outline=None, width=1.0):
        self.draw.ellipse(self.box(box), fill=fill, outline=outline, width=round(width * SUPERSAMPLE))

    def circle(self, x, y, radius, fill):
        self.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)

    def rectangle(self, box, fill=None, outline=None, width=1.0, radius=0.0):
        self.draw.rounded_rectangle(self.box(box), radius=radius * SUPERSAMPLE, fill=fill, outline=outline,
                                    width=round(width * SUPERSAMPLE))

    def polygon(self, points, fill):
        self.draw.polygon([self.point(x, y) for x, y in points], fill=fill)

    def line(self, points, fill, width=1.0):
        self.draw.line([self.point(x, y) for x, y in points], fill=fill, width=round(width * SUPERSAMPLE),
                       joint="curve")

    def chord(self, box, start, end, fill):
        self.draw.chord(self.box(box), start, end, fill=fill)


@dataclass(frozen=True)
class Head:
    """Where the face sits in the canonical frame, after the head turn is applied."""

    cx: float
    cy: float
    half_width: float
    half_height: float
    feature_dx: float  # how far eyes, nose and mouth slide sideways for the turn

    @property
    def top(self) -> float:
        return self.cy - self.half_height

    @property
    def chin(self) -> float:
        return self.cy + self.half_height

    @property
    def eye_y(self) -> float:
        return self.cy - 0.12 * self.half_height

    @property
    def eye_xs(self) -> tuple[float, float]:
        spacing = 0.45 * self.half_width + 2
        return self.cx + self.feature_dx - spacing, self.cx + self.feature_dx + spacing

    @property
    def mouth(self) -> tuple[float, float]:
        return self.cx + 1.1 * self.feature_dx, self.cy + 0.45 * self.half_height


def head_layout(face_shape: str, turn: float) -> Head:
    half_width, half_height = FACE_HALF_SIZES[face_shape]
    return Head(cx=FACE_CENTRE[0] + 3 * turn, cy=FACE_CENTRE[1], half_width=half_width * (1 - 0.12 * abs(turn)),
                half_height=half_height, feature_dx=0.22 * half_width * turn)


def draw_face(face: FaceAttributes, turn: float = 0.0, background: str = DEFAULT_BACKGROUND) -> Image.Image:
    """The supersampled canvas (frame plus margin) with the whole head-and-shoulders drawn on it."""
    canvas_side = (FRAME + 2 * MARGIN) * SUPERSAMPLE
    image = Image.new("RGB", (canvas_side, canvas_side), BACKGROUND_COLOURS[background])
    pen = Pen(image)
    head = head_layout(face.face_shape, turn)
    skin, hair = SKIN_TONES[face.skin_tone], HAIR_COLOURS[face.hair_colour]
    draw_back_hair(pen, head, face.hair_style, hair)
    draw_body(pen, head, skin, SHIRT_COLOURS[face.shirt_colour])
    draw_head_shape(pen, head, face.face_shape, skin)
    draw_front_hair(pen, head, face.hair_style, hair)
    draw_eyes(pen, head, EYE_COLOURS[face.eye_colour], hair)
    draw_nose(pen, head, skin)
    draw_facial_hair(pen, head, face.facial_hair, hair)
    draw_mouth(pen, head)
    draw_eyewear(pen, head, face.eyewear)
    draw_headwear(pen, head, face.headwear)
    return image


def shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    """``colour`` darkened (factor < 1) or lightened (factor > 1)."""
    return tuple(min(255, round(channel * factor)) for channel in colour)


def draw_body(pen: Pen, head: Head, skin, shirt):
    """Shoulders in the shirt colour, the neck, and a collar."""
    pen.ellipse((8, 98, 120, 210), fill=shirt)
    pen.rectangle((head.cx - 10, head.chin - 12, head.cx + 10, 104), fill=shade(skin, 0.88))
    pen.chord((head.cx - 14, 92, head.cx + 14, 112), 0, 180, fill=shade(skin, 0.88))
    pen.line([(head.cx - 15, 101), (head.cx, 114), (head.cx + 15, 101)], fill=shade(shirt, 0.7), width=3)


def draw_head_shape(pen: Pen, head: Head, face_shape: str, skin):
    """Ears, then the face in its shape: round, oval, square, long or heart."""
    for side in (-1, 1):
        ear_x = head.cx + side * head.half_width
        pen.ellipse((ear_x - 5, head.eye_y - 4, ear_x + 5, head.eye_y + 10), fill=shade(skin, 0.92))
    left, right = head.cx - head.half_width, head.cx + head.half_width
    if face_shape == "square":
        pen.rectangle((left, head.top, right, head.chin), fill=skin, radius=8)
    elif face_shape == "long":
        pen.rectangle((left, head.top, right, head.chin), fill=skin, radius=head.half_width * 0.9)
    elif face_shape == "heart":
        widest_y = head.cy - 0.25 * head.half_height
        pen.ellipse((left, head.top, right, head.cy + 0.5 * head.half_height), fill=skin)
        pen.polygon([(left + 0.5, widest_y), (right - 0.5, widest_y), (head.cx + 3, head.chin),
                     (head.cx - 3, head.chin)], fill=skin)
    else:  # round and oval differ only in their half sizes
        pen.ellipse((left, head.top, right, head.chin), fill=skin)


def hair_cap(pen: Pen, head: Head, colour, hairline: float = 0.45, puff: float = 5):
    """Hair covering the top of the head down to ``hairline`` (a fraction of the half height above centre)."""
    top = head.top - puff
    bottom = head.cy - hairline * head.half_height
    box = (head.cx - head.half_width - 3, top, head.cx + head.half_width + 3, 2 * bottom - top)
    pen.chord(box, 180, 360, fill=colour)


def draw_back_hair(pen: Pen, head: Head, style: str, colour):
    """The parts of a hairstyle that sit behind the head: long hair, a bun, curls."""
    if style == "long":
        pen.rectangle((head.cx - head.half_width - 8, head.top - 4, head.cx + head.half_width + 8, head.cy + 44),
                      fill=colour, radius=16)
    elif style == "bun":
        pen.circle(head.cx, head.top - 8, 11, fill=colour)
    elif style == "curly":
        for angle in range(150, 400, 22):
            x = head.cx + (head.half_width + 3) * math.cos(math.radians(angle))
            y = head.cy - 4 + (head.half_height + 3) * math.sin(math.radians(angle))
            pen.circle(x, y, 9, fill=colour)


def draw_front_hair(pen: Pen, head: Head, style: str, colour):
    """The parts of a hairstyle drawn over the head."""
    left, right = head.cx - head.half_width, head.cx + head.half_width
    if style in ("short", "long", "bun"):
        hair_cap(pen, head, colour)
    if style == "short":
        for x in (left - 2, right - 4):  # sideburns
            pen.rectangle((x, head.cy - 0.5 * head.half_height, x + 6, head.eye_y + 2), fill=colour)
    elif style == "curly":
        hair_cap(pen, head, colour, hairline=0.55)
        for i in range(5):
            pen.circle(left + 4 + i * (right - left - 8) / 4, head.cy - 0.55 * head.half_height, 6, fill=colour)
    elif style == "spiky":
        for i in range(6):
            x = left + i * (right - left) / 5
            pen.polygon([(x - 7, head.top + 8), (x + 1, head.top - 14), (x + 7, head.top + 8)], fill=colour)
        hair_cap(pen, head, colour, hairline=0.55)
    elif style == "side_part":
        hair_cap(pen, head, colour, hairline=0.6)
        pen.polygon([(head.cx - 0.4 * head.half_width, head.top - 3), (right + 3, head.top + 4),
                     (right + 3, head.cy - 0.15 * head.half_height), (head.cx, head.cy - 0.5 * head.half_height)],
                    fill=colour)
    elif style == "mohawk":
        pen.rectangle((head.cx - 6, head.top - 16, head.cx + 6, head.cy - 0.5 * head.half_height), fill=colour,
                      radius=5)


def draw_eyes(pen: Pen, head: Head, iris, brow):
    """Two eyes (white, coloured iris, pupil) and eyebrows in the hair colour."""
    for x in head.eye_xs:
        y = head.eye_y
        pen.ellipse((x - 7, y - 5, x + 7, y + 5), fill=WHITE)
        pen.circle(x + 0.15 * head.feature_dx, y, 4.4, fill=iris)
        pen.circle(x + 0.15 * head.feature_dx, y, 1.8, fill=DARK)
        pen.line([(x - 7, y - 9), (x + 7, y - 10)], fill=brow, width=3)


def draw_nose(pen: Pen, head: Head, skin):
    x = head.cx + 1.2 * head.feature_dx
    y = head.cy + 0.08 * head.half_height
    pen.line([(x, y - 4), (x - 3, y + 5), (x + 2, y + 6)], fill=shade(skin, 0.7), width=2)


def draw_mouth(pen: Pen, head: Head):
    """An open smile: the lower half of a small ellipse."""
    x, y = head.mouth
    pen.chord((x - 8, y - 5, x + 8, y + 5), 0, 180, fill=MOUTH_COLOUR)


def draw_facial_hair(pen: Pen, head: Head, style: str, colour):
    x, y = head.mouth
    if style == "moustache":
        pen.ellipse((x - 10, y - 8, x + 10, y - 1), fill=colour)
    elif style == "beard":
        pen.chord((head.cx - head.half_width - 1, head.cy - 0.45 * head.half_height,
                   head.cx + head.half_width + 1, head.chin + 5), 0, 180, fill=colour)
        pen.ellipse((x - 10, y - 8, x + 10, y - 1), fill=colour)
    elif style == "goatee":
        pen.rectangle((x - 6, y + 2, x + 6, head.chin + 3), fill=colour, radius=5)


def draw_eyewear(pen: Pen, head: Head, style: str):
    """Round or square frames, or dark sunglasses, with a bridge and arms."""
    if style == "none":
        return
    y = head.eye_y
    left_eye, right_eye = head.eye_xs
    for x in (left_eye, right_eye):
        box = (x - 9, y - 8, x + 9, y + 8)
        if style == "round":
            pen.ellipse(box, outline=DARK, width=2)
        elif style == "square":
            pen.rectangle(box, outline=DARK, width=2, radius=1)
        else:
            pen.rectangle((x - 10, y - 6, x + 10, y + 7), fill=DARK, radius=4)
    pen.line([(left_eye + 8, y - 1), (right_eye - 8, y - 1)], fill=DARK, width=2)
    pen.line([(left_eye - 9, y - 2), (head.cx - head.half_width - 1, y - 3)], fill=DARK, width=2)
    pen.line([(right_eye + 9, y - 2), (head.cx + head.half_width + 1, y - 3)], fill=DARK, width=2)


def draw_headwear(pen: Pen, head: Head, style: str):
    """A cap with a brim, a beanie with a bobble, a headband, or a wide-brimmed hat."""
    if style == "none":
        return
    colour = HEADWEAR_COLOURS[style]
    left, right = head.cx - head.half_width, head.cx + head.half_width
    if style == "cap":
        brim_y = head.cy - 0.7 * head.half_height
        hair_cap(pen, head, colour, hairline=0.7, puff=8)
        pen.rectangle((left - 2, brim_y - 4, right + 18, brim_y + 3), fill=shade(colour, 0.75), radius=3)
    elif style == "beanie":
        pen.circle(head.cx, head.top - 11, 6, fill=WHITE)
        hair_cap(pen, head, colour, hairline=0.62, puff=10)
        pen.rectangle((left - 5, head.cy - 0.8 * head.half_height, right + 5, head.cy - 0.6 * head.half_height),
                      fill=shade(colour, 0.8), radius=3)
    elif style == "headband":
        pen.rectangle((left - 1, head.cy - 0.7 * head.half_height, right + 1, head.cy - 0.5 * head.half_height),
                      fill=colour, radius=2)
    elif style == "hat":
        pen.rectangle((left + 3, head.top - 20, right - 3, head.top + 6), fill=colour, radius=6)
        pen.rectangle((left + 3, head.top - 2, right - 3, head.top + 5), fill=DARK)
        pen.ellipse((left - 14, head.top + 1, right + 14, head.top + 12), fill=shade(colour, 0.85))


# ---------------------------------------------------------------------------------------------------
# Training augmentation and contact sheets

def augment(image: Image.Image, rng: random.Random) -> Image.Image:
    """A random training-time variant of ``image``, the same size: a small tilt (up to 8 degrees), a
    random crop keeping 85-100% of the area, and mild brightness, contrast and saturation jitter.
    The same ``rng`` state always gives the same result."""
    image = image.convert("RGB")
    width, height = image.size
    angle = rng.uniform(-8.0, 8.0)
    side_fraction = math.sqrt(rng.uniform(0.85, 1.0))
    crop_w, crop_h = width * side_fraction, height * side_fraction
    left, top = rng.uniform(0, width - crop_w), rng.uniform(0, height - crop_h)
    brightness, contrast, saturation = (rng.uniform(0.85, 1.15) for _ in range(3))

    background = image.getpixel((0, 0))
    image = image.rotate(angle, Image.Resampling.BILINEAR, fillcolor=background)
    image = image.transform((width, height), Image.Transform.EXTENT, (left, top, left + crop_w, top + crop_h),
                            Image.Resampling.BILINEAR)
    image = ImageEnhance.Brightness(image).enhance(brightness)
    image = ImageEnhance.Contrast(image).enhance(contrast)
    return ImageEnhance.Color(image).enhance(saturation)


def portrait_grid(images: list[Image.Image], labels: list[str] | None = None, ncols: int = 8,
                  cell: int = 96) -> Image.Image:
    """A contact sheet: ``images`` in rows of ``ncols``, each ``cell`` pixels wide, with optional labels below."""
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels")
    gap, label_height = 4, (14 if labels is not None else 0)
    ncols = max(1, min(ncols, len(images)))
    nrows = max(1, math.ceil(len(images) / ncols))
    pitch_x, pitch_y = cell + gap, cell + label_height + gap
    sheet = Image.new("RGB", (ncols * pitch_x + gap, nrows * pitch_y + gap), WHITE)
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for i, image in enumerate(images):
        row, col = divmod(i, ncols)
        x, y = gap + col * pitch_x, gap + row * pitch_y
        sheet.paste(image.convert("RGB").resize((cell, cell), Image.Resampling.BILINEAR), (x, y))
        if labels is not None:
            draw.text((x + 1, y + cell + 1), fit_text(draw, str(labels[i]), font, cell - 2), fill=DARK, font=font)
    return sheet


def fit_text(draw: ImageDraw.ImageDraw, text: str, font, max_width: float) -> str:
    """``text``, shortened with ".." if it is wider than ``max_width`` pixels."""
    if draw.textlength(text, font=font) <= max_width:
        return text
    while text and draw.textlength(text + "..", font=font) > max_width:
        text = text[:-1]
    return text + ".."
