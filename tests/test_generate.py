"""``eapc generate``: real speech + a real face -> mp4 with sound; bad inputs; chunking; checkpoint search."""

import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from eapc_lightning.audio import extract_features, load_audio
from eapc_lightning.audio.chunked import ChunkedFeatureExtractor
from eapc_lightning.audio.features import frames_in
from eapc_lightning.audio.stream import StreamedAudio
from eapc_lightning.cli import main as eapc
from eapc_lightning.errors import InputError
from eapc_lightning.inference.checkpoints import MissingCheckpointError, find_checkpoint, load_module
from eapc_lightning.inference.face_photo import MultipleFacesWarning, load_face_photo
from eapc_lightning.inference.pipeline import GenerateOptions, SilentAudioWarning, generate
from eapc_lightning.metrics.mouth_opening import inner_lip_gap
from helpers.prepare_media import write_wav
from helpers.tiny_models import tiny_models_once

SPEECH = "hdtf/RD_Radio31_000.wav"
DURATION_TOLERANCE = 0.05  # s: the video drops the last partial 40 ms frame; AAC ends on that frame too


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_models_once(tmp_path_factory)


@pytest.fixture(scope="module")
def a2l_module(models):
    from eapc_lightning.inference.checkpoints import resolve_checkpoint

    return load_module("a2l", resolve_checkpoint("a2l", models.a2l))


@pytest.fixture
def face(shared_data) -> Path:
    return shared_data / "crema_d" / "faces" / "img01.png"


def write_stereo_mp3(path: Path, seconds: float, rate: int = 44100) -> Path:
    """A 44.1 kHz stereo mp3 (libmp3lame) of two syllable-like modulated tones."""
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    data = np.stack(
        [0.3 * envelope * np.sin(2 * np.pi * 220 * t), 0.2 * envelope * np.sin(2 * np.pi * 330 * t)]
    )
    data = data.astype(np.float32)
    with av.open(str(path), "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="stereo")
        for start in range(0, data.shape[1], 1152):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(data[:, start : start + 1152]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio
        frames = sum(1 for _ in container.decode(video))
        return {
            "fps": float(video.average_rate),
            "frames": frames,
            "codec": video.codec_context.name,
            "has_audio": bool(audio),
            "audio_seconds": float(audio[0].duration * audio[0].time_base) if audio else 0.0,
        }


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap: distance between the upper (62) and lower (66) inner-lip midpoints."""
    return np.linalg.norm(landmarks[:, 66] - landmarks[:, 62], axis=1)


def energy_envelope(samples: np.ndarray, frames: int) -> np.ndarray:
    """RMS of each video frame's 40 ms of 16 kHz audio."""
    return np.sqrt((samples[: frames * 640].reshape(frames, 640) ** 2).mean(axis=1))


# ------------------------------------------------------------------------------------ end to end


def test_generate_real_speech_and_face(shared_data, face, models, tmp_path, capsys):
    speech = shared_data / SPEECH
    out, landmarks_path = tmp_path / "talking.mp4", tmp_path / "talking.npy"
    code = eapc(
        ["generate", "--audio", str(speech), "--face", str(face), "--a2l", str(models.a2l), "--vid2vid",
         str(models.vid2vid), "--out", str(out), "--save-landmarks", str(landmarks_path), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert str(models.a2l) in printed
    samples = load_audio(speech)
    seconds = len(samples) / 16000
    info = probe(out)
    assert info["fps"] == 25 and info["codec"] == "h264" and info["has_audio"]
    assert abs(info["frames"] / 25 - seconds) <= DURATION_TOLERANCE
    assert abs(info["audio_seconds"] - seconds) <= DURATION_TOLERANCE
    landmarks = np.load(landmarks_path)
    assert landmarks.shape == (info["frames"], 68, 2)
    r = np.corrcoef(mouth_opening(landmarks), energy_envelope(samples, len(landmarks)))[0, 1]
    assert r > 0.3, f"mouth opening vs audio energy: r = {r:.3f}"
    gap = inner_lip_gap(landmarks)  # the printed span is the saved landmarks' one
    assert f"inner-lip gap {gap.min():.1f} to {gap.max():.1f} px" in printed


def test_landmarks_only_needs_no_vid2vid_and_emotion_changes_face(shared_data, face, models, tmp_path):
    speech = shared_data / SPEECH
    runs = tmp_path / "runs"
    shutil.copytree(models.a2l.parents[1], runs / "a2l" / "tiny")  # only an a2l run: no vid2vid anywhere
    outputs = {}
    for emotion in ("happy", "sad"):
        out = tmp_path / f"{emotion}.mp4"
        options = GenerateOptions(
            audio=speech, face=face, out=out, emotion=emotion, intensity=3, landmarks_only=True,
            landmarks_npy=tmp_path / f"{emotion}.npy", runs_dir=runs,
        )  # fmt: skip
        result = generate(options)
        assert result.vid2vid is None and result.a2l.path.parent.parent == runs / "a2l" / "tiny"
        assert probe(out)["has_audio"]
        outputs[emotion] = np.load(tmp_path / f"{emotion}.npy")
    assert not np.allclose(outputs["happy"], outputs["sad"])  # the forced emotion reaches the landmarks


# ------------------------------------------------------------------------------------ chunking


def test_chunked_features_and_landmarks_equal_whole_file(tmp_path, a2l_module):
    rng = np.random.default_rng(3)
    t = np.arange(int(16000 * 3.37)) / 16000  # 84.25 frames: not a multiple of the chunk
    samples = (0.2 * np.sin(2 * np.pi * 180 * t) * np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None)).astype(
        np.float32
    )
    samples += 0.01 * rng.standard_normal(len(t)).astype(np.float32)
    path = write_wav(tmp_path / "speech.wav", samples)
    whole = load_audio(path)
    frames = frames_in(whole)
    expected = extract_features(whole, frames)
    reference = reference_face()
    whole_landmarks = a2l_module.predict_clip(expected["mfcc"], expected["llf"], reference).numpy()
    with StreamedAudio(path) as audio:
        assert np.array_equal(audio.read(0, audio.num_samples), whole)
        chunks = list(ChunkedFeatureExtractor(audio, frames, chunk_frames=17).chunks())
    mfcc = np.concatenate([c.mfcc for c in chunks])
    llf = np.concatenate([c.llf for c in chunks])
    np.testing.assert_allclose(mfcc, expected["mfcc"], atol=1e-4)
    np.testing.assert_allclose(llf, expected["llf"], atol=1e-5)
    stream = a2l_module.landmark_stream(reference)
    streamed = np.concatenate([stream(c.mfcc, c.llf).numpy() for c in chunks])
    np.testing.assert_allclose(streamed, whole_landmarks, atol=1e-3)


def reference_face() -> np.ndarray:
    """Fixed reference landmarks scattered around the canonical face centre (any points do here)."""
    from eapc_lightning.landmarks.align import CANONICAL_ANCHORS

    rng = np.random.default_rng(0)
    centre = CANONICAL_ANCHORS.mean(axis=0)
    return (centre + rng.normal(0, 40, (68, 2))).astype(np.float32)


# ------------------------------------------------------------------------------------ bad inputs


def run_generate(audio, face, models, out, *extra) -> int:
    return eapc(
        ["generate", "--audio", str(audio), "--face", str(face), "--a2l", str(models.a2l), "--vid2vid",
         str(models.vid2vid), "--out", str(out), "--no-progress", *extra]
    )  # fmt: skip


def test_no_face_is_an_error_naming_the_photo(shared_data, models, tmp_path, capsys):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    assert run_generate(shared_data / SPEECH, blank, models, tmp_path / "x.mp4") == 1
    error = capsys.readouterr().err
    assert str(blank) in error and "no face" in error
    assert not (tmp_path / "x.mp4").exists()


def test_two_faces_take_the_largest_with_a_warning(shared_data, models, tmp_path, capsys):
    faces = shared_data / "crema_d" / "faces"
    big = cv2.imread(str(faces / "img02.png"))
    small = cv2.resize(cv2.imread(str(faces / "img03.png")), (96, 96))
    canvas = np.zeros((128, 224, 3), np.uint8)
    canvas[:, :128], canvas[16:112, 128:] = big, small
    both = tmp_path / "two.png"
    cv2.imwrite(str(both), canvas)
    with pytest.warns(MultipleFacesWarning, match="2 faces"):
        photo = load_face_photo(both)
    assert photo.face_count == 2
    assert photo.landmarks[:, 0].max() < 128  # the larger face is the left one
    assert run_generate(shared_data / SPEECH, both, models, tmp_path / "two.mp4", "--landmarks-only") == 0
    assert "2 faces found; using the largest" in capsys.readouterr().err


def test_silent_audio_gives_a_still_face_and_a_warning(face, models, tmp_path):
    silent = write_wav(tmp_path / "silent.wav", np.zeros(16000 * 2, np.float32))
    options = GenerateOptions(
        audio=silent, face=face, out=tmp_path / "s.mp4", a2l=models.a2l, vid2vid=models.vid2vid,
        landmarks_npy=tmp_path / "s.npy",
    )  # fmt: skip
    with pytest.warns(SilentAudioWarning, match="silent"):
        result = generate(options)
    assert result.num_frames == 50 and probe(tmp_path / "s.mp4")["has_audio"]
    assert np.isfinite(np.load(tmp_path / "s.npy")).all()


def test_one_second_of_audio(face, models, tmp_path):
    t = np.arange(16000) / 16000
    speech = write_wav(tmp_path / "one.wav", 0.3 * np.sin(2 * np.pi * 200 * t))
    result = generate(
        GenerateOptions(
            audio=speech, face=face, out=tmp_path / "one.mp4", a2l=models.a2l, vid2vid=models.vid2vid
        )
    )
    info = probe(tmp_path / "one.mp4")
    assert result.num_frames == info["frames"] == 25 and info["has_audio"]


def test_shorter_than_one_frame_is_an_error(face, models, tmp_path):
    speech = write_wav(tmp_path / "blip.wav", np.full(300, 0.1, np.float32))
    with pytest.raises(InputError, match=r"blip\.wav: audio lasts 19 ms"):
        generate(
            GenerateOptions(
                audio=speech, face=face, out=tmp_path / "b.mp4", a2l=models.a2l, landmarks_only=True
            )
        )


def test_stereo_44k_mp3(face, models, tmp_path):
    mp3 = write_stereo_mp3(tmp_path / "speech.mp3", seconds=2.3)
    with StreamedAudio(mp3) as audio:  # streamed resampling equals whole-file decoding
        assert audio.native_rate == 44100 and audio.channels == 2
        np.testing.assert_array_equal(audio.read(0, audio.num_samples), load_audio(mp3))
        seconds = audio.duration
    result = generate(
        GenerateOptions(
            audio=mp3, face=face, out=tmp_path / "mp3.mp4", a2l=models.a2l, vid2vid=models.vid2vid
        )
    )
    info = probe(tmp_path / "mp3.mp4")
    assert result.num_frames == info["frames"] == int(seconds * 25)
    assert abs(info["audio_seconds"] - info["frames"] / 25) <= DURATION_TOLERANCE


@pytest.mark.parametrize("which", ["audio", "face"])
def test_unreadable_files_are_errors_naming_them(shared_data, face, models, tmp_path, capsys, which):
    garbage = tmp_path / ("speech.wav" if which == "audio" else "photo.png")
    garbage.write_bytes(b"this is not media\n" * 50)
    audio = garbage if which == "audio" else shared_data / SPEECH
    photo = garbage if which == "face" else face
    assert run_generate(audio, photo, models, tmp_path / "x.mp4") == 1
    error = capsys.readouterr().err
    assert str(garbage) in error
    assert ("cannot decode audio" if which == "audio" else "not a readable image") in error


# ------------------------------------------------------------------------------------ checkpoints


def test_newest_checkpoint_is_found_and_missing_ones_explain_how_to_train(models, tmp_path):
    assert find_checkpoint("a2l", models.root / "runs").path == models.a2l
    assert find_checkpoint("vid2vid", models.root / "runs").path == models.vid2vid
    with pytest.raises(MissingCheckpointError, match="make demo"):
        find_checkpoint("a2l", tmp_path / "nothing")


def test_a_file_that_is_no_checkpoint_is_an_input_error(tmp_path):
    from eapc_lightning.inference.checkpoints import resolve_checkpoint

    bogus = tmp_path / "model.ckpt"
    torch.save({"not": "a lightning checkpoint"}, bogus)
    with pytest.raises(InputError, match="model.ckpt: not a checkpoint of the audio-to-landmark model"):
        load_module("a2l", resolve_checkpoint("a2l", bogus))
