"""Two-process DDP training of the vid2vid module on CPU (gloo), launched by tests/test_vid2vid_ddp.py.

Usage: PYTHONPATH=tests python tests/helpers/vid2vid_ddp_run.py CACHE_DIR OUT_DIR [INIT_CKPT A2L_CKPT].
With the two checkpoints it fine-tunes (paper section 3.1): the module starts from INIT_CKPT's weights
(``init_weights``) and the training targets are A2L_CKPT's predicted landmarks (``predicted_landmarks``).
Lightning's DDP launcher re-runs this script for rank 1, hence the ``__main__`` guard. Each rank writes
``OUT_DIR/rank<k>.json`` with its global step, the training batches it saw, a checksum of its generator
parameters and, when fine-tuning, how far its generator is from INIT_CKPT's at the start and at the end and
how far its batches' target landmarks are from the predicted and from the clips' own landmarks.
"""

import json
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch import Callback

from eapc_lightning.constants import CANONICAL_FACE_SIZE
from eapc_lightning.data.cache import load_clip
from test_vid2vid_module import tiny_data, tiny_module


def distance_to(module, state: dict | None) -> float | None:
    """Summed absolute difference of the generator's parameters from those in ``state``."""
    if state is None:
        return None
    return sum(
        float((p.detach() - state[f"generator.{n}"]).abs().sum())
        for n, p in module.generator.named_parameters()
    )


class CountBatches(Callback):
    """Counts training batches and records their first target frames; gives each rank its own data RNG."""

    def __init__(self, initial: dict | None = None):
        self.batches = 0
        self.clip_frames: list[list[int]] = []
        self.initial = initial
        self.start_distance: float | None = None
        self.predicted_error = 0.0  # largest |target landmarks - predicted landmarks| of any batch
        self.truth_error = 0.0  # largest |target landmarks - the clip's own landmarks|

    def on_train_start(self, trainer, pl_module):
        # the dataset draws its random windows from torch's RNG: a rank-dependent seed makes the two
        # processes train on different frames, so equal weights afterwards prove gradient all-reduce
        torch.manual_seed(100 + trainer.global_rank)
        self.start_distance = distance_to(pl_module, self.initial)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches += 1
        self.clip_frames.append(batch["frame_indices"][:, 0].tolist())
        data = trainer.datamodule
        if data.target_landmarks is None:
            return
        records = {record.clip_id: record for record in data.splits["train"]}
        scale = data.hparams.image_size / CANONICAL_FACE_SIZE
        for index, clip_id in enumerate(batch["clip_id"]):
            path = records[clip_id].path
            frames = batch["frame_indices"][index].numpy()
            landmarks = batch["landmarks"][index].numpy()
            predicted = np.load(data.target_landmarks[str(path)])[frames] * scale
            truth = load_clip(path, ("landmarks",)).arrays["landmarks"][frames] * scale
            self.predicted_error = max(self.predicted_error, float(np.abs(landmarks - predicted).max()))
            self.truth_error = max(self.truth_error, float(np.abs(landmarks - truth).max()))


def main(cache_dir: str, out_dir: str, init_weights: str | None = None, predicted: str | None = None) -> None:
    torch.set_num_threads(1)
    L.seed_everything(0, workers=True)
    initial = None
    if init_weights is not None:
        initial = torch.load(init_weights, map_location="cpu", weights_only=True)["state_dict"]
    counter = CountBatches(initial)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_find_unused_parameters_true",  # D is frozen in the G step and vice versa
        max_steps=4,  # manual optimisation: 2 training steps x (G step + D step)
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out_dir,
        callbacks=[counter],
    )
    module = tiny_module(init_weights=init_weights)
    trainer.fit(
        module, tiny_data(Path(cache_dir), batch_size=1, samples_per_clip=4, predicted_landmarks=predicted)
    )
    checksum = sum(float(p.double().sum()) for p in module.generator.parameters())
    record = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        "global_step": trainer.global_step,
        "batches": counter.batches,
        "first_frames": counter.clip_frames,
        "generator_checksum": checksum,
        "start_distance": counter.start_distance,
        "end_distance": distance_to(module, initial),
        "predicted_error": counter.predicted_error,
        "truth_error": counter.truth_error,
    }
    Path(out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(*sys.argv[1:])
