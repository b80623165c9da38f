"""``make demo`` (``eapc pipeline demo``): both renderers from the same photo, speech and a2l model, then one
mp4 with vid2vid on the left, warp on the right and the speech.

The generate steps are recorded, not run (each writes a flat video in its renderer's colour instead), so
the test checks the job's plumbing and the composed file, in a few seconds; the real renderers are
tested in test_warp_renderer.py and test_generate.py.
"""

import argparse

import av
import numpy as np
import yaml

from eapc_lightning.commands.pipeline import run_demo
from eapc_lightning.fileio import write_png
from eapc_lightning.prepare.video import read_video
from eapc_lightning.render.video import write_video
from helpers.prepare_media import write_wav
from helpers.recording_steps import RecordingSteps

COLOURS = {"vid2vid": (200, 40, 40), "warp": (40, 40, 200)}
FRAMES = {"vid2vid": 30, "warp": 28}  # the composed video is as long as the shorter


class RenderingSteps(RecordingSteps):
    """Records the commands; a generate step writes a flat 64-px video in its renderer's colour."""

    def eapc(self, step, *arguments):
        super().eapc(step, *arguments)
        command = self.commands[-1]
        if command[0] == "generate":
            renderer = command[command.index("--renderer") + 1]
            frame = np.empty((64, 64, 3), np.uint8)
            frame[:] = COLOURS[renderer]
            write_video(command[command.index("--out") + 1], [frame] * FRAMES[renderer])


def fake_run(runs, kind: str, class_path: str):
    run_dir = runs / kind / "20260101-000000-seed0"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": {"class_path": class_path}}))
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    checkpoint.write_bytes(b"x")
    return checkpoint


def test_demo_writes_both_renderers_side_by_side_with_the_speech(tmp_path, capsys):
    runs, work = tmp_path / "runs", tmp_path / "demo"
    a2l = fake_run(runs, "demo_a2l", "eapc_lightning.lit.a2l.A2LModule")
    fake_run(runs, "demo_vid2vid", "eapc_lightning.lit.vid2vid.Vid2VidModule")
    work.mkdir()
    write_png(work / "face.png", np.full((64, 64, 3), 128, np.uint8))
    t = np.arange(16000 * 2) / 16000
    speech = write_wav(tmp_path / "speech.wav", 0.3 * np.sin(2 * np.pi * 300 * t))
    (work / "speech_path.txt").write_text(str(speech))  # the demo's inputs are made once and kept

    steps = RenderingSteps()
    run_demo(argparse.Namespace(work=work, runs=runs, workers=1), steps)

    generates = [command for command in steps.commands if command[0] == "generate"]
    assert [command[command.index("--renderer") + 1] for command in generates] == ["vid2vid", "warp"]
    for option, value in (("--a2l", a2l), ("--audio", speech), ("--face", work / "face.png")):
        assert {command[command.index(option) + 1] for command in generates} == {str(value)}, option
    assert [command[0] for command in steps.commands] == ["generate", "generate"]  # checkpoints exist: no fit

    out = work / "demo.mp4"
    assert f"demo video: {out.resolve()}" in capsys.readouterr().out
    frames = read_video(out)
    assert frames.shape == (28, 64, 128, 3)
    below_labels = frames[:, 24:]
    assert np.abs(below_labels[:, :, :64].astype(int) - COLOURS["vid2vid"]).max() <= 12  # left: vid2vid
    assert np.abs(below_labels[:, :, 64:].astype(int) - COLOURS["warp"]).max() <= 12  # right: warp
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        seconds = float(stream.duration * stream.time_base)
        samples = np.concatenate([frame.to_ndarray().ravel() for frame in container.decode(stream)])
    assert abs(seconds - 28 / 25) < 0.07  # the speech, cut to the pictures
    assert np.sqrt(np.mean(samples**2)) > 0.15  # the 0.3-amplitude tone (RMS 0.21), not silence
    assert (work / "demo_vid2vid.mp4").is_file() and (work / "demo_warp.mp4").is_file()  # kept
