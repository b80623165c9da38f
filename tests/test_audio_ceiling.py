"""The leave-one-clip-out audio-to-mouth regression: against least squares by hand, a gap the features
determine, and one they do not."""

import numpy as np
import pytest

from eapc_lightning.cli import main as eapc
from eapc_lightning.evaluation.audio_ceiling import (
    AudioCeiling,
    frame_rows,
    leave_one_clip_out_r,
    write_audio_ceiling,
)


def clips(count: int, frames: int, seed: int, linked: bool):
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=28 * 12 + 25)
    rows, gaps = [], []
    for _ in range(count):
        mfcc = rng.normal(size=(frames, 28, 12)) * rng.uniform(0.5, 2) + rng.normal(0, 3)
        llf = rng.normal(size=(frames, 25))
        row = frame_rows(mfcc, llf)
        signal = row @ direction if linked else rng.normal(size=frames)
        rows.append(row)
        gaps.append(4 + 0.5 * signal + 0.2 * rng.normal(size=frames))  # pixels, any offset and scale
    return rows, gaps


def test_rows_are_standardised_per_clip():
    rng = np.random.default_rng(0)
    rows = frame_rows(rng.normal(5, 3, (40, 28, 12)), rng.normal(-2, 7, (40, 25)))
    assert rows.shape == (40, 361)
    np.testing.assert_allclose(rows.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(rows.std(0), 1, atol=1e-6)


def test_a_gap_the_features_determine_is_found_and_an_unrelated_one_is_not():
    rows, gaps = clips(6, 200, seed=1, linked=True)
    assert np.mean(leave_one_clip_out_r(rows, gaps, ridge=1.0)) > 0.9
    rows, gaps = clips(6, 200, seed=2, linked=False)
    assert abs(np.mean(leave_one_clip_out_r(rows, gaps, ridge=1.0))) < 0.1


def test_held_out_prediction_equals_least_squares_on_the_other_clips():
    rng = np.random.default_rng(3)
    rows = [rng.normal(size=(30, 4)) for _ in range(3)]
    gaps = [rng.normal(size=30) for _ in range(3)]
    scores = leave_one_clip_out_r(rows, gaps, ridge=0.0)
    standard = [(g - g.mean()) / g.std() for g in gaps]
    weights, *_ = np.linalg.lstsq(np.concatenate(rows[1:]), np.concatenate(standard[1:]), rcond=None)
    expected = np.corrcoef(rows[0] @ weights, standard[0])[0, 1]
    assert scores[0] == pytest.approx(expected, abs=1e-9)


def test_one_clip_is_refused_and_the_table_lists_every_clip(tmp_path):
    with pytest.raises(ValueError, match="at least two clips"):
        leave_one_clip_out_r([np.zeros((5, 2))], [np.arange(5.0)])
    path = write_audio_ceiling(AudioCeiling(("a", "b"), (0.25, 0.75), 1e4), tmp_path)
    text = path.read_text()
    assert "**0.500**" in text and "clips above 0.5: 1" in text and "| b | 0.750 |" in text


def test_the_command_scores_every_clip_of_a_cache_and_refuses_a_single_clip(tmp_path, capsys):
    from helpers.fake_clip_cache import write_fake_cache

    write_fake_cache(
        tmp_path / "cache", speakers=("M001", "W001"), clips_per_speaker=2, frame_counts=(30, 41)
    )
    assert (
        eapc(["audio-ceiling", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]) == 0
    )
    table = (tmp_path / "out" / "audio_ceiling.md").read_text()
    assert (
        table.count("\n| M001") + table.count("\n| W001") == 4 and "mean mouth r" in capsys.readouterr().out
    )
    write_fake_cache(tmp_path / "one", speakers=("M001",), clips_per_speaker=1, frame_counts=(30,))
    assert eapc(["audio-ceiling", "--cache-dir", str(tmp_path / "one"), "--out", str(tmp_path / "out")]) == 1
    assert "at least two clips" in capsys.readouterr().err
