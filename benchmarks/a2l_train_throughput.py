"""Training throughput of A2LModule under Lightning next to a bare PyTorch loop, measured in one run.

Both loops train the same network (same initial weights, Adam, same losses) on the same in-memory windows
through the same DataLoader and batch size; the Lightning fit logs the four training terms as real runs
do, but has no progress bar, checkpointing or validation. Every step is timed from the start of one batch
to the start of the next (so Lightning's loop overhead between batches counts). The two sides run
interleaved ``--repeats`` times and the median step time of each side is reported, which keeps bursts of
other load on a shared machine out of the ratio.

    .venv/bin/python benchmarks/a2l_train_throughput.py [--batch-size 32] [--steps 20] [--network small]
"""

import argparse
import copy
import statistics
import time

import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from torch.utils.data import DataLoader, Dataset

from eapc_lightning.lit import A2LModule
from eapc_lightning.models import DualLSTMConfig


class RandomWindows(Dataset):
    """Batch-contract windows of random features and landmarks, generated once."""

    def __init__(self, count: int, frames: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.mfcc = torch.randn(count, frames, 28, 12, generator=generator)
        self.llf = torch.randn(count, frames, 25, generator=generator)
        self.reference = 100 + 60 * torch.rand(count, 68, 2, generator=generator)
        self.landmarks = self.reference[:, None] + torch.randn(count, frames, 68, 2, generator=generator)
        self.emotion = torch.randint(-1, 8, (count,), generator=generator)

    def __len__(self) -> int:
        return len(self.mfcc)

    def __getitem__(self, index: int) -> dict:
        return {
            "mfcc": self.mfcc[index],
            "llf": self.llf[index],
            "landmarks": self.landmarks[index],
            "reference": self.reference[index],
            "emotion": self.emotion[index],
        }


class StepTimer(Callback):
    """Start time of every training batch, and of the end of training."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.stamps.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:
        self.stamps.append(time.perf_counter())


def step_times(stamps: list[float], warmup: int) -> list[float]:
    return [later - earlier for earlier, later in zip(stamps[warmup:], stamps[warmup + 1 :])]


def bare_loop(module: A2LModule, loader: DataLoader, warmup: int, steps: int) -> list[float]:
    """Seconds of each of ``steps`` optimisation steps after ``warmup`` ones, in plain PyTorch."""
    module.train()
    optimizer = torch.optim.Adam(module.parameters(), lr=module.hparams.lr)
    stamps = []
    for step, batch in enumerate(loader):
        if step == warmup + steps:
            break
        stamps.append(time.perf_counter())
        output = module.network(batch["mfcc"], batch["llf"], batch["reference"], emotion=batch["emotion"])
        loss = module.loss(
            output.landmarks, batch["landmarks"], output.emotion_logits, batch["emotion"]
        ).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    stamps.append(time.perf_counter())
    return step_times(stamps, warmup)


def lightning_fit(module: A2LModule, loader: DataLoader, warmup: int, steps: int) -> list[float]:
    timer = StepTimer()
    trainer = Trainer(
        accelerator="cpu",
        max_steps=warmup + steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=loader)
    return step_times(timer.stamps, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--network", choices=["paper", "small"], default="small")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(0, verbose=False)
    config = (
        DualLSTMConfig() if args.network == "paper" else DualLSTMConfig(audio_hidden=64, landmark_hidden=64)
    )
    template = A2LModule(network=config, emotion_loss_weight=0.1)
    dataset = RandomWindows(args.batch_size * (args.warmup + args.steps), args.frames)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    times: dict[str, list[float]] = {"bare": [], "lightning": []}
    for repeat in range(args.repeats):
        for name, run in (("bare", bare_loop), ("lightning", lightning_fit)):
            seconds = run(copy.deepcopy(template), loader, args.warmup, args.steps)
            times[name] += seconds
            print(f"repeat {repeat}: {name:9s} median step {statistics.median(seconds):.3f} s")
    rate = {name: args.batch_size / statistics.median(values) for name, values in times.items()}
    print(
        f"network={args.network} batch={args.batch_size} frames={args.frames} threads={args.threads}: "
        f"bare PyTorch {rate['bare']:.1f} samples/s, Lightning {rate['lightning']:.1f} samples/s, "
        f"ratio {rate['lightning'] / rate['bare']:.3f}"
    )


if __name__ == "__main__":
    main()
