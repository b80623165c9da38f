"""Landmark drawing and mp4 writing, checked by reading pixels and streams back."""

import av
import numpy as np
import pytest

from eapc_lightning.constants import JAW, NUM_LANDMARKS
from eapc_lightning.render import comparison_frames, draw_landmarks, sequence_grid, side_by_side, write_video


def _points_with_jaw_on_row(row: float) -> np.ndarray:
    """Jaw 0-16 evenly from x=20 to x=180 on ``row``; every other point parked at (230, 230)."""
    points = np.full((NUM_LANDMARKS, 2), 230.0)
    points[list(JAW), 0] = np.linspace(20.0, 180.0, len(JAW))
    points[list(JAW), 1] = row
    return points


def _is_yellow(pixel: np.ndarray) -> bool:
    red, green, blue = (int(v) for v in pixel)
    return red > 200 and green > 150 and blue < 60


def test_jaw_line_drawn_at_known_pixels_and_nowhere_else():
    canvas = np.zeros((256, 256, 3), dtype=np.uint8)
    draw_landmarks(canvas, _points_with_jaw_on_row(100.0))
    for column in (25, 60, 100, 175):
        assert _is_yellow(canvas[100, column]), column
    assert not canvas[90].any() and not canvas[110].any()  # the line is one pixel thick
    assert not canvas[100, :15].any() and not canvas[100, 186:225].any()  # ends at x=20 and x=180


def test_scale_maps_source_frame_to_panel_size():
    canvas = np.zeros((512, 512, 3), dtype=np.uint8)
    draw_landmarks(canvas, _points_with_jaw_on_row(100.0), scale=2.0)
    assert _is_yellow(canvas[200, 200]) and not canvas[100].any()


def test_points_that_are_not_finite_are_skipped():
    points = _points_with_jaw_on_row(100.0)
    points[8] = np.nan  # jaw middle (x=100) missing: the two segments touching it are not drawn
    canvas = np.zeros((256, 256, 3), dtype=np.uint8)
    draw_landmarks(canvas, points)
    assert _is_yellow(canvas[100, 40]) and not canvas[100, 95:106].any()


def test_side_by_side_puts_prediction_left_and_truth_right():
    frame = side_by_side(_points_with_jaw_on_row(60.0), _points_with_jaw_on_row(200.0), 256, labels=("", ""))
    assert frame.shape == (256, 512, 3)
    assert _is_yellow(frame[60, 100]) and not frame[200, 100].any()
    assert _is_yellow(frame[200, 256 + 100]) and not frame[60, 256 + 100].any()


def test_sequence_grid_rows_and_columns():
    predicted = np.stack([_points_with_jaw_on_row(50.0)] * 5)
    true = np.stack([_points_with_jaw_on_row(150.0)] * 5)
    grid = sequence_grid(predicted, true, num_frames=4, size=128)
    assert grid.shape == (256, 512, 3)
    assert _is_yellow(grid[25, 3 * 128 + 50])  # row 50 at half scale, fourth column, top row
    assert _is_yellow(grid[128 + 75, 50])  # row 150 at half scale, bottom row


def _stream_facts(path):
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        facts = {
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "fps": float(video.average_rate),
            "video_duration": float(video.duration * video.time_base),
            "size": (video.codec_context.width, video.codec_context.height),
        }
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        facts["frames"] = frames
        if audio is not None:
            facts["audio_codec"] = audio.codec_context.name
            facts["audio_rate"] = audio.rate
            facts["audio_duration"] = float(audio.duration * audio.time_base)
    return facts


def _grey_frames(count: int, height: int = 64, width: int = 96):
    for index in range(count):
        yield np.full((height, width, 3), 20 + (200 * index) // max(count - 1, 1), dtype=np.uint8)


def test_written_mp4_has_frames_rate_duration_and_synced_audio(tmp_path):
    seconds = np.arange(int(16000 * 2.5)) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * seconds)).astype(np.float32)  # longer than the video
    path = tmp_path / "clip.mp4"
    assert write_video(path, _grey_frames(50), fps=25, audio=tone, sample_rate=16000) == 50
    facts = _stream_facts(path)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert facts["fps"] == 25.0 and facts["size"] == (96, 64)
    assert len(facts["frames"]) == 50
    assert facts["video_duration"] == pytest.approx(2.0, abs=1e-6)
    assert facts["audio_codec"] == "aac" and facts["audio_rate"] == 16000
    assert facts["audio_duration"] == pytest.approx(2.0, abs=0.07)  # cut to the video, within one AAC frame
    brightness = [frame.mean() for frame in facts["frames"]]
    assert brightness == sorted(brightness) and brightness[-1] - brightness[0] > 150  # frames in order
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary file left


def test_audio_from_a_file_path_and_silence_padding(tmp_path):
    source = tmp_path / "source.mp4"
    write_video(source, _grey_frames(10), audio=np.full(16000, 0.2, dtype=np.float32))
    target = tmp_path / "with_sound.mp4"
    write_video(target, _grey_frames(75), audio=source)  # 0.4 s of sound under 3 s of video
    facts = _stream_facts(target)
    assert len(facts["frames"]) == 75
    assert facts["audio_duration"] == pytest.approx(3.0, abs=0.07)


def test_video_without_audio_and_streamed_comparison_frames(tmp_path):
    predicted = np.stack([_points_with_jaw_on_row(60.0 + t) for t in range(6)])
    true = np.stack([_points_with_jaw_on_row(120.0 + t) for t in range(6)])
    path = tmp_path / "compare.mp4"
    assert write_video(path, comparison_frames(predicted, true, size=128)) == 6
    facts = _stream_facts(path)
    assert "audio_codec" not in facts and facts["size"] == (256, 128) and len(facts["frames"]) == 6


def test_bad_frames_raise_and_leave_no_file(tmp_path):
    path = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match="even width and height"):
        write_video(path, [np.zeros((63, 96, 3), dtype=np.uint8)])
    with pytest.raises(ValueError, match="no frames"):
        write_video(path, iter(()))
    with pytest.raises(ValueError, match="differs from the first frame"):
        write_video(path, [np.zeros((64, 96, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)])
    assert list(tmp_path.iterdir()) == []
