"""Peak memory of ``eapc generate`` for 1 and 10 minutes of speech (they should be close).

Each run is a fresh child process (so the peaks do not mix); the child runs the generate pipeline and
reports its own peak resident set size (``VmHWM`` of /proc/self/status) and wall time. The speech is
synthesised (syllable-rate modulated harmonics plus noise) and written as a 16 kHz wav a block at a time.
By default the landmark animation is written (``--landmarks-only``) with a tiny random-initialised
audio-to-landmark model (memory does not depend on its training); ``--vid2vid CKPT`` adds video frames.

    .venv/bin/python benchmarks/generate_memory.py [--minutes 1 10] [--a2l CKPT] [--vid2vid CKPT]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


def write_speech(path: Path, seconds: float, seed: int = 0) -> Path:
    """Speech-like audio written in 10 s blocks (the parent never holds the whole signal)."""
    rng = np.random.default_rng(seed)
    block = 10 * SAMPLE_RATE
    total = int(seconds * SAMPLE_RATE)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        for start in range(0, total, block):
            t = np.arange(start, min(start + block, total)) / SAMPLE_RATE
            syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + np.sin(2 * np.pi * 0.3 * t)), 0, None)
            pitch = 120 + 20 * np.sin(2 * np.pi * 0.5 * t)
            phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
            voice = sum(np.sin(k * phase) / k for k in range(1, 8))
            signal = 0.15 * syllables * voice + 0.003 * rng.standard_normal(len(t))
            handle.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def tiny_a2l_checkpoint(path: Path, speech: Path) -> Path:
    """A random-initialised tiny A2LModule with feature statistics of the first 10 s of ``speech``."""
    import lightning
    import torch

    from eapc_lightning.audio import extract_features, load_audio
    from eapc_lightning.audio.features import frames_in
    from eapc_lightning.lit.a2l import A2LModule
    from eapc_lightning.models import DualLSTMConfig

    torch.manual_seed(0)
    samples = load_audio(speech)[: 10 * SAMPLE_RATE]
    features = extract_features(samples, frames_in(samples))
    mfcc = features["mfcc"].reshape(-1, 12)
    module = A2LModule(
        network=DualLSTMConfig(audio_hidden=48, audio_layers=2, landmark_hidden=48, attention_dim=48)
    )
    module.set_feature_stats(
        {
            "mfcc_mean": mfcc.mean(0),
            "mfcc_std": mfcc.std(0) + 1e-5,
            "llf_mean": features["llf"].mean(0),
            "llf_std": features["llf"].std(0) + 1e-5,
        }
    )
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    torch.save(checkpoint, path)
    return path


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(args: argparse.Namespace) -> None:
    import torch

    from eapc_lightning.inference.pipeline import GenerateOptions, generate

    torch.set_num_threads(1)
    started = time.perf_counter()
    options = GenerateOptions(
        audio=Path(args.audio),
        face=Path(args.face),
        out=Path(args.out),
        a2l=Path(args.a2l),
        vid2vid=Path(args.vid2vid) if args.vid2vid else None,
        landmarks_only=not args.vid2vid,
        size=args.size,
    )
    result = generate(options)
    report = {
        "frames": result.num_frames,
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": peak_rss_mib(),
    }
    print("RESULT " + json.dumps(report))


def default_face(folder: Path) -> Path:
    import cv2
    from skimage import data

    path = folder / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--a2l", default=None, help="a2l checkpoint (default: a tiny random-initialised one)")
    parser.add_argument("--vid2vid", default=None, help="vid2vid checkpoint: also generate frames")
    parser.add_argument("--face", default=None, help="face photo (default: scikit-image's astronaut)")
    parser.add_argument("--size", type=int, default=128, help="output frame side")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--audio", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="eapc-memory-") as scratch:
        folder = Path(scratch)
        face = args.face or default_face(folder)
        rows = []
        for minutes in args.minutes:
            speech = write_speech(folder / f"speech_{minutes:g}min.wav", minutes * 60)
            a2l = args.a2l or tiny_a2l_checkpoint(folder / "tiny_a2l.ckpt", speech)
            command = [sys.executable, __file__, "--child", "--audio", str(speech), "--face", str(face)]
            command += [
                "--a2l",
                str(a2l),
                "--out",
                str(folder / f"out_{minutes:g}.mp4"),
                "--size",
                str(args.size),
            ]
            if args.vid2vid:
                command += ["--vid2vid", args.vid2vid]
            completed = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
            if completed.returncode != 0 or not lines:
                raise SystemExit(f"{minutes} min run failed:\n{completed.stderr[-3000:]}")
            result = json.loads(lines[-1].removeprefix("RESULT "))
            rows.append((minutes, result))
            speech.unlink()
        mode = "frames (vid2vid)" if args.vid2vid else "landmark animation (--landmarks-only)"
        print(f"eapc generate peak memory, {mode}, {args.size}px output, 1 thread")
        print(f"{'speech':>10} {'frames':>8} {'wall s':>8} {'peak RSS MiB':>13}")
        for minutes, result in rows:
            print(
                f"{minutes:>7g} min {result['frames']:>8} {result['seconds']:>8.1f} {result['peak_rss_mib']:>13.1f}"
            )
        if len(rows) >= 2:
            first, last = rows[0][1]["peak_rss_mib"], rows[-1][1]["peak_rss_mib"]
            print(f"ratio {rows[-1][0]:g} min / {rows[0][0]:g} min peak RSS: {last / first:.3f}")


if __name__ == "__main__":
    main()
