"""Which trained models ``eapc generate`` / ``eapc evaluate`` use, and loading them.

Without an explicit path the newest checkpoint (by modification time) of the right kind under this
checkout's ``runs/`` folder is taken. A checkpoint's kind comes from the ``config.yaml`` of its run
folder (``<run>/checkpoints/*.ckpt`` beside ``<run>/config.yaml``, written by ``eapc fit``): the
model's ``class_path`` names ``A2LModule`` or ``Vid2VidModule``. Within one run ``best.ckpt`` is preferred
over ``last.ckpt``.
"""

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from eapc_lightning.errors import InputError
from eapc_lightning.models import DualLSTMConfig

# Project classes a checkpoint's hyper-parameters may hold; torch.load's weights-only mode admits them.
SAFE_CHECKPOINT_GLOBALS = [DualLSTMConfig]

KIND_CLASSES = {"a2l": "A2LModule", "vid2vid": "Vid2VidModule"}
KIND_NAMES = {"a2l": "audio-to-landmark", "vid2vid": "landmark-to-video"}
HOW_TO_TRAIN = {
    "a2l": "`make demo` (tiny models, minutes) or `make train-a2l`",
    "vid2vid": "`make demo` (tiny models, minutes) or `make train-vid2vid`",
}
_PREFERENCE = {"best.ckpt": 0, "last.ckpt": 1}


class MissingCheckpointError(FileNotFoundError):
    """No checkpoint of the needed kind; the message says how to make one."""


@dataclass(frozen=True)
class FoundCheckpoint:
    path: Path
    run_dir: Path | None
    config: dict  # the run's config.yaml ({} when absent)


def run_config(checkpoint: Path) -> tuple[Path | None, dict]:
    """The run folder of a checkpoint and its parsed config.yaml (None, {} when it has none)."""
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        return None, {}
    try:
        return run_dir, yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError:
        return run_dir, {}


def model_class_path(config: dict) -> str:
    model = config.get("model") or {}
    return str(model.get("class_path", "")) if isinstance(model, dict) else ""


def find_checkpoint(kind: str, runs_dir: str | Path = "runs") -> FoundCheckpoint:
    """The newest ``kind`` ("a2l" or "vid2vid") checkpoint under ``runs_dir``; MissingCheckpointError if none."""
    runs_dir = Path(runs_dir)
    wanted = KIND_CLASSES[kind]
    candidates = []
    for checkpoint in runs_dir.rglob("*.ckpt") if runs_dir.is_dir() else []:
        run_dir, config = run_config(checkpoint)
        if model_class_path(config).endswith(wanted):
            key = (checkpoint.parent.stat().st_mtime, -_PREFERENCE.get(checkpoint.name, 2))
            candidates.append((key, FoundCheckpoint(checkpoint, run_dir, config)))
    if not candidates:
        raise MissingCheckpointError(
            f"no {KIND_NAMES[kind]} checkpoint ({wanted}) under {runs_dir.resolve()}: "
            f"make one with {HOW_TO_TRAIN[kind]}, or pass --{kind} PATH"
        )
    return max(candidates, key=lambda item: item[0])[1]


def resolve_checkpoint(kind: str, path: str | Path | None, runs_dir: str | Path = "runs") -> FoundCheckpoint:
    """An explicit checkpoint path (checked) or the newest one of ``kind`` under ``runs_dir``."""
    if path is None:
        return find_checkpoint(kind, runs_dir)
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{KIND_NAMES[kind]} checkpoint not found")
    run_dir, config = run_config(path)
    return FoundCheckpoint(path, run_dir, config)


def load_module(kind: str, found: FoundCheckpoint, device: str = "cpu"):
    """The LightningModule of a checkpoint, in eval mode; InputError naming the file when it is not one."""
    if kind == "a2l":
        from eapc_lightning.lit.a2l import A2LModule as module_class
    else:
        from eapc_lightning.lit.vid2vid import Vid2VidModule as module_class
    try:
        with torch.serialization.safe_globals(SAFE_CHECKPOINT_GLOBALS):
            module = module_class.load_from_checkpoint(found.path, map_location=torch.device(device))
    except (
        RuntimeError,
        KeyError,
        TypeError,
        ValueError,
        EOFError,
        AttributeError,
        pickle.UnpicklingError,
    ) as error:
        raise InputError(
            found.path, f"not a checkpoint of the {KIND_NAMES[kind]} model ({type(error).__name__}: {error})"
        ) from error
    return module.eval()
