"""The synthetic speakers are different people: each has its own appearance (skin, hair, facial hair,
glasses, background, ...) drawn from a random stream of its own, and MediaPipe still finds every one
of them where the rig put the landmarks.

The expectations are independent of the painting code: distances between the speakers' aligned rest
frames are compared with the same distances measured on the previous generator (version 2: one
photograph, re-coloured and mirrored), the voices and articulation with values recorded from version 2,
and the landmarks with MediaPipe's re-detection.
"""

import itertools
from dataclasses import replace

import cv2
import numpy as np
import pytest

from eapc_lightning.landmarks.align import CANONICAL_ANCHORS, anchor_points, similarity_transform, warp_face
from eapc_lightning.synth.appearance import Appearance
from eapc_lightning.synth.face import FaceRig
from eapc_lightning.synth.generator import (
    SYNTH_PRESETS,
    ClipSpec,
    make_clip,
    speaker_profile,
    speaker_still,
    write_contact_sheet,
)

SPEAKERS = 6  # the default preset's

# Distances between the six speakers' rest frames (seed 0), aligned on the canonical face frame and
# blurred (sigma 2 px): the mean CIELAB colour difference per pixel inside an ellipse holding face and
# hair, the smaller of the two for the second frame unmirrored and mirrored (so mirroring alone does not
# count); and the colour difference of the cheeks. Generator version 2 gave: pixels min 5.3 / mean 12.5 /
# max 19.3, cheeks min 0.8 / mean 10.6 / max 17.4. This version: pixels min 16.3 / mean 28.7 / max 36.8,
# cheeks min 7.2 / mean 24.6 / max 44.6.
V2_PIXEL_MEAN, V2_CHEEK_MEAN = 12.5, 10.6

# Voices of seed 0 under generator version 2 (pitch Hz, formant scale, syllables/s): the appearance must
# not have changed them.
V2_VOICES = [
    (126.69216373834402, 1.0089996635144358, 4.400908086891972),
    (218.9460017315509, 1.1403406261991265, 3.8271978082071945),
    (126.45110615451199, 0.9902423629701429, 4.4710360723908),
    (220.61784360671922, 1.1731829345925375, 3.7801067289467194),
    (106.74389912417014, 0.9987060848263734, 4.0174881791838315),
    (200.32033726412243, 1.1289703361934003, 4.098396447665764),
]
# ClipSpec(1, "happy", 2, 1), seed 0, version 2: samples, sum of squared samples, sum of the jaw opening
# and of the lip spread tracks.
V2_CLIP = (53760, 48.86305660190405, 40.27631755678158, 16.997500154589943)

_Y, _X = np.mgrid[0:256, 0:256]
HEAD = ((_X - 128) / 100.0) ** 2 + ((_Y - 112) / 120.0) ** 2 < 1.0


def _aligned_lab(frame: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    matrix = similarity_transform(anchor_points(landmarks), CANONICAL_ANCHORS)
    aligned = cv2.GaussianBlur(warp_face(frame, matrix), (0, 0), 2)
    lab = cv2.cvtColor(aligned.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    return lab, landmarks @ matrix[:, :2].T + matrix[:, 2]


def _cheeks(lab: np.ndarray, points: np.ndarray) -> np.ndarray:
    means = []
    for jaw, nose in ((2, 31), (14, 35)):
        centre = (points[jaw] + points[nose]) / 2
        means.append(lab[(_X - centre[0]) ** 2 + (_Y - centre[1]) ** 2 < 36].mean(axis=0))
    return np.mean(means, axis=0)


@pytest.fixture(scope="module")
def rest_frames():
    return [speaker_still(index, seed=0) for index in range(SPEAKERS)]


def test_speakers_look_like_different_people(rest_frames):
    described = [_aligned_lab(frame, landmarks) for frame, landmarks in rest_frames]
    pixels, cheeks = [], []
    for (lab_a, points_a), (lab_b, points_b) in itertools.combinations(described, 2):
        as_is = np.linalg.norm(lab_a - lab_b, axis=-1)[HEAD].mean()
        mirrored = np.linalg.norm(lab_a - lab_b[:, ::-1], axis=-1)[HEAD].mean()
        pixels.append(min(as_is, mirrored))
        cheeks.append(np.linalg.norm(_cheeks(lab_a, points_a) - _cheeks(lab_b, points_b)))
    assert min(pixels) > V2_PIXEL_MEAN, sorted(np.round(pixels, 1))
    assert np.mean(pixels) > 1.75 * V2_PIXEL_MEAN, np.mean(pixels)
    assert np.mean(cheeks) > 1.75 * V2_CHEEK_MEAN, np.mean(cheeks)
    # both offline photographs are used, men have facial hair, women none
    profiles = [speaker_profile(index, 0) for index in range(SPEAKERS)]
    assert {p.identity.source for p in profiles} == {"astronaut", "hopper"}
    for profile in profiles:
        male = profile.name.startswith("M")
        assert (profile.identity.appearance.facial_hair != "none") == male, profile


def test_identity_is_deterministic_for_its_seed():
    identity = speaker_profile(3, seed=0).identity
    assert speaker_profile(3, seed=0).identity == identity
    first, second = FaceRig(identity).image, FaceRig(replace(identity)).image
    np.testing.assert_array_equal(first, second)
    other = speaker_profile(3, seed=1).identity
    assert other.appearance != identity.appearance
    assert np.abs(FaceRig(other).image.astype(int) - first.astype(int)).mean() > 10
    # the default identity paints nothing: the photograph as framed before appearances existed
    plain = FaceRig(replace(identity, appearance=Appearance())).image
    assert np.abs(plain.astype(int) - first.astype(int)).mean() > 10


def test_appearance_leaves_voices_and_articulation_as_in_version_2():
    for index, voice in enumerate(V2_VOICES):
        got = speaker_profile(index, seed=0).voice
        assert (got.pitch, got.formant_scale, got.syllable_rate) == voice
    clip = make_clip(ClipSpec(1, "happy", 2, 1), SYNTH_PRESETS["default"], 0, render=False)
    samples, energy, opening, spread = V2_CLIP
    assert len(clip.audio) == samples
    assert float(np.sum(clip.audio.astype(np.float64) ** 2)) == pytest.approx(energy, rel=1e-5)
    assert float(clip.opening.astype(np.float64).sum()) == pytest.approx(opening, rel=1e-5)
    assert float(clip.spread.astype(np.float64).sum()) == pytest.approx(spread, rel=1e-5)


def test_every_speaker_is_redetected_near_its_targets():
    """MediaPipe (tracking mode) on a 1.2 s happy clip (level 3) of each speaker: found in every frame,
    mouth points (48-67) and all 68 points near the targets, in pixels of the 256 frame.

    Measured (mouth / all 68): M101 2.40 / 2.57, W102 2.04 / 2.86, M103 2.99 / 3.47, W104 2.83 / 3.26,
    M105 1.98 / 2.75, W106 2.32 / 3.42. Generator version 2 (one photograph) gave 1.85-2.52 / 1.90-2.50
    on the same clips. The extra error is mostly a constant offset per speaker: brows placed 2-6 px
    higher than painted (all speakers), eyes ~3 px higher behind the glasses of the second photograph,
    and a jaw narrower than the wider male jaws.
    """
    from eapc_lightning.landmarks.detect import FaceLandmarkDetector

    settings = replace(SYNTH_PRESETS["default"], seconds=1.2)
    report = {}
    for index in range(SPEAKERS):
        clip = make_clip(ClipSpec(index, "happy", 3, 1), settings, 0)
        with FaceLandmarkDetector(video=True) as detector:
            detected, found = detector.detect_sequence(list(clip.frames))
        assert found.all(), f"speaker {index}: face missed"
        error = np.linalg.norm(detected - clip.landmarks, axis=-1)
        report[speaker_profile(index, 0).name] = (float(error[:, 48:68].mean()), float(error.mean()))
    for mouth, everything in report.values():
        assert mouth < 3.3 and everything < 4.0, report


def test_contact_sheet_shows_each_speakers_rest_frame(tmp_path, rest_frames):
    path = write_contact_sheet(tmp_path / "sheet.png", seed=0, speakers=SPEAKERS)
    sheet = cv2.imread(str(path))[..., ::-1]
    assert sheet.shape == (512, 768, 3)
    for index, (frame, _) in enumerate(rest_frames):
        row, column = divmod(index, 3)
        tile = sheet[row * 256 : (row + 1) * 256, column * 256 : (column + 1) * 256]
        np.testing.assert_array_equal(tile[40:], frame[40:])  # below the name label
