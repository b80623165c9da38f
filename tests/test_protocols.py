"""Evaluation protocols: the shipped YAMLs, their alignment and averaging, frame matching, the output-path
floor, bootstrap intervals, and dlib's EAT crop on a real face."""

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT
from eapc_lightning.errors import InputError
from eapc_lightning.evaluation.clip_eval import score_landmarks
from eapc_lightning.evaluation.measure import FrameMeasurer, matched_indices, through_output_path
from eapc_lightning.evaluation.protocol import available_protocols, load_protocol
from eapc_lightning.evaluation.scores import Scores, average, bootstrap_interval
from eapc_lightning.landmarks.align import apply_transform


def test_the_shipped_protocols_load_and_name_every_setting_in_their_header():
    assert {"eapc", "eat"} <= set(available_protocols())
    for name in available_protocols():
        protocol = load_protocol(name)
        header = protocol.header()
        assert header.startswith(f"Protocol **{name}**")
        for setting in ("detector", "alignment", "landmark_size", "time_matching", "image_metrics"):
            assert f"{setting} {getattr(protocol, setting)}" in header
    eat = load_protocol(str(REPO_ROOT / "experiments" / "evaluation" / "eat.yaml"))  # by path too
    assert (eat.detector, eat.landmark_size, eat.clip_average) == ("dlib", 128, "per_clip")


def test_a_bad_protocol_names_its_file_and_problem(tmp_path):
    good = (REPO_ROOT / "experiments" / "evaluation" / "eapc.yaml").read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text(good.replace("clip_average:", "clip_averge:"))
    with pytest.raises(InputError, match=rf"{typo}: unknown keys \['clip_averge'\]"):
        load_protocol(str(typo))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(good.replace("detector: mediapipe", "detector: openface"))
    with pytest.raises(InputError, match=r"detector must be one of mediapipe, dlib, not 'openface'"):
        load_protocol(str(wrong))
    with pytest.raises(InputError, match=r"no such evaluation protocol \(shipped: .*eapc.*eat"):
        load_protocol("nonesuch")


def _face_sequence(frames: int = 20) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.uniform(60, 200, size=(68, 2)).astype(np.float32)
    mouth = np.zeros((frames, 68, 2), np.float32)
    mouth[:, 48:68, 1] = 6 * np.sin(np.arange(frames) / 2)[:, None]  # the mouth opens and closes
    return base + mouth


def _moved(points: np.ndarray, angle: float, scale: float, shift) -> np.ndarray:
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return apply_transform(np.hstack([rotation, np.array(shift, np.float64)[:, None]]), points)


def test_per_frame_similarity_removes_head_motion_that_centring_counts_as_error():
    truth = _face_sequence()
    # the same face and mouth, the head turning and nodding over the clip
    moved = np.stack(
        [_moved(frame, 0.02 * i, 1 + 0.01 * i, (3 * i, -2 * i)) for i, frame in enumerate(truth)]
    )
    found = np.ones(len(truth), bool)
    aligned, centred = Scores(), Scores()
    score_landmarks(load_protocol("eapc"), moved, truth, found, aligned)
    score_landmarks(load_protocol("eat"), moved, truth, found, centred)
    assert aligned.value("M-LD") == pytest.approx(0, abs=1e-3)
    assert aligned.value("F-LVD") == pytest.approx(0, abs=1e-3)
    assert centred.value("M-LD") > 1  # a centroid shift cannot undo a rotation


def test_region_centroid_ld_and_face_lvd_by_hand():
    rng = np.random.default_rng(1)
    prediction = rng.normal(64, 10, size=(6, 68, 2))
    target = rng.normal(64, 10, size=(6, 68, 2))
    scores = Scores()
    scores.add_landmarks(prediction, target, np.ones(6, bool), region_centroid=True)
    mouth_p, mouth_t = prediction[:, 48:68], target[:, 48:68]
    centred = (mouth_p - mouth_p.mean(1, keepdims=True)) - (mouth_t - mouth_t.mean(1, keepdims=True))
    assert scores.value("M-LD") == pytest.approx(np.linalg.norm(centred, axis=-1).mean())
    face_velocity = np.diff(prediction, axis=0) - np.diff(target, axis=0)
    mouth_velocity = face_velocity[:, 48:68]
    assert scores.value("F-LVD") == pytest.approx(np.linalg.norm(face_velocity, axis=-1).mean())
    # the public EAT script adds the mouth's velocity error into the face sum (face_lvd_sum += lvd_mouth)
    published_bug = np.linalg.norm(mouth_velocity, axis=-1).sum() / (5 * 68)
    assert published_bug == pytest.approx(scores.value("M-LVD") * 20 / 68)
    assert scores.value("F-LVD") != pytest.approx(published_bug, rel=0.05)


def test_frame_matching_truncates_or_samples_evenly():
    generated, truth = matched_indices(10, 7, "truncate")
    assert generated.tolist() == truth.tolist() == list(range(7))
    generated, truth = matched_indices(10, 5, "linspace")  # EAT: np.linspace(0, n, m, endpoint=False)
    assert generated.tolist() == [0, 2, 4, 6, 8] and truth.tolist() == [0, 1, 2, 3, 4]


def test_pooled_and_per_clip_averages_and_the_bootstrap_interval():
    short, long = Scores(), Scores()
    short.add_terms("M-LD", [1.0, 1.0])
    long.add_terms("M-LD", [4.0] * 8)
    clips = [short, long]
    assert average(clips, "M-LD", "pooled") == pytest.approx((2 + 32) / 10)
    assert average(clips, "M-LD", "per_clip") == pytest.approx(2.5)
    many = []
    for value in np.random.default_rng(2).normal(3, 1, size=40):
        clip = Scores()
        clip.add_terms("M-LD", [value] * 5)
        many.append(clip)
    low, high = bootstrap_interval(many, "M-LD", "pooled", seed=0)
    assert low < average(many, "M-LD", "pooled") < high
    values = np.array([clip.value("M-LD") for clip in many])
    half_width = 1.96 * values.std(ddof=1) / math.sqrt(len(values))  # the normal approximation
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.2)
    assert bootstrap_interval(many, "M-LD", "pooled", seed=0) == (low, high)  # seeded
    same = [short, short, short]
    assert bootstrap_interval(same, "M-LD", "pooled") == (1.0, 1.0)


def test_the_output_path_keeps_size_and_count_and_costs_a_little_quality():
    frames = np.zeros((6, 64, 64, 3), np.uint8)
    for index, frame in enumerate(frames):
        cv2.circle(frame, (20 + 4 * index, 32), 12, (200, 120, 60), -1)
    decoded = through_output_path(frames)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    error = np.abs(decoded.astype(int) - frames.astype(int))
    assert 0 < error.mean() < 3  # lossy but close (crf 18)


@pytest.mark.real_data
def test_dlib_measures_a_real_face_on_eats_template_crop(shared_data):
    face_photo = shared_data / "crema_d" / "faces" / "img01.png"
    if not face_photo.is_file():
        pytest.skip(f"{face_photo} absent (the CREMA-D face photos of ../shared/data)")
    from eapc_lightning.landmarks.dlib_detect import TEMPLATE_27_44

    face = cv2.cvtColor(cv2.imread(str(face_photo)), cv2.COLOR_BGR2RGB)
    measured = FrameMeasurer(load_protocol("eat")).measure(np.stack([face, face]))
    assert measured.found.all() and measured.crops.shape == (2, 128, 128, 3)
    # the crop puts the nose and eyes where EAT's template has them (template minus one pixel)
    error = np.linalg.norm(measured.points[0, 27:45] - (TEMPLATE_27_44 - 1), axis=-1)
    assert error.mean() < 3
    assert np.array_equal(measured.points[0], measured.points[1])  # dlib is per frame: deterministic


def test_landmarks_only_under_a_dlib_protocol_is_refused_early(tmp_path, capsys):
    from eapc_lightning.cli import main as eapc

    code = eapc(
        ["evaluate", "--data", str(REPO_ROOT / "data_modules" / "synthetic.yaml")]
        + ["--protocol", "eat", "--landmarks-only", "--out", str(tmp_path)]
    )
    assert code == 1
    assert (
        "eapc evaluate: eat: the eat protocol measures rendered frames with dlib" in capsys.readouterr().err
    )
    assert not any(Path(tmp_path).iterdir())
