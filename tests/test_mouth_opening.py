"""Inner-lip gap and its correlation (metrics/mouth_opening.py); ``eapc evaluate --split all`` scores every clip."""

import csv

import numpy as np
import pytest
import yaml

from eapc_lightning.cli import main as eapc
from eapc_lightning.data.index import list_clips
from eapc_lightning.metrics.mouth_opening import (
    LOWER_INNER_LIP,
    UPPER_INNER_LIP,
    inner_lip_gap,
    mouth_opening_stats,
    pearson,
    summarise,
)
from helpers.tiny_models import tiny_models_once


def _face_with_gaps(gaps) -> np.ndarray:
    """(T, 68, 2) landmarks at random places whose inner lips are ``gaps`` apart (upper points at y = 100)."""
    rng = np.random.default_rng(3)
    points = rng.uniform(50, 200, size=(len(gaps), 68, 2))
    for upper, lower in zip(UPPER_INNER_LIP, LOWER_INNER_LIP):
        points[:, upper, 1] = 100.0
        points[:, lower, 1] = 100.0 + np.asarray(gaps, dtype=np.float64)
    return points


def test_inner_lip_gap_is_the_mean_vertical_distance_of_the_three_point_pairs():
    points = np.zeros((1, 68, 2))
    points[0, [61, 62, 63], 1] = [120.0, 118.0, 121.0]
    points[0, [67, 66, 65], 1] = [126.0, 130.0, 124.0]
    points[0, :, 0] = np.arange(68)  # x plays no part
    expected = ((126 - 120) + (130 - 118) + (124 - 121)) / 3
    assert inner_lip_gap(points) == pytest.approx([expected])
    assert inner_lip_gap(points[0]) == pytest.approx(expected)  # one frame, no time axis
    with pytest.raises(ValueError, match=r"\(\.\.\., 68, 2\)"):
        inner_lip_gap(np.zeros((4, 20, 2)))


def test_pearson_matches_numpy_and_is_none_for_a_constant_sequence():
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    b = 0.6 * a + rng.normal(size=50)
    assert pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], rel=1e-12)
    assert pearson(a, 3 * a + 7) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert pearson(a, np.full(50, 2.5)) is None
    assert pearson([1.0], [2.0]) is None
    with pytest.raises(ValueError, match="differ in length"):
        pearson(a, b[:-1])


def test_mouth_opening_stats_against_a_hand_computation():
    true_gaps = np.array([0.0, 4.0, 10.0, 2.0, 6.0, 1.0])
    predicted_gaps = np.array([1.0, 2.0, 5.0, 2.5, 2.0, 1.5])
    stats = mouth_opening_stats(_face_with_gaps(predicted_gaps), _face_with_gaps(true_gaps))
    assert stats.r == pytest.approx(np.corrcoef(predicted_gaps, true_gaps)[0, 1])
    assert stats.std_ratio == pytest.approx(predicted_gaps.std() / true_gaps.std())
    assert (stats.predicted_min, stats.predicted_max) == pytest.approx((1.0, 5.0))
    assert (stats.true_min, stats.true_max, stats.true_range) == pytest.approx((0.0, 10.0, 10.0))
    assert stats.predicted_range == pytest.approx(4.0)

    held = mouth_opening_stats(_face_with_gaps(np.full(6, 3.0)), _face_with_gaps(true_gaps))
    assert held.r is None and held.std_ratio == pytest.approx(0.0) and held.predicted_range == 0.0
    with pytest.raises(ValueError, match="same T"):
        mouth_opening_stats(_face_with_gaps(predicted_gaps[:5]), _face_with_gaps(true_gaps))


def test_summary_means_over_the_clips_where_defined():
    true_gaps = np.array([0.0, 4.0, 10.0, 2.0])
    follows = mouth_opening_stats(_face_with_gaps(true_gaps / 2), _face_with_gaps(true_gaps))
    opposes = mouth_opening_stats(_face_with_gaps(10 - true_gaps), _face_with_gaps(true_gaps))
    still = mouth_opening_stats(_face_with_gaps(np.ones(4)), _face_with_gaps(true_gaps))
    summary = summarise([follows, opposes, still])
    assert summary.clips == 3 and summary.clips_r_above == 1
    assert summary.mean_r == pytest.approx(0.0, abs=1e-12)  # (1 + -1) / 2; the still clip has no r
    assert summary.mean_std_ratio == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert summary.mean_predicted_range == pytest.approx((5 + 10 + 0) / 3)
    assert summary.mean_true_range == pytest.approx(10.0)
    assert summarise([]).mean_r is None


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_models_once(tmp_path_factory)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_evaluate_split_all_scores_every_clip_with_mouth_opening_columns(models, tmp_path):
    data_yaml = tmp_path / "synthetic_tiny.yaml"
    init_args = {"cache_dir": str(models.cache), "val_fraction": 0.0, "test_fraction": 0.5, "seed": 0}
    config = {
        "data": {"class_path": "eapc_lightning.data.datamodule.LandmarkDataModule", "init_args": init_args}
    }
    data_yaml.write_text(yaml.safe_dump(config))
    every_clip = sorted(record.clip_id for record in list_clips(models.cache))
    base = ["evaluate", "--data", str(data_yaml), "--a2l", str(models.a2l), "--landmarks-only"]

    assert eapc([*base, "--split", "all", "--out", str(tmp_path / "all")]) == 0
    rows = read_csv(tmp_path / "all" / "per_clip.csv")
    assert sorted(row["clip_id"] for row in rows) == every_clip
    assert all(row["status"] == "ok" for row in rows)
    for row in rows:
        assert -1 <= float(row["mouth_r"]) <= 1 and float(row["mouth_std_ratio"]) >= 0
        assert float(row["pred_gap_range"]) == pytest.approx(
            float(row["pred_gap_max"]) - float(row["pred_gap_min"]), abs=1e-4
        )
        assert float(row["true_gap_max"]) >= float(row["true_gap_min"])
        assert float(row["held_still_M-LD"]) > 0
        # the audio level's r with the true gap, from the cache by hand (frame 0 is the reference, never scored)
        arrays = np.load(models.cache / "clips" / f"{row['clip_id']}.npz")
        level = 20 * np.log10(np.maximum(arrays["llf"][1:, 0], 1e-6))
        expected = np.corrcoef(level, inner_lip_gap(arrays["landmarks"][1:]))[0, 1]
        assert float(row["level_mouth_r"]) == pytest.approx(expected, abs=1e-4)

    stage = {row["method"]: row for row in read_csv(tmp_path / "all" / "landmark_stage.csv")}
    ours, held = stage["EAPC (ours, predicted landmarks)"], stage["Reference held still"]
    assert int(ours["clips"]) == len(every_clip)
    mean_r = np.mean([float(row["mouth_r"]) for row in rows])
    assert float(ours["mouth r"]) == pytest.approx(mean_r, abs=1e-5)
    assert int(ours["clips r > 0.5"]) == sum(float(row["mouth_r"]) > 0.5 for row in rows)
    assert held["mouth r"] == "" and float(held["predicted gap range"]) == 0.0
    assert float(held["M-LD"]) > 0
    markdown = (tmp_path / "all" / "table1.md").read_text()
    assert "| Reference held still |" in markdown and f"/{len(every_clip)} |" in markdown

    # the default still scores the test split only: one of the two speakers
    assert eapc([*base, "--out", str(tmp_path / "test")]) == 0
    test_rows = read_csv(tmp_path / "test" / "per_clip.csv")
    assert 1 <= len(test_rows) < len(every_clip)
