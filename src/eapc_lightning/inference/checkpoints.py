"""Which trained models ``eapc generate`` / ``eapc evaluate`` use, and loading them.

Without an explicit path the newest checkpoint (by modification time) of the right kind under this
checkout's ``runs/`` folder is taken. A checkpoint's kind comes from the ``config.yaml`` of its run
folder (``<run>/checkpoints/*.ckpt`` beside ``<run>/config.yaml``, written by ``eapc fit``): the
model's ``class_path`` names ``A2LModule`` or ``Vid2VidModule``. Within one run ``best.ckpt`` is preferred
over ``last.ckpt``.

Before a checkpoint is handed to Lightning its content is read in torch's weights-only mode and its kind
checked (the ``_class_path`` that ``eapc fit`` records in the hyper-parameters, else the run's
``config.yaml``, else which module's arguments the hyper-parameters are), so a landmark-to-video
checkpoint given as the audio-to-landmark one is named as such. Errors never repeat torch's or
Lightning's advice to load a file with fewer safety checks.
"""

import inspect
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

# Project classes a checkpoint's hyper-parameters may hold (DualLSTMConfig) are admitted by torch.load's
# weights-only mode where they are defined: importing eapc_lightning.models registers them.
import eapc_lightning.models  # noqa: F401
from eapc_lightning.errors import InputError

KIND_CLASSES = {"a2l": "A2LModule", "vid2vid": "Vid2VidModule"}
KIND_NAMES = {"a2l": "audio-to-landmark", "vid2vid": "landmark-to-video"}
_ARTICLES = {"a2l": "an", "vid2vid": "a"}
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


def check_device(name: str) -> torch.device:
    """The torch device ``name`` names, if this machine has it; ValueError with a one-line reason otherwise."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"--device {name}: not a torch device (use cpu, cuda, cuda:N or mps)") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {name}: MPS is not available on this machine")
        return device
    backend = getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    if callable(available) and available():
        return device
    raise ValueError(f"--device {name}: no {device.type} device on this machine (use cpu, cuda or mps)")


_UNSAFE_ADVICE = ("weights_only", "import the module", "trust")
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_MAX_CAUSE = 160


def _short_cause(error: BaseException) -> str:
    """The error's type and the first line of its message, without advice to load the file unsafely."""
    name = type(error).__name__
    text = str(error).strip()
    unsupported = _UNSUPPORTED_GLOBAL.search(text)
    if unsupported:
        return f"{name}: it holds a {unsupported.group(1)} object, which is not loaded from checkpoints"
    if isinstance(error, EOFError):
        return f"{name}: the file is empty or cut short"
    if "PytorchStreamReader" in text:
        return f"{name}: the file is damaged or cut short"
    if not text or any(advice in text for advice in _UNSAFE_ADVICE):
        return name
    line = text.splitlines()[0].strip().rstrip(":")
    if len(line) > _MAX_CAUSE:
        line = line[: _MAX_CAUSE - 3] + "..."
    return f"{name}: {line}"


# what torch.load / load_from_checkpoint raise for a file that is not a loadable checkpoint of the module
CHECKPOINT_LOAD_ERRORS = (
    RuntimeError,
    KeyError,
    TypeError,
    ValueError,
    EOFError,
    AttributeError,
    pickle.UnpicklingError,
)


def _not_a_checkpoint(kind: str, found: FoundCheckpoint, cause: str) -> InputError:
    return InputError(found.path, f"not a checkpoint of the {KIND_NAMES[kind]} model ({cause})")


def _read_checkpoint(kind: str, found: FoundCheckpoint) -> dict:
    """The checkpoint's content in weights-only mode, tensors memory-mapped where the format allows."""
    try:
        content = torch.load(
            found.path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(found.path)
        )
    except CHECKPOINT_LOAD_ERRORS as error:
        text = str(error)
        readable = (
            isinstance(error, EOFError) or _UNSUPPORTED_GLOBAL.search(text) or "PytorchStreamReader" in text
        )
        if readable or zipfile.is_zipfile(found.path):
            cause = _short_cause(error)
        else:
            cause = f"{type(error).__name__}: not a PyTorch file"
        raise _not_a_checkpoint(kind, found, cause) from None
    if not isinstance(content, dict) or not isinstance(content.get("state_dict"), dict):
        raise _not_a_checkpoint(kind, found, "no Lightning state_dict in it")
    return content


def _module_class(kind: str):
    if kind == "a2l":
        from eapc_lightning.lit.a2l import A2LModule

        return A2LModule
    from eapc_lightning.lit.vid2vid import Vid2VidModule

    return Vid2VidModule


def _accepts(module_class, hyper_parameters: dict) -> bool:
    """Whether every hyper-parameter is an argument of ``module_class``."""
    parameters = inspect.signature(module_class.__init__).parameters
    names = {key for key in hyper_parameters if not str(key).startswith("_")}
    return bool(names) and names <= set(parameters)


def checkpoint_kind(content: dict, found: FoundCheckpoint, expected: str | None = None) -> str | None:
    """The kind ("a2l" or "vid2vid") the checkpoint's content or its run's config.yaml names; else the one
    whose module takes its hyper-parameters (``expected`` is tried first); None when that says nothing."""
    hyper_parameters = content.get("hyper_parameters")
    hyper_parameters = hyper_parameters if isinstance(hyper_parameters, dict) else {}
    for class_path in (str(hyper_parameters.get("_class_path") or ""), model_class_path(found.config)):
        for kind, class_name in KIND_CLASSES.items():
            if class_path.rsplit(".", 1)[-1] == class_name:
                return kind
    order = sorted(KIND_CLASSES, key=lambda kind: kind != expected)
    return next((kind for kind in order if _accepts(_module_class(kind), hyper_parameters)), None)


def check_checkpoint(kind: str, found: FoundCheckpoint) -> None:
    """InputError naming the file unless it reads as a Lightning checkpoint that is not of the other kind.

    Cheap (the tensors are memory-mapped, not read), so it can run before any other work.
    """
    content = _read_checkpoint(kind, found)
    held = checkpoint_kind(content, found, kind)
    del content
    if held is not None and held != kind:
        held_model = f"{_ARTICLES[held]} {KIND_NAMES[held]} model ({KIND_CLASSES[held]})"
        raise _not_a_checkpoint(kind, found, f"it holds {held_model}; pass it as --{held}")


def load_module(kind: str, found: FoundCheckpoint, device: str = "cpu"):
    """The LightningModule of a checkpoint, in eval mode; InputError naming the file when it is not one.

    ``device`` is checked first (ValueError when this machine does not have it).
    """
    target = check_device(device)
    check_checkpoint(kind, found)
    module_class = _module_class(kind)
    try:
        module = module_class.load_from_checkpoint(found.path, map_location=target)
    except CHECKPOINT_LOAD_ERRORS as error:
        raise _not_a_checkpoint(kind, found, _short_cause(error)) from None
    return module.eval()
