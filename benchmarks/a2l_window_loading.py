"""Training windows served per second by LandmarkWindowDataset, next to re-standardising each window.

With per-utterance normalisation the features of a window depend on every frame of its clip before it
(running statistics from frame 0, as in streaming inference), so a window cannot be standardised on its
own. The dataset standardises each clip once and keeps it in its clip cache; the reference side of this
benchmark serves the same sample and adds what a dataset without that cache would have to do: standardise
the clip's frames 0..stop for every window (work that grows with the window's position in the clip;
frames start..stop only, with training statistics). Both sides read the same cached clips in the same
shuffled window order, interleaved ``--repeats`` times; medians are printed.

    .venv/bin/python benchmarks/a2l_window_loading.py [--cache-dir data/cache/synthetic] [--stride 5]
"""

import argparse
import statistics
import time

import numpy as np

from eapc_lightning.data.datamodule import LandmarkDataModule


def serve_with_clip_cache(dataset, order) -> float:
    started = time.perf_counter()
    for index in order:
        dataset[int(index)]
    return time.perf_counter() - started


def serve_restandardising_each_window(dataset, order) -> float:
    started = time.perf_counter()
    for index in order:
        dataset[int(index)]
        clip, start = (int(value) for value in dataset.windows[int(index)])
        arrays = dataset.clip_arrays(clip)  # here only a source of frames: its standardisation is ignored
        first, stop = (0 if dataset.stats.utterance_frames else start), start + dataset.window
        dataset.stats.standardize(arrays["mfcc"][first:stop], arrays["llf"][first:stop])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default="data/cache/synthetic", help="a prepared cache (eapc prepare)")
    parser.add_argument("--stride", type=int, default=5)
    parser.add_argument("--utterance-norm-frames", type=float, default=25.0, help="0: training statistics")
    parser.add_argument("--windows", type=int, default=2000, help="windows served per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    data = LandmarkDataModule(
        cache_dir=args.cache_dir, stride=args.stride, utterance_norm_frames=args.utterance_norm_frames,
        clip_cache_size=100_000,
    )  # fmt: skip
    data.setup("fit")
    dataset = data.dataset("train")
    frames = [record.num_frames for record in dataset.records]
    order = np.random.default_rng(0).permutation(len(dataset))[: args.windows]
    for clip in range(len(dataset.records)):  # both sides start with every clip in memory
        dataset.clip_arrays(clip)
    cached, restandardised = [], []
    for _ in range(args.repeats):
        cached.append(serve_with_clip_cache(dataset, order))
        restandardised.append(serve_restandardising_each_window(dataset, order))
    cached_rate = len(order) / statistics.median(cached)
    reference_rate = len(order) / statistics.median(restandardised)
    print(
        f"{len(dataset.records)} training clips of {np.mean(frames):.0f} frames on average, "
        f"{len(dataset)} windows (T {dataset.window}, stride {args.stride}), utterance_frames "
        f"{args.utterance_norm_frames:g}, {len(order)} windows per repeat, {args.repeats} repeats"
    )
    print(f"dataset (clip standardised once, cached): {cached_rate:8.0f} windows/s")
    print(f"standardising each window on its own:      {reference_rate:8.0f} windows/s")
    print(f"ratio: {cached_rate / reference_rate:.2f}")


if __name__ == "__main__":
    main()
