"""Real-time factor of audio-to-landmark inference on one CPU thread: features + A2LModule.predict_clip.

A 60 s, 16 kHz test signal (a voiced, pitch-gliding pulse train with syllable-rate loudness changes and
noise) goes through ``eapc_lightning.audio.extract_features`` (MFCC windows + LLFs) and then through
``predict_clip`` of a paper-size network (random weights: speed does not depend on training). The
real-time factor is processing time / audio duration (below 1 = faster than real time).

    .venv/bin/python benchmarks/a2l_inference.py [--seconds 60] [--chunk 250] [--checkpoint run.ckpt]
"""

import argparse
import time

import numpy as np
import torch

from eapc_lightning.audio import extract_features
from eapc_lightning.constants import AUDIO_SAMPLE_RATE, VIDEO_FPS
from eapc_lightning.lit import A2LModule


def speech_like_signal(seconds: float, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced = np.sign(np.sin(phase)) * 0.3
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))
    return ((voiced * syllables + 0.02 * rng.standard_normal(t.size)) * 0.5).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--chunk", type=int, default=250, help="frames per predict_clip forward pass")
    parser.add_argument(
        "--checkpoint", default=None, help="an A2LModule checkpoint (default: paper-size, random)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    samples = speech_like_signal(args.seconds)
    frames = int(args.seconds * VIDEO_FPS)

    start = time.perf_counter()
    features = extract_features(samples, frames)
    feature_seconds = time.perf_counter() - start

    if args.checkpoint:
        module = A2LModule.load_from_checkpoint(args.checkpoint, map_location="cpu")
    else:
        module = A2LModule()
        module.set_feature_stats(
            {
                "mfcc_mean": features["mfcc"].mean(axis=(0, 1)),
                "mfcc_std": features["mfcc"].std(axis=(0, 1)),
                "llf_mean": features["llf"].mean(axis=0),
                "llf_std": features["llf"].std(axis=0) + 1e-6,
            }
        )
    reference = 128 + 50 * (torch.rand(68, 2) - 0.5)
    module.predict_clip(features["mfcc"][:50], features["llf"][:50], reference)  # warm-up
    start = time.perf_counter()
    landmarks = module.predict_clip(features["mfcc"], features["llf"], reference, chunk=args.chunk)
    model_seconds = time.perf_counter() - start
    assert landmarks.shape == (frames, 68, 2)

    total = feature_seconds + model_seconds
    print(
        f"audio: {args.seconds:.0f} s, {frames} frames at {VIDEO_FPS} fps; 1 CPU thread; chunk {args.chunk}"
    )
    print(f"features (MFCC + LLF): {feature_seconds:6.2f} s  RTF {feature_seconds / args.seconds:.3f}")
    print(f"model predict_clip:    {model_seconds:6.2f} s  RTF {model_seconds / args.seconds:.3f}")
    print(f"total:                 {total:6.2f} s  RTF {total / args.seconds:.3f}")


if __name__ == "__main__":
    main()
