"""Label maps drawn from 68 landmarks, checked pixel by pixel on a hand-laid face.

The face is laid out on a 64-pixel grid with integer coordinates (then doubled to 128): a V-shaped jaw
whose mirrored upper-face curve lands on integer rows, arched brows, rectangular eyes and lips. Pixels on
the polylines (every landmark, the closing edges of eyes and lips, the hand-computed upper-face curve)
must be 1; pixels inside closed shapes, under the open brow arcs and off the face must be 0.
"""

import numpy as np
import pytest

from eapc_lightning.landmarks.draw import draw_label_map, draw_label_maps, upper_face_curve


def jaw_y(i: int) -> int:
    return 30 + 3 * (8 - abs(i - 8))  # ends at y=30, chin at y=54


def hand_face_64() -> np.ndarray:
    points = [(8 + 3 * i, jaw_y(i)) for i in range(17)]  # jaw 0-16
    points += [(18, 27), (20, 25), (22, 24), (24, 25), (26, 27)]  # right brow 17-21 (an arc)
    points += [(38, 27), (40, 25), (42, 24), (44, 25), (46, 27)]  # left brow 22-26
    points += [(32, 24), (32, 27), (32, 30), (32, 33)]  # nose bridge 27-30
    points += [(28, 36), (30, 37), (32, 38), (34, 37), (36, 36)]  # nose base 31-35
    points += [(16, 29), (20, 29), (24, 29), (24, 32), (20, 32), (16, 32)]  # right eye 36-41
    points += [(40, 29), (44, 29), (48, 29), (48, 32), (44, 32), (40, 32)]  # left eye 42-47
    points += [(26, 41), (29, 41), (32, 41), (35, 41), (38, 41), (38, 44)]  # outer lip 48-53
    points += [(38, 47), (35, 47), (32, 47), (29, 47), (26, 47), (26, 44)]  # outer lip 54-59
    points += [(29, 43), (32, 43), (35, 43), (35, 44), (35, 45), (32, 45), (29, 45), (29, 44)]  # inner 60-67
    assert len(points) == 68
    return np.array(points, dtype=np.float32)


@pytest.fixture(scope="module")
def face_128() -> np.ndarray:
    return hand_face_64() * 2


@pytest.fixture(scope="module")
def label_128(face_128) -> np.ndarray:
    return draw_label_map(face_128, 128, source_size=128)


def lit(label: np.ndarray, x: float, y: float) -> bool:
    return bool(label[int(round(y)), int(round(x))] == 1.0)


def test_label_map_is_binary_single_channel(label_128):
    assert label_128.shape == (128, 128)
    assert label_128.dtype == np.float32
    assert set(np.unique(label_128)) == {0.0, 1.0}


def test_every_landmark_pixel_is_drawn(face_128, label_128):
    missing = [index for index, (x, y) in enumerate(face_128) if not lit(label_128, x, y)]
    assert missing == []


def test_upper_face_curve_mirrors_the_jaw_by_two_thirds(face_128, label_128):
    # Mirror of jaw point i across the line y=60 (through points 0 and 16), distance scaled by 2/3:
    # y = 60 - 2/3 * (jaw_y(i)*2 - 60) = 2 * (30 - 2 * (8 - |i - 8|)).
    expected = np.array([(2 * (8 + 3 * i), 2 * (30 - 2 * (8 - abs(i - 8)))) for i in range(1, 16)], float)
    np.testing.assert_allclose(upper_face_curve(face_128), expected, atol=1e-9)
    assert all(lit(label_128, x, y) for x, y in expected)
    assert lit(label_128, 64, 28)  # the mirrored chin, above the brows (rows 48-54)


def test_closed_shapes_are_closed_and_hollow(label_128):
    assert lit(label_128, 32, 61) and lit(label_128, 80, 61)  # eye closing edges (41->36, 47->42)
    assert lit(label_128, 52, 85)  # outer lip closing edge 59->48
    assert not lit(label_128, 40, 61) and not lit(label_128, 88, 61)  # eye interiors
    assert not lit(label_128, 64, 88)  # inside the inner lip
    assert not lit(label_128, 64, 84)  # between outer and inner lip


def test_open_polylines_and_empty_regions_stay_empty(label_128):
    assert not lit(label_128, 44, 54) and not lit(label_128, 84, 54)  # chords under the brow arcs
    assert not lit(label_128, 64, 40)  # forehead between upper curve (row 28) and nose (row 48)
    assert not lit(label_128, 2, 2) and not lit(label_128, 125, 125)  # outside the face


def test_any_resolution_scales_from_the_source_frame(face_128, label_128):
    small = draw_label_map(face_128, 64, source_size=128)
    assert small.shape == (64, 64)
    assert lit(small, 32, 54) and lit(small, 32, 14)  # chin and mirrored chin at half scale
    assert not lit(small, 32, 20)
    # points given in the default 256 canonical frame draw the same 128 map
    np.testing.assert_array_equal(draw_label_map(face_128 * 2, 128), label_128)
    stacked = draw_label_maps(np.stack([face_128, face_128]), 128, source_size=128)
    np.testing.assert_array_equal(stacked[1], label_128)


def test_thickness_widens_lines(face_128, label_128):
    thick = draw_label_map(face_128, 128, source_size=128, thickness=3)
    assert thick.sum() > 1.5 * label_128.sum()
    assert (thick >= label_128).all()


def test_bad_landmarks_are_rejected(face_128):
    with pytest.raises(ValueError, match="68, 2"):
        draw_label_map(face_128[:60], 64)
    broken = face_128.copy()
    broken[10, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        draw_label_map(broken, 64)
