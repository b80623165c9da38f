"""Two-process DDP training of the vid2vid module on CPU (gloo), launched by tests/test_vid2vid_ddp.py.

Usage: PYTHONPATH=tests python tests/helpers/vid2vid_ddp_run.py CACHE_DIR OUT_DIR. Lightning's DDP
launcher re-runs this script for rank 1, hence the ``__main__`` guard. Each rank writes
``OUT_DIR/rank<k>.json`` with its global step, the training batches it saw and a checksum of its
generator parameters.
"""

import json
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch import Callback

from test_vid2vid_module import tiny_data, tiny_module


class CountBatches(Callback):
    """Counts training batches and records their first target frames; gives each rank its own data RNG."""

    def on_train_start(self, trainer, pl_module):
        # the dataset draws its random windows from torch's RNG: a rank-dependent seed makes the two
        # processes train on different frames, so equal weights afterwards prove gradient all-reduce
        torch.manual_seed(100 + trainer.global_rank)

    def __init__(self):
        self.batches = 0
        self.clip_frames: list[list[int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches += 1
        self.clip_frames.append(batch["frame_indices"][:, 0].tolist())


def main(cache_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    L.seed_everything(0, workers=True)
    counter = CountBatches()
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
    module = tiny_module()
    trainer.fit(module, tiny_data(Path(cache_dir), batch_size=1, samples_per_clip=4))
    checksum = sum(float(p.double().sum()) for p in module.generator.parameters())
    record = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        "global_step": trainer.global_step,
        "batches": counter.batches,
        "first_frames": counter.clip_frames,
        "generator_checksum": checksum,
    }
    Path(out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
