"""Progress as plain lines, for logs: what ``eapc`` uses in place of a progress bar when stdout is not a
terminal (a SLURM log, ``make train-a2l > log``), where a live bar prints nothing until the end.

One line per finished epoch (step, the epoch's losses and validation metrics, elapsed time, ETA), one
line every ``every_seconds`` inside a long epoch, and one line when validation or a test ends::

    epoch 3/25 · step 160 · train/loss 0.0412 train/lmd 0.0195 · val/M-LD 2.134 val/F-LD 1.702 · 1m12s, ETA 8m53s
"""

import sys
import time

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _metrics_text(trainer: Trainer, prefix: str) -> str:
    """The epoch-level scalars logged under ``prefix`` (``train/``, ``val/``, ``test/``), sorted."""
    values = {}
    for key, value in sorted(trainer.callback_metrics.items()):  # "x_epoch" sorts after "x": it wins
        if not key.startswith(prefix) or key.endswith("_step"):
            continue
        try:
            values[key.removesuffix("_epoch")] = float(value)
        except (TypeError, ValueError):
            continue
    return " ".join(f"{name} {number:.4g}" for name, number in values.items())


class LineProgress(ProgressBar):
    """Line-based progress for non-terminal output; prints on global rank 0 only."""

    def __init__(self, every_seconds: float = 60.0):
        super().__init__()
        self.every_seconds = every_seconds
        self._enabled = True
        self._fit_started = self._last_line = time.monotonic()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, trainer: Trainer, text: str) -> None:
        if self._enabled and trainer.is_global_zero:
            print(text, file=sys.stdout, flush=True)
            self._last_line = time.monotonic()

    def _epoch_of(self, trainer: Trainer) -> str:
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        return f"epoch {trainer.current_epoch + 1}/{total}" if total else f"epoch {trainer.current_epoch + 1}"

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._fit_started = self._last_line = time.monotonic()
        batches = self.total_train_batches
        per_epoch = (
            f"{batches} batches per epoch" if isinstance(batches, int) else "batches per epoch unknown"
        )
        self._print(trainer, f"fit: {per_epoch}, max_epochs {trainer.max_epochs}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if time.monotonic() - self._last_line < self.every_seconds:
            return
        batches = self.total_train_batches
        of = f"/{batches}" if isinstance(batches, int) else ""
        losses = " ".join(
            f"{key.removesuffix('_step')} {float(value):.4g}"
            for key, value in sorted(trainer.callback_metrics.items())
            if key.startswith("train/") and key.endswith("_step")
        )
        elapsed = _duration(time.monotonic() - self._fit_started)
        self._print(trainer, f"{self._epoch_of(trainer)} · batch {batch_idx + 1}{of} · {losses} · {elapsed}")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        elapsed = time.monotonic() - self._fit_started
        done = trainer.current_epoch + 1
        eta = ""
        if trainer.max_epochs and trainer.max_epochs > 0:
            eta = f", ETA {_duration(elapsed / done * max(trainer.max_epochs - done, 0))}"
        sections = [self._epoch_of(trainer), f"step {trainer.global_step}"]
        sections += [
            text for text in (_metrics_text(trainer, "train/"), _metrics_text(trainer, "val/")) if text
        ]
        self._print(trainer, " · ".join(sections) + f" · {_duration(elapsed)}{eta}")

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "validate":
            self._print(trainer, f"validate: {_metrics_text(trainer, 'val/')}")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._print(trainer, f"test: {_metrics_text(trainer, 'test/')}")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._print(
            trainer,
            f"fit finished: {trainer.global_step} steps in {_duration(time.monotonic() - self._fit_started)}",
        )
