"""Lightning checkpoints of untrained modules, written in seconds (for tests of what reads checkpoints)."""

from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer

from eapc_lightning.audio.features import AudioFeatureConfig

# an a2l network small enough to predict a clip in milliseconds
SMALL_A2L_NETWORK = dict(
    audio_hidden=16,
    audio_layers=1,
    llf_hidden=8,
    llf_layers=1,
    landmark_hidden=16,
    landmark_layers=1,
    attention_dim=16,
    attention_window=3,
    reference_dim=8,
    head_hidden=(16, 16),
)


def save_module_checkpoint(module: LightningModule, path: Path) -> Path:
    """``module`` as a Lightning checkpoint at ``path`` (hyper-parameters included), without training."""
    trainer = Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.strategy.connect(module)
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)
    return path


def untrained_a2l_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised A2LModule (``seed``) with unit feature statistics and the default audio
    feature settings (those of ``eapc prepare`` and of helpers.vid2vid_cache's clips)."""
    from eapc_lightning.lit.a2l import A2LModule
    from eapc_lightning.models import DualLSTMConfig

    torch.manual_seed(seed)
    module = A2LModule(network=DualLSTMConfig(**SMALL_A2L_NETWORK), baseline_metrics=False)
    stats = {
        "mfcc_mean": np.zeros(12),
        "mfcc_std": np.ones(12),
        "llf_mean": np.zeros(25),
        "llf_std": np.ones(25),
    }
    module.set_feature_stats(stats)
    module.audio_features = AudioFeatureConfig()
    return save_module_checkpoint(module, path)
