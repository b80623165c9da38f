"""Throughput of ``eapc prepare`` next to plain decoding, and the speed-up of 2 worker processes over 1.

All figures come from one run over the same clips (real talking-face clips of the shared test media by
default, or any folder dataset), so their ratios are comparable:

    python benchmarks/prepare_throughput.py [--root FOLDER] [--clips N] [--crop-size 256]

Prints, in frames per second of 25 fps video: decode only (PyAV, RGB, resampled to 25 fps), decode +
MediaPipe landmarks, the whole prepare pipeline with 1 worker and with 2 workers, and the 2-over-1
speed-up, twice: run 1 includes starting the pool's forkserver (imports and librosa's JIT compile,
once per run), run 2 reuses it as any later pool in the same process does. The load average is
printed too: on a shared machine other processes take cores from the workers.
"""

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from eapc_lightning.landmarks.detect import FaceLandmarkDetector
from eapc_lightning.prepare.run import prepare_dataset
from eapc_lightning.prepare.selection import select_items
from eapc_lightning.prepare.video import iter_frames

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voxceleb2"


def decode_only(videos: list[Path]) -> tuple[int, float]:
    started = time.perf_counter()
    frames = sum(sum(1 for _ in iter_frames(video)) for video in videos)
    return frames, time.perf_counter() - started


def decode_and_detect(videos: list[Path]) -> tuple[int, float]:
    started = time.perf_counter()
    frames = 0
    for video in videos:
        with FaceLandmarkDetector(video=True) as detector:
            for frame in iter_frames(video):
                detector(frame)
                frames += 1
    return frames, time.perf_counter() - started


def timed_prepare(root: Path, clips: int, crop_size: int, workers: int) -> tuple[int, float, dict]:
    out = Path(tempfile.mkdtemp(prefix=f"prepare-bench-w{workers}-"))
    try:
        started = time.perf_counter()
        summary = prepare_dataset("folder", root, out, limit=clips, crop_size=crop_size, workers=workers)
        return summary["frames_prepared"], time.perf_counter() - started, summary["counts"]
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("EAPC_BENCH_ROOT", DEFAULT_ROOT)))
    parser.add_argument("--clips", type=int, default=6, help="first N clips of the folder (sorted)")
    parser.add_argument("--crop-size", type=int, default=256)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.root.is_dir():
        print(f"no clips at {args.root}: pass --root FOLDER of talking-face videos", file=sys.stderr)
        return 2
    videos = [item.video for item in select_items("folder", args.root, limit=args.clips)]
    print(
        f"{len(videos)} clips from {args.root}, crop {args.crop_size}px, {os.cpu_count()} CPU cores, "
        f"torch threads {torch.get_num_threads()}"
    )

    load_before = os.getloadavg()[0]
    decode_only(videos[:1])  # warm-up: imports, codec and file caches
    timed_prepare(args.root, 1, args.crop_size, workers=1)  # warm-up: librosa's JIT, MediaPipe's graph
    rows = []
    frames, seconds = decode_only(videos)
    rows.append(("decode only (PyAV -> RGB 25 fps)", frames, seconds))
    frames, seconds = decode_and_detect(videos)
    rows.append(("decode + MediaPipe 68 landmarks", frames, seconds))
    single = timed_prepare(args.root, args.clips, args.crop_size, workers=1)
    rows.append(("prepare, 1 worker (all stages + writes)", single[0], single[1]))
    first = timed_prepare(args.root, args.clips, args.crop_size, workers=2)
    rows.append(("prepare, 2 workers (run 1)", first[0], first[1]))
    second = timed_prepare(args.root, args.clips, args.crop_size, workers=2)
    rows.append(("prepare, 2 workers (run 2)", second[0], second[1]))

    print(f"{'stage':44s} {'frames':>7s} {'seconds':>8s} {'frames/s':>9s}")
    for name, frames, seconds in rows:
        print(f"{name:44s} {frames:7d} {seconds:8.2f} {frames / seconds:9.1f}")
    decode_fps = rows[0][1] / rows[0][2]
    prepare_fps = single[0] / single[1]
    print(
        f"prepare (1 worker): {prepare_fps:.1f} frames/s vs decode only {decode_fps:.1f} frames/s "
        f"= {decode_fps / prepare_fps:.1f}x slower than decoding alone"
    )
    print(
        f"speed-up of 2 workers over 1: {single[1] / first[1]:.2f}x (run 1), {single[1] / second[1]:.2f}x (run 2) "
        f"(items ok: {single[2]['ok']} / {first[2]['ok']} / {second[2]['ok']})"
    )
    print(
        f"1-min load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
