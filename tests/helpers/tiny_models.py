"""Tiny trained models for the generate / evaluate / report tests, built once per test process.

* The small synthetic preset (``eapc_lightning.synth``) -> per-clip features (``extract_features``)
  of each clip as synthesised and of a copy with random spectral tilt, gain and noise floor, and the
  generator's own target landmarks aligned into the canonical frame one frame at a time (head motion
  removed), cut into 25-frame windows; a tiny ``A2LModule`` trains on them for a fixed number of Adam
  steps (about 30 s on 2 cores), long enough to learn that the jaw follows the syllables' loudness.
* The ``tiny`` synthetic preset through ``eapc prepare`` gives a real clip cache (faces included) for the
  vid2vid module (a few steps: the plumbing is under test, not the pictures) and for ``eapc evaluate``.

Checkpoints go into run folders shaped like ``eapc fit``'s (``<run>/checkpoints/last.ckpt`` beside a
``config.yaml`` naming the module class), so the newest-checkpoint search finds them.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, Dataset

from eapc_lightning.audio import extract_features, load_audio
from eapc_lightning.audio.features import frames_in
from eapc_lightning.landmarks.align import apply_transform, clip_alignment
from eapc_lightning.synth import generate_dataset

A2L_NETWORK = dict(
    audio_hidden=48,
    audio_layers=2,
    llf_hidden=16,
    llf_layers=1,
    landmark_hidden=48,
    landmark_layers=1,
    attention_dim=48,
    attention_window=5,
    reference_dim=16,
    head_hidden=(64, 64),
)
WINDOW = 25
A2L_STEPS = 250
A2L_LR = 5e-3
VID2VID_STEPS = 3
VID2VID_MODEL = dict(
    image_size=32,
    generator=dict(
        base_channels=8,
        max_channels=16,
        num_downsamples=2,
        num_adaptive_blocks=1,
        spade_hidden_channels=8,
        weight_mlp_hidden=8,
        attention_channels=8,
        flow_base_channels=8,
        flow_num_downsamples=2,
        flow_residual_blocks=1,
    ),
    image_discriminator=dict(num_scales=1, base_channels=8, num_layers=2, max_channels=16),
    perceptual_weight=0.0,
    fid_extractor="none",
    fid_on_validation=False,
    bf16_autocast=False,
)


@dataclass(frozen=True)
class TinyModels:
    root: Path
    a2l: Path
    vid2vid: Path
    cache: Path  # prepared clip cache of the tiny synthetic preset
    synthetic: Path  # the synthetic set the a2l model learnt from


class _Windows(Dataset):
    def __init__(self, windows: list[dict]):
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        return self.windows[index]


def _noisy(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The clip with a random spectral tilt (first-order pre-/de-emphasis), gain and noise floor 15-40 dB
    below the speech, so the model does not rely on the synthetic set's digital silence, fixed loudness
    and fixed spectral slope."""
    tilt = rng.uniform(-0.6, 0.9)
    tilted = samples.copy()
    tilted[1:] -= np.float32(tilt) * samples[:-1]
    speech_rms = float(np.sqrt(np.mean(tilted**2))) + 1e-8
    noise = rng.standard_normal(len(samples)).astype(np.float32)
    noise *= speech_rms * 10 ** (-rng.uniform(15, 40) / 20)
    return (tilted + noise) * np.float32(10 ** rng.uniform(-0.5, 0.5))


def _clip_windows(
    audio_path: Path, landmarks_path: Path, rng: np.random.Generator | None = None
) -> tuple[list[dict], np.ndarray, np.ndarray]:
    samples = load_audio(audio_path)
    if rng is not None:
        samples = _noisy(samples, rng)
    landmarks = np.load(landmarks_path).astype(np.float32)
    frames = min(frames_in(samples), len(landmarks))
    features = extract_features(samples, frames)
    # one similarity per frame: the head motion (which speech does not predict) leaves the targets
    aligned = np.stack([apply_transform(clip_alignment(frame[None]), frame) for frame in landmarks[:frames]])
    windows = []
    for start in range(0, frames - WINDOW + 1, 5):
        stop = start + WINDOW
        windows.append(
            {
                "mfcc": torch.from_numpy(features["mfcc"][start:stop]),
                "llf": torch.from_numpy(features["llf"][start:stop]),
                "landmarks": torch.from_numpy(aligned[start:stop]),
                "reference": torch.from_numpy(aligned[0]),
                "emotion": torch.tensor(-1),
            }
        )
    return windows, features["mfcc"], features["llf"]


def _write_run(run_dir: Path, class_path: str, init_args: dict) -> Path:
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    config = {"model": {"class_path": class_path, "init_args": init_args}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(config))))
    return run_dir / "checkpoints" / "last.ckpt"


def train_a2l(synthetic: Path, run_dir: Path, steps: int = A2L_STEPS, seed: int = 0) -> Path:
    """A tiny A2LModule fitted on the synthetic set's windows; returns its checkpoint."""
    from eapc_lightning.audio.features import AudioFeatureConfig
    from eapc_lightning.lit.a2l import A2LModule
    from eapc_lightning.models import DualLSTMConfig

    torch.manual_seed(seed)
    windows, mfccs, llfs = [], [], []
    info = json.loads((synthetic / "synth_info.json").read_text())
    rng = np.random.default_rng(seed)
    for clip in info["clips"]:
        for augment in (None, rng):
            clip_windows, mfcc, llf = _clip_windows(
                synthetic / clip["audio"], synthetic / clip["landmarks"], augment
            )
            windows += clip_windows
            mfccs.append(mfcc.reshape(-1, 12))
            llfs.append(llf)
    mfcc_all, llf_all = np.concatenate(mfccs), np.concatenate(llfs)
    stats = {
        "mfcc_mean": mfcc_all.mean(0),
        "mfcc_std": np.maximum(mfcc_all.std(0), 1e-5),
        "llf_mean": llf_all.mean(0),
        "llf_std": np.maximum(llf_all.std(0), 1e-5),
    }
    for window in windows:
        window["mfcc"] = (window["mfcc"] - torch.from_numpy(stats["mfcc_mean"])) / torch.from_numpy(
            stats["mfcc_std"]
        )
        window["llf"] = (window["llf"] - torch.from_numpy(stats["llf_mean"])) / torch.from_numpy(
            stats["llf_std"]
        )
    module = A2LModule(network=DualLSTMConfig(**A2L_NETWORK), lr=A2L_LR, baseline_metrics=False)
    module.set_feature_stats(stats)
    module.audio_features = AudioFeatureConfig()  # what _clip_windows computed the features with
    loader = DataLoader(
        _Windows(windows), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    trainer = Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        deterministic=True,
    )
    trainer.fit(module, loader)
    checkpoint = _write_run(
        run_dir, "eapc_lightning.lit.a2l.A2LModule", {"network": A2L_NETWORK, "lr": A2L_LR}
    )
    trainer.save_checkpoint(checkpoint)
    return checkpoint


def train_vid2vid(cache: Path, run_dir: Path, steps: int = VID2VID_STEPS, seed: int = 0) -> Path:
    """A tiny Vid2VidModule after a few optimisation steps on the cache; returns its checkpoint."""
    from eapc_lightning.data.vid2vid_datamodule import Vid2VidDataModule
    from eapc_lightning.lit.vid2vid import Vid2VidModule

    torch.manual_seed(seed)
    module = Vid2VidModule(**VID2VID_MODEL)
    data = Vid2VidDataModule(
        cache_dir=str(cache),
        image_size=VID2VID_MODEL["image_size"],
        batch_size=2,
        val_fraction=0.0,
        test_fraction=0.0,
    )
    trainer = Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=data)
    checkpoint = _write_run(run_dir, "eapc_lightning.lit.vid2vid.Vid2VidModule", VID2VID_MODEL)
    trainer.save_checkpoint(checkpoint)
    return checkpoint


def build_tiny_models(root: Path) -> TinyModels:
    from eapc_lightning.prepare.run import prepare_dataset

    synthetic = root / "synthetic_a2l"
    generate_dataset(synthetic, preset="small", seed=0, size=128)
    a2l = train_a2l(synthetic, root / "runs" / "a2l" / "tiny")
    tiny = root / "synthetic_tiny"
    generate_dataset(tiny, preset="tiny", seed=1, size=128)
    cache = root / "cache_tiny"
    prepare_dataset("mead", tiny, cache, crop_size=128)
    vid2vid = train_vid2vid(cache, root / "runs" / "vid2vid" / "tiny")
    return TinyModels(root=root, a2l=a2l, vid2vid=vid2vid, cache=cache, synthetic=synthetic)


_BUILT: dict[str, TinyModels] = {}


def tiny_models_once(tmp_path_factory) -> TinyModels:
    """Build the models on first use in this process; later calls (any test module) reuse them."""
    if "models" not in _BUILT:
        _BUILT["models"] = build_tiny_models(tmp_path_factory.mktemp("tiny_models"))
    return _BUILT["models"]
