"""Callbacks that leave a complete record of a run in its folder (see eapc_lightning.commands.lightning).

- :class:`RunMetadata`: ``versions.json`` (Python, platform, package versions, command line) and
  ``git.json`` (revision, branch, dirty flag) when a run starts. The resolved config itself is saved
  by the CLI's config callback.
- :class:`FinalMetrics`: ``metrics.json``, the final value of every logged metric (and, after fit, the
  best checkpoint and its score) - the file the reports and sweeps read.
- :class:`MetricCurves`: ``curves.png``, loss and metric curves plotted from the CSV logger's file at
  the end of fit.
- :class:`TorchThreads`: the number of CPU threads torch uses for its operators (a knob in YAML).

``RunMetadata`` and ``FinalMetrics`` are added to every ``eapc`` run by the CLI. Pictures and videos of
what a model produces are in :mod:`eapc_lightning.lit.renders`.

Every callback writes into ``dirpath`` or, when that is unset, the trainer's ``default_root_dir`` (the
run's output folder when started by ``eapc``); files are written atomically on global rank 0 only.
"""

import csv
import importlib.metadata
import io
import logging
import math
import platform
import subprocess
import sys
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.trainer.states import TrainerFn

from eapc_lightning.fileio import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

DEFAULT_PACKAGES = (
    "eapc-lightning",
    "torch",
    "torchaudio",
    "torchvision",
    "lightning",
    "torchmetrics",
    "jsonargparse",
    "numpy",
    "scipy",
    "librosa",
    "mediapipe",
    "opencv-contrib-python",
    "av",
    "wandb",
    "matplotlib",
)


def output_folder(dirpath: str | None, trainer: Trainer) -> Path:
    return Path(dirpath or trainer.default_root_dir)


def package_versions(packages: tuple[str, ...] | list[str] = DEFAULT_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when it is not installed)."""
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(folder: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout.strip()


def git_state(folder: str | Path | None = None) -> dict:
    """Revision, branch and dirty flag of the git checkout holding ``folder`` (default: this package)."""
    folder = Path(folder) if folder is not None else Path(__file__).resolve().parent
    try:
        revision = _git(folder, "rev-parse", "HEAD")
        branch = _git(folder, "rev-parse", "--abbrev-ref", "HEAD")
        changes = [line for line in _git(folder, "status", "--porcelain").splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError) as error:
        return {"revision": None, "branch": None, "dirty": None, "reason": f"not a git checkout: {error}"}
    return {"revision": revision, "branch": branch, "dirty": bool(changes), "changed_files": len(changes)}


class RunMetadata(Callback):
    """Writes ``versions.json`` and ``git.json`` into the run folder when fit/validate/test/predict starts.

    Args:
        dirpath: output folder; ``None`` uses ``trainer.default_root_dir``.
        packages: distributions whose versions are recorded.
    """

    def __init__(self, dirpath: str | None = None, packages: list[str] | None = None):
        self.dirpath = dirpath
        self.packages = tuple(packages) if packages else DEFAULT_PACKAGES

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        folder = output_folder(self.dirpath, trainer)
        atomic_write_json(
            folder / "versions.json",
            {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "command": sys.argv,
                "cuda": torch.version.cuda,
                "packages": package_versions(self.packages),
            },
        )
        atomic_write_json(folder / "git.json", git_state())


def _as_number(value) -> float | None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        value = value.item()
    if isinstance(value, int | float):
        return float(value)
    return None


class FinalMetrics(Callback):
    """Writes ``metrics.json``: every metric in ``trainer.callback_metrics`` when fit, validate or test ends.

    After fit the file also holds ``best_model_path`` / ``best_model_score`` of the checkpoint callback.
    Non-finite values are stored as null (JSON has no NaN).
    """

    def __init__(self, dirpath: str | None = None, filename: str = "metrics.json"):
        self.dirpath = dirpath
        self.filename = filename

    def _write(self, trainer: Trainer, extra: dict | None = None) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {}
        for key, value in sorted(trainer.callback_metrics.items()):
            number = _as_number(value)
            if number is not None:
                metrics[key] = number if math.isfinite(number) else None
        record = {"stage": trainer.state.fn.value, "epoch": trainer.current_epoch, "metrics": metrics}
        record.update(extra or {})
        atomic_write_json(output_folder(self.dirpath, trainer) / self.filename, record)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        extra = {}
        if checkpoint is not None:
            score = _as_number(checkpoint.best_model_score)
            extra = {
                "best_model_path": checkpoint.best_model_path or None,
                "best_model_score": score,
                "monitor": getattr(checkpoint, "monitor", None),
            }
        self._write(trainer, extra)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._write(trainer)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer)


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """{column: [(step, value), ...]} of a CSVLogger ``metrics.csv``; empty cells are skipped."""
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            step = row.get("step")
            if step in (None, ""):
                continue
            for key, text in row.items():
                if key in ("step", "epoch") or text in (None, ""):
                    continue
                try:
                    series.setdefault(key, []).append((float(step), float(text)))
                except ValueError:
                    continue
    return series


def plot_curves(series: dict[str, list[tuple[float, float]]], path: str | Path, columns: int = 3) -> None:
    """One panel per metric (value against training step), saved as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(series)
    if not names:
        raise ValueError("no metric values to plot")
    columns = min(columns, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names):
        steps, values = zip(*series[name])
        axis.plot(steps, values, marker="." if len(steps) < 40 else None, linewidth=1.2)
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


class MetricCurves(Callback):
    """Plots the CSV logger's metrics into ``curves.png`` when fit ends (and logs it to W&B if present).

    Args:
        dirpath: output folder; ``None`` uses ``trainer.default_root_dir``.
        filename: PNG name.
        metrics: columns to plot (e.g. ``[train/loss, val/loss, val/M-LD]``); ``None`` plots all.
    """

    def __init__(
        self, dirpath: str | None = None, filename: str = "curves.png", metrics: list[str] | None = None
    ):
        self.dirpath = dirpath
        self.filename = filename
        self.metrics = metrics

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        csv_loggers = [logger for logger in trainer.loggers if isinstance(logger, CSVLogger)]
        if not csv_loggers:
            log.warning("MetricCurves: no CSVLogger configured, no curves written")
            return
        csv_logger = csv_loggers[0]
        csv_logger.save()
        metrics_file = Path(csv_logger.log_dir) / "metrics.csv"
        if not metrics_file.is_file():
            log.warning("MetricCurves: %s does not exist (nothing logged), no curves written", metrics_file)
            return
        series = read_metrics_csv(metrics_file)
        if self.metrics is not None:
            series = {name: values for name, values in series.items() if name in self.metrics}
        if not series:
            log.warning("MetricCurves: no metrics to plot in %s", metrics_file)
            return
        path = output_folder(self.dirpath, trainer) / self.filename
        plot_curves(series, path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="curves", images=[str(path)])


class TorchThreads(Callback):
    """Sets ``torch.set_num_threads(num_threads)`` when a run starts (``None`` leaves torch's default).

    The recurrent layers of the audio-to-landmark model run many small matrix products; on a small or
    shared CPU, one thread per process avoids the threads waiting on each other and is often faster.
    """

    def __init__(self, num_threads: int | None = None):
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {num_threads}")
        self.num_threads = num_threads

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
