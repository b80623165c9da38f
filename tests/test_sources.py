"""Dataset enumeration and label parsing (no decoding), frame-rate resampling and gap filling."""

import csv
import hashlib
from pathlib import Path

import av
import numpy as np
import pytest

from eapc_lightning.constants import CREMA_D_EMOTIONS, EMOTIONS
from eapc_lightning.errors import InputError
from eapc_lightning.landmarks.gaps import NoUsableFaceError, fill_gaps, missing_runs
from eapc_lightning.prepare.sources import (
    crema_d_items,
    enumerate_items,
    filter_items,
    folder_items,
    mead_items,
    parse_crema_d_name,
    safe_id,
)
from eapc_lightning.prepare.video import count_frames, probe_video, read_video


def touch(path: Path, payload: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


# ---------------------------------------------------------------- MEAD


def test_mead_crops_parse_all_24_clips(shared_data):
    items = mead_items(shared_data / "mead_crops")
    assert len(items) == 24
    assert all(item.error is None for item in items)
    assert {item.speaker for item in items} == {"M030", "W009", "W011"}
    assert {item.emotion for item in items} == set(EMOTIONS)
    for item in items:
        # labels read back independently from the path components
        speaker, _, view, emotion, level_dir, name = item.video.relative_to(shared_data / "mead_crops").parts
        assert (item.speaker, item.view, item.emotion) == (speaker, view, emotion)
        assert item.level == int(level_dir.removeprefix("level_")) and item.level in (1, 3)
        assert item.clip_id == f"{speaker}_front_{emotion}_{level_dir}_{Path(name).stem}"
        assert item.audio == item.video  # no .m4a in this sample: the video's own (absent) track
    assert len({item.clip_id for item in items}) == 24


def test_mead_layout_audio_and_bad_folders(tmp_path):
    touch(tmp_path / "M003/video/front/angry/level_1/001.mp4")
    audio = touch(tmp_path / "M003/audio/angry/level_1/001.m4a")
    touch(tmp_path / "M003/video/front/joyful/level_2/002.mp4")
    touch(tmp_path / "M003/video/left_30/sad/level_3/003.mp4")
    touch(tmp_path / "M003/video/front/sad/level_9/004.mp4")
    touch(tmp_path / "W015/video/front/sad/005.mp4")
    items = {item.clip_id: item for item in mead_items(tmp_path)}
    good = items["M003_front_angry_level_1_001"]
    assert good.audio == audio and good.error is None and (good.emotion, good.level) == ("angry", 1)
    assert "unknown emotion folder 'joyful'" in items["M003_front_joyful_level_2_002"].error
    assert items["M003_left_30_sad_level_3_003"].view == "left_30"
    assert "level_9" in items["M003_front_sad_level_9_004"].error
    assert "not in MEAD layout" in items["W015__video__front__sad__005"].error
    front = filter_items(items.values(), views=["front"], speakers=["M003"])
    assert {item.clip_id for item in front} == {
        "M003_front_angry_level_1_001",
        "M003_front_joyful_level_2_002",
        "M003_front_sad_level_9_004",
    }
    # the emotion filter matches the folder name, so a misspelt folder asked for is still reported
    joyful = filter_items(items.values(), emotions=["joyful"])
    assert [item.clip_id for item in joyful] == ["M003_front_joyful_level_2_002"]


# ---------------------------------------------------------------- CREMA-D


def test_crema_d_parser_accepts_every_real_name(shared_data):
    with open(shared_data / "crema_d/SentenceFilenames.csv", newline="") as handle:
        names = [row["Filename"] for row in csv.DictReader(handle)]
    assert len(names) == 7442
    actors = set()
    for name in names:
        parsed = parse_crema_d_name(name)
        actor, sentence, emotion, level = name.split("_")
        assert parsed.actor == actor and parsed.sentence == sentence
        assert parsed.emotion == CREMA_D_EMOTIONS[emotion] and parsed.emotion in EMOTIONS
        assert parsed.level == {"LO": 1, "MD": 2, "HI": 3, "XX": 2}[level]
        actors.add(actor)
    assert len(actors) == 91


@pytest.mark.parametrize(
    "name, reason",
    [
        ("1001_DFA_ANG", "malformed"),
        ("1001-DFA-ANG-XX", "malformed"),
        ("101_DFA_ANG_XX", "malformed"),
        ("1001_ABC_ANG_XX", "sentence code 'ABC'"),
        ("1001_DFA_JOY_XX", "emotion code 'JOY'"),
        ("1001_DFA_ANG_VH", "intensity code 'VH'"),
    ],
)
def test_crema_d_parser_rejects_malformed_names(name, reason):
    with pytest.raises(ValueError, match=reason):
        parse_crema_d_name(name)


def test_crema_d_items_take_audio_from_audiowav(tmp_path):
    touch(tmp_path / "VideoFlash/1001_DFA_ANG_XX.flv")
    wav = touch(tmp_path / "AudioWAV/1001_DFA_ANG_XX.wav")
    touch(tmp_path / "VideoFlash/1002_IEO_HAP_HI.flv")
    touch(tmp_path / "VideoFlash/clip_final.flv")
    items = {item.clip_id: item for item in crema_d_items(tmp_path)}
    assert items["1001_DFA_ANG_XX"].audio == wav
    assert (items["1001_DFA_ANG_XX"].speaker, items["1001_DFA_ANG_XX"].emotion) == ("1001", "angry")
    assert items["1002_IEO_HAP_HI"].audio == items["1002_IEO_HAP_HI"].video  # no wav: the flv's track
    assert items["1002_IEO_HAP_HI"].level == 3
    assert "malformed CREMA-D name 'clip_final'" in items["clip_final"].error
    with pytest.raises(InputError, match="VideoFlash"):
        crema_d_items(tmp_path / "VideoFlash")


# ---------------------------------------------------------------- folder


def test_folder_items_with_and_without_labels(tmp_path):
    touch(tmp_path / "alice/take 1.mp4")
    wav = touch(tmp_path / "alice/take 1.wav")
    touch(tmp_path / "bob/x.MOV")
    touch(tmp_path / "bob/x.mkv")
    touch(tmp_path / "bob/notes.txt")
    items = {item.clip_id: item for item in folder_items(tmp_path)}
    suffix = hashlib.sha1(b"bob/x.mkv").hexdigest()[:8]  # second of two names that clash
    assert set(items) == {"alice__take_1", "bob__x", f"bob__x-{suffix}"}
    assert items["bob__x"].video.name == "x.MOV"
    alice = items["alice__take_1"]
    assert alice.audio == wav and alice.speaker == "alice" and alice.emotion is None and alice.level is None

    labels = tmp_path / "labels.csv"
    labels.write_text(
        "path,speaker,emotion,level\n"
        "alice/take 1.mp4,A1,happy,2\n"
        "bob/x.MOV,B1,joy,1\n"
        "bob/missing.mp4,B1,sad,1\n"
    )
    labelled = {item.video.name: item for item in enumerate_items("folder", tmp_path, labels_csv=labels)}
    assert (labelled["take 1.mp4"].speaker, labelled["take 1.mp4"].emotion, labelled["take 1.mp4"].level) == (
        "A1",
        "happy",
        2,
    )
    assert "unknown emotion 'joy'" in labelled["x.MOV"].error
    assert labelled["x.mkv"].emotion is None and labelled["x.mkv"].speaker == "bob"
    assert "no such video file" in labelled["missing.mp4"].error

    (tmp_path / "bad.csv").write_text("file,emotion\n")
    with pytest.raises(InputError, match="lacks column"):
        folder_items(tmp_path, tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="folder dataset only"):
        enumerate_items("mead", tmp_path, labels_csv=labels)


def test_safe_id():
    assert safe_id("a/b c/d.e") == "a__b_c__d.e"
    assert safe_id("../x") == "x"


# ---------------------------------------------------------------- video decoding


def write_indexed_video(path: Path, frames: int, rate: int, size: int = 64) -> None:
    """A clip whose frame i shows i in binary as 8 black/white stripes (robust to lossy coding)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stripe = size // 8
        for index in range(frames):
            image = np.zeros((size, size, 3), np.uint8)
            for bit in range(8):
                if (index >> bit) & 1:
                    image[:, bit * stripe : (bit + 1) * stripe] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def frame_index(image: np.ndarray) -> int:
    stripe = image.shape[1] // 8
    return sum(
        int(image[image.shape[0] // 2, bit * stripe + stripe // 2].mean() > 127) << bit for bit in range(8)
    )


@pytest.mark.parametrize("rate, frames", [(30, 90), (25, 40), (50, 60)])
def test_video_resampled_to_25_fps_by_timestamp(tmp_path, rate, frames):
    path = tmp_path / f"clip{rate}.mp4"
    write_indexed_video(path, frames, rate)
    video = read_video(path)
    expected_count = round(frames / rate * 25)
    # output frame k shows the source frame nearest to time k/25: index k*rate/25 (no ties here)
    expected = [round(k * rate / 25) for k in range(expected_count)]
    assert [frame_index(frame) for frame in video] == expected
    assert count_frames(path) == expected_count
    info = probe_video(path)
    assert (info.width, info.height, info.fps, info.has_audio) == (64, 64, rate, False)
    assert info.frames_at(25) == expected_count


def test_video_errors_name_the_file(tmp_path):
    empty = touch(tmp_path / "empty.mp4", b"")
    text = touch(tmp_path / "text.mp4", b"this is not a video\n" * 20)
    for path, reason in [
        (empty, "empty"),
        (text, "not a readable video"),
        (tmp_path / "nope.mp4", "not found"),
    ]:
        with pytest.raises(InputError, match=reason) as caught:
            read_video(path)
        assert str(path) in str(caught.value)


# ---------------------------------------------------------------- gap filling


def test_short_gaps_interpolated_linearly_and_ends_held():
    T = 10
    truth = np.arange(T, dtype=np.float32)[:, None, None] * np.ones((1, 68, 2), np.float32)
    found = np.ones(T, bool)
    found[[0, 4, 5, 9]] = False
    points = np.where(found[:, None, None], truth, np.nan)
    report = fill_gaps(points, found, max_gap=2)
    [segment] = report.segments
    assert (segment.start, segment.stop) == (0, T) and not report.notes
    expected = truth.copy()
    expected[0], expected[9] = truth[1], truth[8]  # ends repeat the nearest detection
    np.testing.assert_allclose(segment.landmarks, expected)  # interior gap 4-5 lies on the line
    np.testing.assert_array_equal(segment.detected, found)


def test_long_gaps_split_or_drop():
    found = np.ones(60, bool)
    found[20:30] = False  # 10 frames
    found[55:60] = False  # 5 frames at the end
    points = np.where(found[:, None, None], 1.0, np.nan) * np.ones((60, 68, 2))
    report = fill_gaps(points, found, max_gap=4, policy="split", min_segment_frames=21)
    assert [(s.start, s.stop) for s in report.segments] == [(30, 55)]
    assert any("frames 20-29" in note for note in report.notes)
    assert any("0-19 dropped" in note for note in report.notes)
    with pytest.raises(NoUsableFaceError, match="10 consecutive frames"):
        fill_gaps(points, found, max_gap=4, policy="drop")
    with pytest.raises(NoUsableFaceError, match="no face detected"):
        fill_gaps(points, np.zeros(60, bool), max_gap=4)
    assert missing_runs(found) == [(20, 30), (55, 60)]
