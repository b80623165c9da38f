"""What forcing an emotion does to the landmarks (evaluation/emotion_control.py), ``eapc evaluate
--emotion-control`` and ``eapc pipeline real-speech``."""

import csv
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from eapc_lightning.cli import main as eapc
from eapc_lightning.commands.pipeline import UsageError, link_real_footage, run_real_speech
from eapc_lightning.constants import EMOTIONS
from eapc_lightning.data.index import list_clips
from eapc_lightning.evaluation.emotion_control import BROWS, clip_emotion_control
from helpers.recording_steps import RecordingSteps
from helpers.tiny_models import tiny_models_once


class ScriptedModule:
    """Landmarks fixed per forced emotion; the LLF encoder always reads 'sad' with logit 2 over zeros."""

    def __init__(self, base: np.ndarray, forced: dict[str, np.ndarray]):
        self.base, self.forced = base, forced

    def landmark_stream(self, reference):
        module = self

        class Stream:
            emotion_logits = []

            def __call__(self, mfcc, llf):
                logits = torch.zeros(len(mfcc), len(EMOTIONS))
                logits[:, EMOTIONS.index("sad")] = 2.0
                self.emotion_logits.append(logits)
                return torch.from_numpy(module.base)

        return Stream()

    def predict_clip(self, mfcc, llf, reference, emotion=None, intensity=None):
        return torch.from_numpy(self.forced[emotion])


def test_clip_values_against_a_hand_computation():
    frames = 10
    base = np.random.default_rng(0).uniform(60, 200, size=(frames, 68, 2)).astype(np.float32)
    happy = base.copy()
    happy[:, 48, 1] -= 2.0  # both corners 2 px higher, the right one 3 px further out
    happy[:, 54, 1] -= 2.0
    happy[:, 48, 0] -= 3.0
    happy[:, list(BROWS), 1] -= 1.0  # brows 1 px higher
    module = ScriptedModule(base, {"happy": happy, "sad": base})
    mfcc, llf = np.zeros((frames, 28, 12), np.float32), np.zeros((frames, 25), np.float32)
    values = clip_emotion_control(module, mfcc, llf, base[0], "clip", "happy", "sad")

    assert values.predicted_emotion == "sad"
    expected_sad = np.exp(2.0) / (np.exp(2.0) + len(EMOTIONS) - 1)
    assert values.predicted_probabilities[EMOTIONS.index("sad")] == pytest.approx(expected_sad, rel=1e-5)
    corner_moves = [np.hypot(3.0, 2.0), 2.0]
    assert values.corner_distance == pytest.approx(np.mean(corner_moves), rel=1e-5)
    assert values.corner_lift == pytest.approx(2.0, rel=1e-5)
    assert values.brow_distance == pytest.approx(1.0, rel=1e-5) and values.brow_lift == pytest.approx(1.0)
    widths = np.linalg.norm(happy[:, 48] - happy[:, 54], axis=-1) - np.linalg.norm(
        base[:, 48] - base[:, 54], axis=-1
    )
    assert values.width_difference == pytest.approx(widths.mean(), rel=1e-5)
    assert values.gap_difference == pytest.approx(0.0, abs=1e-5)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_models_once(tmp_path_factory)


def test_evaluate_writes_the_emotion_control_of_every_clip(models, tmp_path):
    data_yaml = tmp_path / "tiny.yaml"
    init_args = {"cache_dir": str(models.cache), "val_fraction": 0.0, "test_fraction": 0.5, "seed": 0}
    data_yaml.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "class_path": "eapc_lightning.data.datamodule.LandmarkDataModule",
                    "init_args": init_args,
                }
            }
        )
    )
    arguments = ["evaluate", "--data", str(data_yaml), "--a2l", str(models.a2l), "--landmarks-only"]
    arguments += ["--split", "all", "--out", str(tmp_path / "out"), "--emotion-control", "happy,sad"]
    assert eapc(arguments) == 0
    with open(tmp_path / "out" / "emotion_control.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["clip_id"] for row in rows) == sorted(r.clip_id for r in list_clips(models.cache))
    for row in rows:
        assert row["predicted_emotion"] in EMOTIONS
        assert sum(float(row[f"p_{name}"]) for name in EMOTIONS) == pytest.approx(1.0, abs=1e-4)
        assert float(row["corner_distance"]) >= abs(float(row["corner_lift"])) - 1e-4
    markdown = (tmp_path / "out" / "emotion_control.md").read_text()
    mean_corner = np.mean([float(row["corner_distance"]) for row in rows])
    assert f"| {mean_corner:.2f} |" in markdown


def test_an_emotion_pair_is_checked_before_any_work(models, capsys):
    with pytest.raises(SystemExit) as stopped:
        eapc(["evaluate", "--data", "nowhere.yaml", "--emotion-control", "happy,glad"])
    assert stopped.value.code == 2
    assert "expected two different emotions" in capsys.readouterr().err


def test_real_footage_is_linked_clip_by_clip_then_scored_and_fine_tuned(models, tmp_path):
    footage = tmp_path / "footage"
    for relative in ("voxceleb2/a.mp4", "voxceleb2/b.mp4", "hdtf/c.mp4", "hdtf/speech.wav", "mead/d.mp4"):
        (footage / relative).parent.mkdir(parents=True, exist_ok=True)
        (footage / relative).write_bytes(b"x")
    raw = tmp_path / "work" / "raw"
    assert link_real_footage(footage, raw) == 3  # videos of the two sets with speech; no wav, no mead
    assert sorted(str(p.relative_to(raw)) for p in raw.rglob("*.mp4")) == [
        "hdtf-c/c.mp4",
        "voxceleb2-a/a.mp4",
        "voxceleb2-b/b.mp4",
    ]
    assert (raw / "hdtf-c" / "c.mp4").resolve() == (footage / "hdtf" / "c.mp4").resolve()
    assert link_real_footage(footage, raw) == 3  # a second run keeps the links

    steps = RecordingSteps()
    out = tmp_path / "tables"
    args = Namespace(
        footage=footage,
        work=tmp_path / "work",
        a2l=models.a2l,
        runs=Path("runs"),
        out=out,
        workers=1,
        finetune=True,
    )
    run_real_speech(args, steps)
    kinds = [command[0] for command in steps.commands]
    assert kinds == ["prepare", "evaluate", "audio-ceiling", "fit", "test", "evaluate", "evaluate"]
    prepare, every_clip, ceiling, fit, _, before, after = steps.commands
    assert ceiling[ceiling.index("--out") + 1] == str(out)
    assert prepare[:3] == ["prepare", "--dataset", "folder"] and str(raw) in prepare
    assert every_clip[every_clip.index("--split") + 1] == "all" and "--landmarks-only" in every_clip
    assert every_clip[every_clip.index("--emotion-control") + 1] == "happy,sad"
    assert f"--model.init_args.init_weights={models.a2l}" in fit
    assert "experiments/a2l_finetune_real.yaml" in fit
    for command, checkpoint in ((before, str(models.a2l)), (after, "best.ckpt")):
        assert command[command.index("--split") + 1] == "test"  # the held-out clips only
        assert command[command.index("--a2l") + 1].endswith(checkpoint)
    assert before[before.index("--out") + 1] != after[after.index("--out") + 1]

    with pytest.raises(UsageError, match="no video with speech"):
        link_real_footage(tmp_path / "empty", raw)


class _Trainer:
    def __init__(self, datamodule):
        self.datamodule = datamodule


def test_init_weights_start_from_the_checkpoint_and_keep_its_statistics(models, tmp_path):
    from eapc_lightning.errors import InputError
    from eapc_lightning.lit.a2l import A2LModule
    from eapc_lightning.models import DualLSTMConfig
    from helpers.tiny_models import A2L_NETWORK

    trained = A2LModule.load_from_checkpoint(models.a2l, map_location="cpu")
    fresh = A2LModule(network=DualLSTMConfig(**A2L_NETWORK), init_weights=str(models.a2l))
    other_stats = {
        name: torch.full_like(getattr(trained, name), 7.0)
        for name in ("mfcc_mean", "mfcc_std", "llf_mean", "llf_std")
    }
    fresh.trainer = _Trainer(Namespace(feature_stats=other_stats, audio_features=None))
    fresh.setup("fit")
    for (name, value), (_, expected) in zip(fresh.state_dict().items(), trained.state_dict().items()):
        if name.startswith("network.") or name in other_stats:
            torch.testing.assert_close(value, expected, msg=name)  # the new data's statistics are not taken
    assert fresh.audio_features == trained.audio_features

    wider = A2LModule(
        network=DualLSTMConfig(**{**A2L_NETWORK, "head_hidden": [24, 24]}), init_weights=str(models.a2l)
    )
    wider.trainer = _Trainer(Namespace(feature_stats=other_stats, audio_features=None))
    with pytest.raises(InputError, match="not an a2l checkpoint of this network shape"):
        wider.setup("fit")
    missing = A2LModule(network=DualLSTMConfig(**A2L_NETWORK), init_weights=str(tmp_path / "none.ckpt"))
    missing.trainer = _Trainer(Namespace(feature_stats=other_stats, audio_features=None))
    with pytest.raises(InputError, match="none.ckpt"):
        missing.setup("fit")


def test_fine_tuning_data_is_standardised_with_the_checkpoint_statistics(models, tmp_path):
    from eapc_lightning.data.datamodule import LandmarkDataModule
    from eapc_lightning.lit.a2l import A2LModule
    from eapc_lightning.models import DualLSTMConfig
    from helpers.fake_clip_cache import write_fake_cache
    from helpers.tiny_models import A2L_NETWORK

    arrays = write_fake_cache(
        tmp_path, speakers=("M001", "M002", "W001"), clips_per_speaker=1, frame_counts=(30,)
    )
    data = LandmarkDataModule(cache_dir=str(tmp_path), val_speakers=["M002"], test_speakers=["W001"])
    data.setup("fit")
    trained = A2LModule.load_from_checkpoint(models.a2l, map_location="cpu")
    assert not torch.allclose(data.feature_stats["mfcc_mean"], trained.mfcc_mean)  # the data's own differ
    fresh = A2LModule(network=DualLSTMConfig(**A2L_NETWORK), init_weights=str(models.a2l))
    fresh.trainer = _Trainer(data)
    fresh.setup("fit")
    sample = data.dataset("train")[0]
    start = int(sample["start"])
    raw = arrays[sample["clip_id"]]["llf"][start : start + 25]
    expected = (raw - trained.llf_mean.numpy()) / trained.llf_std.numpy()
    np.testing.assert_allclose(sample["llf"].numpy(), expected, rtol=1e-5, atol=1e-5)
