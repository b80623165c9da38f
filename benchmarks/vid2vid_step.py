"""Speed of the landmark-to-video stage: generator frames/s and the time of a full G+D training step.

Measures, side by side in one run, the CPU default (``experiments/vid2vid.yaml``) and the paper scale
(``experiments/vid2vid_mead.yaml``, 256x256) on the same machine, with the model sizes of those configs:

* generator frames/s: the EMA generator in inference (no grad) on one frame per sample, with a previous
  frame (so both flow networks run), batch size of the config's evaluation;
* training step: ``Vid2VidModule.training_step`` (G forward/backward/step, then D forward/backward/step,
  EMA update) driven by a Lightning Trainer on in-memory random batches, at the sequence length given
  by ``--sequence-length``; the first ``--warmup`` steps are not timed.

The perceptual loss is measured when its VGG19 weights are present; otherwise it is switched off and the
output says so. Usage::

    python benchmarks/vid2vid_step.py                     # both configs, on CUDA when available
    python benchmarks/vid2vid_step.py --configs experiments/vid2vid.yaml --device cpu --threads 2
"""

import argparse
import statistics
import time
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch import Callback
from torch.utils.data import DataLoader, Dataset

from eapc_lightning.commands.lightning import DATA_TO_MODEL_LINKS
from eapc_lightning.errors import MissingWeightsError
from eapc_lightning.lit.vid2vid import Vid2VidModule
from eapc_lightning.losses.perceptual import resolve_vgg19_weights

REPO_ROOT = Path(__file__).resolve().parents[1]


class RandomBatches(Dataset):
    """``count`` copies of one random sample (data loading is not what is measured)."""

    def __init__(self, count: int, image_size: int, num_references: int, length: int):
        size = (image_size, image_size)
        self.count = count
        self.sample = {
            "reference_images": torch.rand(num_references, 3, *size) * 2 - 1,
            "reference_labels": (torch.rand(num_references, 1, *size) > 0.9).float(),
            "reference_landmarks": torch.rand(num_references, 68, 2) * image_size,
            "images": torch.rand(length, 3, *size) * 2 - 1,
            "labels": (torch.rand(length, 1, *size) > 0.9).float(),
            "landmarks": torch.rand(length, 68, 2) * image_size * 0.5 + image_size * 0.25,
            "frame_indices": torch.arange(length),
            "clip_id": "bench",
        }

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        return self.sample


class StepTimer(Callback):
    def __init__(self, warmup: int):
        self.warmup = warmup
        self.times: list[float] = []
        self._start = 0.0

    def _sync(self, module) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._sync(pl_module)
        if batch_idx >= self.warmup:
            self.times.append(time.perf_counter() - self._start)


def load_config(path: Path) -> tuple[dict, dict, dict]:
    """Model, data and trainer settings; the stage contract copied from data to model as ``eapc`` links it."""
    config = yaml.safe_load(path.read_text())
    model_args, data_args = dict(config["model"]["init_args"]), config["data"]["init_args"]
    model_args.update({key: data_args[key] for key in DATA_TO_MODEL_LINKS if key in data_args})
    return model_args, data_args, config.get("trainer", {})


def model_arguments(model_args: dict) -> tuple[dict, str]:
    args = dict(model_args)
    note = "perceptual loss on"
    if args.get("perceptual_weight", 10.0) > 0:
        try:
            resolve_vgg19_weights(args.get("vgg19_weights_path"))
        except MissingWeightsError:
            args["perceptual_weight"] = 0.0
            note = "perceptual loss OFF (VGG19 weights absent)"
    else:
        note = "perceptual loss off (config)"
    args["fid_extractor"] = "none"
    return args, note


def measure(path: Path, device: str, steps: int, warmup: int, length: int | None) -> dict:
    model_args, data_args, _ = load_config(path)
    args, note = model_arguments(model_args)
    module = Vid2VidModule(**args)
    image_size, refs = args.get("image_size", 64), args.get("num_references", 1)
    batch_size = data_args.get("batch_size", 8)
    length = length or data_args.get("sequence_length", 1)
    module.hparams.single_frame_epochs = 0 if length > 1 else 1  # curriculum at the measured length
    module.hparams.max_sequence_length = length
    module.hparams.sequence_doubling_epochs = 1 << 20

    # generator frames/s
    generator = module.generator_ema.to(device).eval()
    shape = (image_size, image_size)
    label = (torch.rand(batch_size, 1, *shape, device=device) > 0.9).float()
    refs_img = torch.rand(batch_size, refs, 3, *shape, device=device) * 2 - 1
    refs_lbl = (torch.rand(batch_size, refs, 1, *shape, device=device) > 0.9).float()
    previous = (label, torch.rand(batch_size, 3, *shape, device=device) * 2 - 1)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    timings = []
    with torch.no_grad(), autocast:
        for index in range(warmup + steps):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            generator(label, refs_img, refs_lbl, previous)
            if device == "cuda":
                torch.cuda.synchronize()
            if index >= warmup:
                timings.append(time.perf_counter() - start)
    frames_per_second = batch_size / statistics.median(timings)
    module.cpu()

    timer = StepTimer(warmup)
    trainer = L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
        default_root_dir="/tmp/eapc-vid2vid-bench",
    )
    loader = DataLoader(
        RandomBatches((warmup + steps) * batch_size, image_size, refs, length), batch_size=batch_size
    )
    trainer.fit(module, loader)
    step = statistics.median(timer.times)
    return {
        "config": str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path),
        "size": image_size,
        "references": refs,
        "batch": batch_size,
        "sequence": length,
        "generator_params_M": sum(p.numel() for p in module.generator.parameters()) / 1e6,
        "generator_fps": frames_per_second,
        "step_s": step,
        "train_frames_per_s": batch_size * length / step,
        "note": note,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[
            str(REPO_ROOT / "experiments/vid2vid.yaml"),
            str(REPO_ROOT / "experiments/vid2vid_mead.yaml"),
        ],
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--sequence-length", type=int, default=None, help="default: the config's sequence_length"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device_name = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {device_name}; torch {torch.__version__}")
    header = "| config | size | K | batch | seq | G params (M) | G frames/s | G+D step (s) | train frames/s | note |"
    print(header)
    print("|---" * 10 + "|")
    for config in args.configs:
        r = measure(Path(config).resolve(), args.device, args.steps, args.warmup, args.sequence_length)
        print(
            f"| {r['config']} | {r['size']} | {r['references']} | {r['batch']} | {r['sequence']} | "
            f"{r['generator_params_M']:.2f} | {r['generator_fps']:.1f} | {r['step_s']:.3f} | "
            f"{r['train_frames_per_s']:.1f} | {r['note']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
