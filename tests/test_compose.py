"""Two videos side by side in one mp4 with sound, and ``eapc strip``: evenly spaced frames as one PNG."""

import av
import cv2
import numpy as np
import pytest

from eapc_lightning.cli import main as eapc
from eapc_lightning.prepare.video import read_video
from eapc_lightning.render.compose import strip_indices, video_strip, write_side_by_side
from eapc_lightning.render.video import write_video

RATE = 16000


def grey_video(path, levels, height, width):
    """One flat grey frame per level (H.264 keeps flat frames within a grey level or two)."""
    frames = (np.full((height, width, 3), level, np.uint8) for level in levels)
    return write_video(path, frames)


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def sound(path) -> tuple[float, float]:
    """The audio stream's duration in seconds and the RMS of its decoded samples."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = np.concatenate([frame.to_ndarray().ravel() for frame in container.decode(stream)])
        return float(stream.duration * stream.time_base), float(np.sqrt(np.mean(samples**2)))


def test_side_by_side_pairs_frames_scales_the_right_one_and_keeps_the_sound(tmp_path):
    left_levels = [20 + 10 * k for k in range(12)]
    right_levels = [230 - 10 * k for k in range(15)]
    grey_video(tmp_path / "left.mp4", left_levels, 64, 48)
    grey_video(tmp_path / "right.mp4", right_levels, 32, 32)  # half the height: scaled up to 64 x 64
    out = tmp_path / "both.mp4"
    count = write_side_by_side(tmp_path / "left.mp4", tmp_path / "right.mp4", out, audio=tone(2.0))
    assert count == 12  # the shorter clip
    frames = read_video(out)
    assert frames.shape == (12, 64, 48 + 64, 3)
    # each half shows its own clip's frame k (flat grey, so any scaling keeps the level)
    assert np.allclose(frames[:, 8:-8, 4:44].mean(axis=(1, 2, 3)), left_levels, atol=3)
    assert np.allclose(frames[:, 8:-8, 52:-4].mean(axis=(1, 2, 3)), right_levels[:12], atol=3)
    seconds, rms = sound(out)
    assert seconds == pytest.approx(12 / 25, abs=0.07)  # cut to the pictures, within one AAC frame
    assert rms == pytest.approx(0.3 / np.sqrt(2), rel=0.1)  # the tone, not silence
    assert not list(tmp_path.glob(".both.*"))  # no temporary file left


def test_side_by_side_takes_the_left_videos_sound_by_default_and_labels_the_halves(tmp_path):
    write_video(
        tmp_path / "left.mp4", (np.full((64, 64, 3), 128, np.uint8) for _ in range(25)), audio=tone(1.0)
    )
    grey_video(tmp_path / "right.mp4", [128] * 25, 64, 64)
    out = tmp_path / "both.mp4"
    write_side_by_side(tmp_path / "left.mp4", tmp_path / "right.mp4", out, labels=("vid2vid", "warp"))
    seconds, rms = sound(out)
    assert seconds == pytest.approx(1.0, abs=0.07) and rms == pytest.approx(0.3 / np.sqrt(2), rel=0.1)
    frame = read_video(out)[0]
    # the labels are bright text on a darkened band in each half's top left corner, nowhere else
    for x0 in (0, 64):
        corner = frame[:14, x0 : x0 + 30].max(axis=2)
        assert corner.max() > 200 and corner.min() < 80
    assert np.abs(frame[30:].astype(int) - 128).max() <= 3


def test_side_by_side_names_an_unreadable_video(tmp_path):
    from eapc_lightning.errors import InputError

    grey_video(tmp_path / "left.mp4", [100] * 5, 32, 32)
    (tmp_path / "right.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match="right.mp4"):
        write_side_by_side(tmp_path / "left.mp4", tmp_path / "right.mp4", tmp_path / "o.mp4", audio=tone(1))
    assert not (tmp_path / "o.mp4").exists()


def test_strip_indices_are_evenly_spaced_and_include_both_ends():
    assert strip_indices(20, 6) == [0, 4, 8, 11, 15, 19]
    assert strip_indices(200, 2) == [0, 199]
    assert strip_indices(3, 6) == [0, 1, 2]  # never more frames than the clip has
    assert strip_indices(10, 1) == [0]


def test_strip_command_writes_evenly_spaced_frames(tmp_path, capsys):
    levels = [10 * k for k in range(20)]
    grey_video(tmp_path / "clip.mp4", levels, 96, 64)
    out = tmp_path / "strip.png"
    assert (
        eapc(["strip", str(tmp_path / "clip.mp4"), "--frames", "6", "--height", "48", "--out", str(out)]) == 0
    )
    assert "wrote" in capsys.readouterr().out
    strip = cv2.imread(str(out))[:, :, ::-1]
    width = 32  # 64 x 96 scaled to a height of 48
    assert strip.shape == (48, 6 * width + 5 * 2, 3)
    for number, index in enumerate([0, 4, 8, 11, 15, 19]):
        left = number * (width + 2)
        assert strip[4:-4, left + 4 : left + width - 4].mean() == pytest.approx(levels[index], abs=3)
        if number:
            assert strip[:, left - 2 : left].min() == 255  # the white gap before each frame but the first
    assert np.array_equal(video_strip(tmp_path / "clip.mp4", 6, 48), strip)


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        (["--frames", "0"], 2, "--frames must be >= 1"),
        (["--height", "4"], 2, "--height >= 8"),
    ],
)
def test_strip_command_refuses_bad_numbers(tmp_path, capsys, arguments, status, message):
    grey_video(tmp_path / "clip.mp4", [50] * 4, 32, 32)
    code = eapc(["strip", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "s.png"), *arguments])
    assert code == status
    assert message in capsys.readouterr().err


def test_strip_command_names_an_unreadable_video(tmp_path, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    assert eapc(["strip", str(tmp_path / "broken.mp4"), "--out", str(tmp_path / "s.png")]) == 1
    assert "broken.mp4" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()
