"""Tests for mini_unlearn.bench.portraits: distinct, deterministic, fast procedural faces."""
import random

import numpy as np
import pytest
from PIL import Image

from mini_unlearn.bench import portraits
from mini_unlearn.bench.portraits import (ATTRIBUTE_VALUES, BACKGROUND_COLOURS, CANONICAL_VIEW, DEFAULT_BACKGROUND,
                                          MIN_ATTRIBUTE_DISTANCE, FaceAttributes, View, attribute_distance, augment,
                                          portrait_grid, render_portrait, sample_faces)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(pixels(a) - pixels(b)).mean())


@pytest.fixture(scope="module")
def faces():
    return sample_faces(60, random.Random(0))


# --- attributes --------------------------------------------------------------------------------------

def test_attribute_table_matches_the_dataclass():
    assert 8 <= len(ATTRIBUTE_VALUES) <= 10
    for name, values in ATTRIBUTE_VALUES.items():
        assert 3 <= len(values) <= 8, name
        assert len(set(values)) == len(values), name
    face = portraits.random_face(random.Random(0))
    assert list(face.as_dict()) == list(ATTRIBUTE_VALUES)


def test_from_dict_round_trips(faces):
    for face in faces[:10]:
        assert FaceAttributes.from_dict(face.as_dict()) == face


def test_from_dict_rejects_unknown_value_naming_it(faces):
    bad = dict(faces[0].as_dict(), hair_colour="plaid")
    with pytest.raises(ValueError, match="hair_colour.*plaid"):
        FaceAttributes.from_dict(bad)


def test_from_dict_rejects_unknown_and_missing_keys(faces):
    with pytest.raises(ValueError, match="tattoo"):
        FaceAttributes.from_dict(dict(faces[0].as_dict(), tattoo="anchor"))
    incomplete = faces[0].as_dict()
    del incomplete["eyewear"]
    with pytest.raises(ValueError, match="eyewear"):
        FaceAttributes.from_dict(incomplete)


def test_attribute_distance_counts_differing_attributes(faces):
    face = faces[0]
    assert attribute_distance(face, face) == 0
    other_eyes = next(v for v in ATTRIBUTE_VALUES["eye_colour"] if v != face.eye_colour)
    other_shirt = next(v for v in ATTRIBUTE_VALUES["shirt_colour"] if v != face.shirt_colour)
    changed = FaceAttributes.from_dict(dict(face.as_dict(), eye_colour=other_eyes, shirt_colour=other_shirt))
    assert attribute_distance(face, changed) == 2 == attribute_distance(changed, face)


# --- sampling ----------------------------------------------------------------------------------------

def test_sample_faces_keeps_every_pair_apart():
    faces = sample_faces(500, random.Random(1))
    assert len(faces) == 500
    rows = np.array([[ATTRIBUTE_VALUES[k].index(v) for k, v in f.as_dict().items()] for f in faces])
    for i in range(len(rows) - 1):
        distances = (rows[i + 1:] != rows[i]).sum(axis=1)
        assert distances.min() >= MIN_ATTRIBUTE_DISTANCE, i


def test_sample_faces_is_seeded():
    assert sample_faces(50, random.Random(7)) == sample_faces(50, random.Random(7))
    assert sample_faces(50, random.Random(7)) != sample_faces(50, random.Random(8))


def test_sample_faces_finds_600_people_at_the_gpu_scale():
    assert len(sample_faces(600, random.Random(2))) == 600


def test_sample_faces_raises_when_impossible():
    with pytest.raises(ValueError, match="n=2.*min_distance=10"):
        sample_faces(2, random.Random(0), min_distance=len(ATTRIBUTE_VALUES) + 1)
    # All attributes different: at most min(len(values)) = 4 faces exist, so 100 cannot be found.
    with pytest.raises(ValueError, match="n=100.*min_distance=9"):
        sample_faces(100, random.Random(0), min_distance=len(ATTRIBUTE_VALUES))


# --- rendering ---------------------------------------------------------------------------------------

def test_render_is_deterministic_across_a_fresh_cache(faces):
    view = portraits.test_views(faces[3])[0]
    first = [render_portrait(faces[3]).tobytes(), render_portrait(faces[3], view, size=64).tobytes()]
    render_portrait.cache_clear()
    second = [render_portrait(faces[3]).tobytes(), render_portrait(faces[3], view, size=64).tobytes()]
    assert first == second


def test_render_returns_a_copy_callers_can_change(faces):
    original = render_portrait(faces[0]).tobytes()
    image = render_portrait(faces[0])
    image.paste((255, 0, 0), (0, 0, 128, 128))
    assert render_portrait(faces[0]).tobytes() == original


@pytest.mark.parametrize("size", [32, 64, 128, 200])
def test_render_mode_and_size(faces, size):
    image = render_portrait(faces[1], size=size)
    assert image.mode == "RGB" and image.size == (size, size)


def test_distinct_faces_look_clearly_different(faces):
    # Measured on these 60 faces: smallest mean |difference| 5.6 (0-255 scale), median about 33.
    flat = np.stack([pixels(render_portrait(face)).ravel() for face in faces])
    smallest = min(np.abs(flat[i + 1:] - flat[i]).mean(axis=1).min() for i in range(len(faces) - 1))
    assert smallest > 3.0


def test_background_override_fills_the_corners(faces):
    assert render_portrait(faces[0]).getpixel((0, 0)) == BACKGROUND_COLOURS[DEFAULT_BACKGROUND]
    assert render_portrait(faces[0], View(background="sky")).getpixel((0, 0)) == BACKGROUND_COLOURS["sky"]


def test_each_view_setting_changes_the_picture(faces):
    canonical = render_portrait(faces[0])
    for view in [View(rotation=10), View(turn=0.6), View(zoom=1.15), View(shift=(6, 0)), View(colour_shift=0.1),
                 View(brightness=0.8)]:
        assert mean_abs_diff(render_portrait(faces[0], view), canonical) > 1.0, view


def test_view_rejects_bad_values():
    with pytest.raises(ValueError, match="background"):
        View(background="tartan")
    with pytest.raises(ValueError, match="turn"):
        View(turn=2.0)


# --- test views --------------------------------------------------------------------------------------

def test_test_views_are_transformed_but_keep_the_size(faces):
    for face in faces[:10]:
        canonical = render_portrait(face)
        views = portraits.test_views(face, n=3, seed=0)
        assert len(views) == 3 and CANONICAL_VIEW not in views
        assert len({view.background for view in views}) == 3
        for view in views:
            assert view.background not in (None, DEFAULT_BACKGROUND)
            assert abs(view.rotation) >= 5 and abs(view.turn) >= 0.3
            assert abs(view.zoom - 1) >= 0.05 and view.colour_shift != 0 and view.brightness != 1
            image = render_portrait(face, view)
            assert image.size == canonical.size
            assert mean_abs_diff(image, canonical) > 10


def test_test_views_are_seeded(faces):
    assert portraits.test_views(faces[0], seed=1) == portraits.test_views(faces[0], seed=1)
    assert portraits.test_views(faces[0], seed=1) != portraits.test_views(faces[0], seed=2)
    assert portraits.test_views(faces[0], seed=1) != portraits.test_views(faces[1], seed=1)


# --- augmentation and grids --------------------------------------------------------------------------

def test_augment_is_deterministic_given_the_rng(faces):
    image = render_portrait(faces[0], size=64)
    first = augment(image, random.Random(5))
    assert first.size == image.size and first.mode == "RGB"
    assert first.tobytes() == augment(image, random.Random(5)).tobytes()
    rng = random.Random(5)
    a, b = augment(image, rng), augment(image, rng)
    assert mean_abs_diff(a, b) > 2.0
    assert mean_abs_diff(a, image) > 2.0


def test_portrait_grid_layout(faces):
    images = [render_portrait(face, size=64) for face in faces[:10]]
    plain = portrait_grid(images, ncols=4, cell=50)
    labelled = portrait_grid(images, labels=[f"person {i}" for i in range(10)], ncols=4, cell=50)
    assert plain.mode == "RGB"
    assert plain.width == labelled.width > 4 * 50
    assert labelled.height > plain.height > 3 * 50
    with pytest.raises(ValueError):
        portrait_grid(images, labels=["too few"])
