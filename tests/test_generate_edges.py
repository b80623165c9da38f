"""``eapc generate`` at its edges: output paths that cannot be written, signals, stale temporary files,
a device the machine lacks, a checkpoint of the other model.

Signals: SIGTERM ends the command with exit status 143 and SIGINT (Ctrl-C) with 130, each after one
stderr line and with no temporary file left; a temporary file left by SIGKILL is removed by the next run.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import eapc_lightning.inference.pipeline as pipeline
from eapc_lightning.cli import main as eapc
from eapc_lightning.errors import InputError
from eapc_lightning.inference.pipeline import GenerateOptions, generate
from eapc_lightning.render.video import locked_temp_file, remove_stale_temp_files
from helpers.prepare_media import write_wav
from helpers.tiny_models import tiny_models_once

SIGNAL_AUDIO_SECONDS = 30  # long enough that the writer is still encoding when the signal comes
TEMP_WAIT = 120  # s: start-up, model loading and audio decoding before the temporary file appears


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_models_once(tmp_path_factory)


@pytest.fixture
def face(shared_data) -> Path:
    return shared_data / "crema_d" / "faces" / "img01.png"


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory) -> Path:
    """Syllable-like 200 Hz tone with a noise floor, never silent, at 16 kHz mono."""
    rate = 16000
    t = np.arange(SIGNAL_AUDIO_SECONDS * rate) / rate
    rng = np.random.default_rng(0)
    samples = 0.3 * np.sin(2 * np.pi * 200 * t) * np.clip(np.sin(2 * np.pi * 3 * t), 0.2, None)
    samples += 0.02 * rng.standard_normal(len(t))
    return write_wav(tmp_path_factory.mktemp("speech") / "long.wav", samples, rate)


@pytest.fixture
def short_speech(tmp_path) -> Path:
    t = np.arange(16000) / 16000
    return write_wav(tmp_path / "one.wav", 0.3 * np.sin(2 * np.pi * 200 * t))


@pytest.fixture
def no_work(monkeypatch):
    """Any attempt to find or load a model, decode the audio or read the photo fails the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError("generation started although the command should have failed before")

    for name in ("resolve_checkpoint", "load_module", "load_face_photo", "StreamedAudio"):
        monkeypatch.setattr(pipeline, name, forbidden)


def generate_args(audio, face, models, out, *extra) -> list[str]:
    return [
        "generate", "--audio", str(audio), "--face", str(face), "--a2l", str(models.a2l),
        "--vid2vid", str(models.vid2vid), "--out", str(out), "--no-progress", *extra,
    ]  # fmt: skip


def temp_files(folder: Path, stem: str = "out") -> list[Path]:
    return sorted(folder.glob(f".{stem}.*.mp4"))


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        assert container.streams.audio, "no sound track"
        return sum(1 for _ in container.decode(container.streams.video[0]))


# ------------------------------------------------------------------------------------ output paths


def _bad_output(tmp_path: Path, case: str) -> tuple[list[str], Path, str]:
    """Extra arguments for the case, the path the message must name, and a phrase of its reason."""
    folder = tmp_path / "already_a_folder"
    folder.mkdir()
    regular = tmp_path / "file.txt"
    regular.write_text("a file, not a folder\n")
    good_out = tmp_path / "good.mp4"
    if case == "out is a directory":
        return ["--out", str(folder)], folder, "is a directory"
    if case == "out under a file":
        return ["--out", str(regular / "out.mp4")], regular / "out.mp4", f"{regular} is a file"
    if case == "out deep under a file":
        out = regular / "a" / "b" / "out.mp4"
        return ["--out", str(out)], out, f"{regular} is a file"
    if case == "landmarks is a directory":
        return ["--out", str(good_out), "--save-landmarks", str(folder)], folder, "is a directory"
    if case == "landmarks under a file":
        npy = regular / "lm.npy"
        return ["--out", str(good_out), "--save-landmarks", str(npy)], npy, f"{regular} is a file"
    assert case == "landmarks is the video"
    return ["--out", str(good_out), "--save-landmarks", str(good_out)], good_out, "is also the output video"


OUTPUT_CASES = [
    "out is a directory",
    "out under a file",
    "out deep under a file",
    "landmarks is a directory",
    "landmarks under a file",
    "landmarks is the video",
]


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_unwritable_output_fails_at_once_naming_the_path(face, models, tmp_path, capsys, no_work, case):
    extra, named, reason = _bad_output(tmp_path, case)
    args = [
        "generate", "--audio", str(tmp_path / "speech.wav"), "--face", str(face), "--a2l", str(models.a2l),
        "--vid2vid", str(models.vid2vid), "--no-progress", *extra,
    ]  # fmt: skip
    started = time.monotonic()
    assert eapc(args) == 1
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"eapc generate: {named}: ") and reason in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert elapsed < 5, f"{elapsed:.1f} s to reject the output path"
    assert not (tmp_path / "good.mp4").exists()


def test_output_is_checked_before_the_checkpoints(tmp_path, face, capsys):
    folder = tmp_path / "outdir"
    folder.mkdir()
    missing = tmp_path / "no_such.ckpt"
    args = ["generate", "--audio", str(tmp_path / "none.wav"), "--face", str(face), "--a2l", str(missing),
            "--out", str(folder), "--landmarks-only", "--no-progress"]  # fmt: skip
    assert eapc(args) == 1
    error = capsys.readouterr().err
    assert f"{folder}: is a directory" in error and str(missing) not in error


def test_generate_api_checks_outputs_first(face, models, tmp_path, no_work):
    folder = tmp_path / "outdir"
    folder.mkdir()
    options = GenerateOptions(audio=tmp_path / "none.wav", face=face, out=folder, a2l=models.a2l)
    with pytest.raises(InputError, match="outdir: is a directory"):
        generate(options)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write into any folder")
def test_read_only_folder_is_refused(face, models, tmp_path, capsys, no_work):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert eapc(generate_args(tmp_path / "x.wav", face, models, locked / "out.mp4")) == 1
    finally:
        locked.chmod(0o755)
    assert f"directory {locked} is not writable" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ signals


def _start(arguments: list[str]) -> subprocess.Popen:
    def default_signals() -> None:
        # a runner that ignores or blocks SIGINT / SIGTERM would pass that on to the child
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})

    return subprocess.Popen(
        [sys.executable, "-m", "eapc_lightning.cli", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )


def _wait_for_temp_file(process: subprocess.Popen, folder: Path) -> Path:
    deadline = time.monotonic() + TEMP_WAIT
    while time.monotonic() < deadline:
        found = temp_files(folder)
        if found:
            return found[0]
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"eapc generate ended (rc {process.returncode}) before writing:\n{out}\n{err}")
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"no temporary file in {folder} after {TEMP_WAIT} s")


def _signalled_run(long_speech, face, models, folder: Path, signum: int) -> tuple[int, str, Path]:
    process = _start(generate_args(long_speech, face, models, folder / "out.mp4"))
    try:
        temp = _wait_for_temp_file(process, folder)
        time.sleep(0.5)  # well inside the encoding loop
        assert process.poll() is None, "finished before the signal: make SIGNAL_AUDIO_SECONDS longer"
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, err, temp


@pytest.mark.parametrize(
    ("signum", "code", "word"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
    ids=["SIGTERM", "SIGINT"],
)
def test_signal_ends_cleanly_without_temporary_file(long_speech, face, models, tmp_path, signum, code, word):
    folder = tmp_path / "videos"
    rc, err, temp = _signalled_run(long_speech, face, models, folder, signum)
    assert rc == code, err
    assert "Traceback" not in err
    mentions = [line for line in err.splitlines() if word in line]
    assert mentions == [f"eapc generate: {word}"], err
    assert err.strip().splitlines()[-1] == f"eapc generate: {word}"
    assert not temp.exists() and temp_files(folder) == []
    assert not (folder / "out.mp4").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_swallowed_on_the_way_still_ends_the_run_at_the_next_frame(signum):
    from eapc_lightning.commands.generate import (
        Interrupted,
        Terminated,
        _stop_if_signalled,
        _stop_signals_raise,
    )

    stop = {signal.SIGTERM: Terminated, signal.SIGINT: Interrupted}[signum]
    before = signal.getsignal(signum)
    frames_seen = []
    progress = _stop_if_signalled(lambda stage, done, total: frames_seen.append(done))
    with _stop_signals_raise():
        progress("frames", 1, 3)
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises long before this ends
        except stop:
            pass  # what code that catches everything, or clears the pending exception, would do
        assert signal.getsignal(signum) is signal.SIG_DFL  # a second signal would end the process at once
        with pytest.raises(stop):
            progress("frames", 2, 3)
    assert frames_seen == [1]
    assert signal.getsignal(signum) is before


def test_temporary_file_of_a_killed_run_is_removed_by_the_next(
    long_speech, short_speech, face, models, tmp_path, capsys
):
    folder = tmp_path / "videos"
    rc, _, temp = _signalled_run(long_speech, face, models, folder, signal.SIGKILL)
    assert rc == -signal.SIGKILL and temp.exists()  # nothing can clean up after SIGKILL
    fake = folder / ".out.abc12345.mp4"  # the writer's pattern: .<stem>.<8 random characters>.mp4
    fake.write_bytes(b"left by an older run")
    keep = [folder / ".out.backup.mp4", folder / ".other.abc12345.mp4", folder / ".out.abc12345.mp4.bak"]
    for path in keep:
        path.write_bytes(b"not a temporary file of out.mp4")
    assert eapc(generate_args(short_speech, face, models, folder / "out.mp4")) == 0
    assert "wrote" in capsys.readouterr().out
    assert not temp.exists() and not fake.exists()
    assert all(path.exists() for path in keep)
    assert temp_files(folder) == [folder / ".out.backup.mp4"]
    assert frame_count(folder / "out.mp4") == 25


def test_temporary_file_of_a_running_writer_is_kept(tmp_path):
    out = tmp_path / "out.mp4"
    handle, temp = locked_temp_file(out, ".mp4")
    try:
        assert remove_stale_temp_files(out, ".mp4") == [] and temp.exists()
    finally:
        os.close(handle)
    assert remove_stale_temp_files(out, ".mp4") == [temp] and not temp.exists()


def test_interrupt_in_process_leaves_no_temporary_files(
    short_speech, face, models, tmp_path, capsys, monkeypatch
):
    """KeyboardInterrupt while frames are written: one line, 130, no .mp4 or .npy temporary file."""
    folder = tmp_path / "videos"
    real_chunks = pipeline.ChunkedFeatureExtractor.chunks

    def interrupted_chunks(self):
        yield from real_chunks(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.ChunkedFeatureExtractor, "chunks", interrupted_chunks)
    extra = ("--save-landmarks", str(folder / "out.npy"))
    assert eapc(generate_args(short_speech, face, models, folder / "out.mp4", *extra)) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "eapc generate: interrupted"
    assert sorted(path.name for path in folder.iterdir()) == []


# ------------------------------------------------------------------------------------ device


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps", "tpu0", ""])
def test_unavailable_device_is_named_before_any_work(
    short_speech, face, models, tmp_path, capsys, monkeypatch, device
):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    monkeypatch.setattr(pipeline, "load_module", lambda *a, **k: pytest.fail("a model was loaded"))
    monkeypatch.setattr(pipeline, "StreamedAudio", lambda *a, **k: pytest.fail("the audio was decoded"))
    code = eapc(generate_args(short_speech, face, models, tmp_path / "out.mp4", "--device", device))
    assert code == 1
    error = capsys.readouterr().err
    lines = error.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"eapc generate: --device {device}: "), error
    assert "not a checkpoint" not in error
    expected = {
        "cuda": "CUDA is not available on this machine",
        "mps": "MPS is not available on this machine",
    }
    assert expected.get(device.split(":")[0], "not a torch device") in error
    assert not (tmp_path / "out.mp4").exists()


# ------------------------------------------------------------------------------------ checkpoint kinds


def _vid2vid_variant(models, tmp_path: Path, variant: str) -> Path:
    if variant == "in its run folder":
        return models.vid2vid
    lone = tmp_path / "lone" / "model.ckpt"  # no config.yaml beside it
    lone.parent.mkdir()
    if variant == "copied out of its run":
        shutil.copy(models.vid2vid, lone)
        return lone
    content = torch.load(models.vid2vid, map_location="cpu", weights_only=True)
    content["hyper_parameters"]["_class_path"] = "eapc_lightning.lit.vid2vid.Vid2VidModule"
    content["hyper_parameters"]["_instantiator"] = "lightning.pytorch.cli.instantiate_module"
    torch.save(content, lone)  # as `eapc fit` (LightningCLI) records it
    return lone


@pytest.mark.parametrize("variant", ["in its run folder", "copied out of its run", "saved by eapc fit"])
def test_vid2vid_checkpoint_as_a2l_is_named_without_unsafe_advice(
    short_speech, face, models, tmp_path, capsys, variant
):
    checkpoint = _vid2vid_variant(models, tmp_path, variant)
    args = generate_args(short_speech, face, models, tmp_path / "out.mp4")
    args[args.index("--a2l") + 1] = str(checkpoint)
    assert eapc(args) == 1
    error = capsys.readouterr().err
    line = next(line for line in error.splitlines() if line.startswith("eapc generate: "))
    assert f"{checkpoint}: not a checkpoint of the audio-to-landmark model" in line
    assert "landmark-to-video model (Vid2VidModule)" in line and "--vid2vid" in line
    assert "weights_only" not in error and "import" not in error and "Traceback" not in error
    assert not (tmp_path / "out.mp4").exists()


def test_a2l_checkpoint_as_vid2vid_is_named(short_speech, face, models, tmp_path, capsys):
    args = generate_args(short_speech, face, models, tmp_path / "out.mp4")
    args[args.index("--vid2vid") + 1] = str(models.a2l)
    assert eapc(args) == 1
    error = capsys.readouterr().err
    assert f"{models.a2l}: not a checkpoint of the landmark-to-video model" in error
    assert "it holds an audio-to-landmark model (A2LModule)" in error


def test_checkpoint_with_foreign_objects_is_refused_without_unsafe_advice(
    short_speech, face, models, tmp_path, capsys
):
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": argparse.Namespace(lr=1e-4)}, foreign)
    args = generate_args(short_speech, face, models, tmp_path / "out.mp4")
    args[args.index("--a2l") + 1] = str(foreign)
    assert eapc(args) == 1
    error = capsys.readouterr().err
    assert f"{foreign}: not a checkpoint of the audio-to-landmark model (UnpicklingError" in error
    assert "argparse.Namespace" in error
    assert "weights_only" not in error and "trust" not in error and "import" not in error
