"""Two-process DDP (gloo, CPU) fit + test of A2LModule on the toy windows; run by tests/test_a2l_ddp.py.

Usage: PYTHONPATH=tests python tests/helpers/ddp_a2l_script.py OUT_DIR. Rank 0 writes
OUT_DIR/metrics.json (the synced test metrics) and OUT_DIR/ddp.ckpt (the trained weights); every rank
writes its own weights to OUT_DIR/rank<r>.pt.
"""

import json
import sys
from pathlib import Path

import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.strategies import DDPStrategy

from eapc_lightning.lit import A2LModule
from eapc_lightning.models import DualLSTMConfig
from helpers.a2l_toy_data import TINY_NETWORK, ToyLandmarkData

DDP_SETTINGS = dict(train=16, val=8, test=8, batch_size=4)
MODULE_SETTINGS = dict(lr=1e-3, emotion_loss_weight=0.0)
MAX_EPOCHS = 6


def build_module() -> A2LModule:
    return A2LModule(network=DualLSTMConfig(**TINY_NETWORK), **MODULE_SETTINGS)


def main(out_dir: Path) -> None:
    torch.set_num_threads(1)
    seed_everything(0)
    module, data = build_module(), ToyLandmarkData(**DDP_SETTINGS)
    trainer = Trainer(
        strategy=DDPStrategy(process_group_backend="gloo"),
        accelerator="cpu",
        devices=2,
        max_epochs=MAX_EPOCHS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    metrics = trainer.test(module, data, verbose=False)[0]
    trainer.save_checkpoint(out_dir / "ddp.ckpt")
    torch.save(module.network.state_dict(), out_dir / f"rank{trainer.global_rank}.pt")
    if trainer.global_rank == 0:
        record = {"metrics": metrics, "global_step": trainer.global_step, "world_size": trainer.world_size}
        (out_dir / "metrics.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
