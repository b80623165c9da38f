"""Logs a person can read: MediaPipe's native start-up notices are dropped at the detector while real
errors still reach stderr, and training prints plain progress lines when stdout is not a terminal."""

import subprocess
import sys

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from eapc_lightning.landmarks.detect import NATIVE_START_NOTICES
from eapc_lightning.lit.progress import LineProgress

NOTICES = [notice.decode() for notice in NATIVE_START_NOTICES]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_mediapipe_writes_start_notices_that_the_detector_drops_keeping_real_errors():
    # control: FaceMesh used directly writes its native notices to stderr
    direct = _python(
        "import numpy as np, mediapipe as mp\n"
        "mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True)\n"
        "mesh.process(np.zeros((96, 96, 3), np.uint8)); mesh.close()\n"
    )
    assert any(notice in direct.stderr for notice in NOTICES), direct.stderr
    through_detector = _python(
        "import sys, numpy as np\n"
        "from eapc_lightning.landmarks.detect import FaceLandmarkDetector\n"
        "detector = FaceLandmarkDetector(video=True)\n"
        "for _ in range(3): detector(np.zeros((96, 96, 3), np.uint8))\n"
        "print('a real problem', file=sys.stderr)\n"
        "raise ValueError('stopped on purpose')\n"
    )
    assert through_detector.returncode == 1
    assert not [line for line in through_detector.stderr.splitlines() if any(n in line for n in NOTICES)]
    assert "a real problem" in through_detector.stderr
    assert through_detector.stderr.rstrip().endswith("ValueError: stopped on purpose")  # the traceback


class ConstantLoss(LightningModule):
    """A zero linear map fitted to ones with lr 0: every step's MSE is exactly 1, validation's exactly 4."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        torch.nn.init.zeros_(self.layer.weight)
        torch.nn.init.zeros_(self.layer.bias)

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        loss = torch.nn.functional.mse_loss(self.layer(inputs), targets)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        inputs, targets = batch
        self.log("val/error", torch.nn.functional.mse_loss(self.layer(inputs), 2 * targets))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_line_progress_prints_one_line_per_epoch_with_its_metrics(capsys):
    data = TensorDataset(torch.randn(8, 3), torch.ones(8, 1))
    loader = DataLoader(data, batch_size=2)
    trainer = Trainer(
        max_epochs=3,
        callbacks=[LineProgress()],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(ConstantLoss(), loader, loader)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("fit", "epoch"))]
    assert lines[0] == "fit: 4 batches per epoch, max_epochs 3"
    epochs = lines[1:4]
    for number, line in enumerate(epochs, start=1):
        assert line.startswith(f"epoch {number}/3 · step {4 * number} · train/loss 1 · val/error 4 · ")
        assert "ETA" in line
    assert epochs[-1].endswith("ETA 0s")
    assert lines[4].startswith("fit finished: 12 steps in ")
    assert np.isclose(float(trainer.callback_metrics["train/loss_epoch"]), 1.0)
