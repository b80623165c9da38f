"""``eapc generate``: speech + a face photo -> a talking-face mp4 with sound (docs/generate.md)."""

import argparse
import sys
import warnings
from pathlib import Path

from eapc_lightning.constants import CANONICAL_FACE_SIZE, EMOTIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--audio", required=True, type=Path, help="speech: wav, m4a, mp3 or a video's audio track"
    )
    parser.add_argument(
        "--face", required=True, type=Path, help="a photo with a face (the largest face is used)"
    )
    parser.add_argument("--out", required=True, type=Path, help="output mp4 (H.264 + AAC)")
    parser.add_argument(
        "--emotion",
        choices=EMOTIONS,
        default=None,
        help="force this emotion (default: read it from the audio)",
    )
    parser.add_argument(
        "--intensity", type=int, choices=(1, 2, 3), default=None, help="strength of --emotion (default 3)"
    )
    parser.add_argument(
        "--a2l", type=Path, default=None, help="audio-to-landmark checkpoint (default: newest in runs/)"
    )
    parser.add_argument(
        "--vid2vid", type=Path, default=None, help="landmark-to-video checkpoint (default: newest)"
    )
    parser.add_argument(
        "--landmarks-only", action="store_true", help="write the landmark animation (no vid2vid)"
    )
    parser.add_argument(
        "--save-landmarks", type=Path, default=None, help="also save (T, 68, 2) landmarks as .npy"
    )
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="where to look for checkpoints")
    parser.add_argument(
        "--chunk-frames", type=int, default=250, help="frames processed per chunk (memory bound)"
    )
    parser.add_argument("--size", type=int, default=CANONICAL_FACE_SIZE, help="output frame side in pixels")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _progress_bar(enabled: bool):
    """A rich progress bar (audio analysis, then frames) and the callback that drives it."""
    if not enabled:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
    tasks: dict[str, int] = {}
    labels = {"frames": "generating frames"}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update


def run(args: argparse.Namespace) -> int:
    from eapc_lightning.errors import InputError
    from eapc_lightning.inference.checkpoints import MissingCheckpointError
    from eapc_lightning.inference.face_photo import MultipleFacesWarning
    from eapc_lightning.inference.pipeline import GenerateOptions, SilentAudioWarning, generate

    if args.intensity is not None and args.emotion is None:
        print("eapc generate: --intensity needs --emotion", file=sys.stderr)
        return 2
    options = GenerateOptions(
        audio=args.audio,
        face=args.face,
        out=args.out,
        emotion=args.emotion,
        intensity=args.intensity,
        a2l=args.a2l,
        vid2vid=args.vid2vid,
        landmarks_only=args.landmarks_only,
        landmarks_npy=args.save_landmarks,
        runs_dir=args.runs,
        chunk_frames=args.chunk_frames,
        size=args.size,
        device=args.device,
    )
    bar, update = _progress_bar(not args.no_progress)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if bar is None:
                result = generate(options, update)
            else:
                with bar:
                    result = generate(options, update)
        for warning in caught:
            if issubclass(warning.category, (MultipleFacesWarning, SilentAudioWarning)):
                print(f"warning: {warning.message}", file=sys.stderr)
    except (InputError, MissingCheckpointError, ValueError, RuntimeError) as error:
        print(f"eapc generate: {error}", file=sys.stderr)
        return 1
    print(f"audio-to-landmark checkpoint: {result.a2l.path}")
    if result.vid2vid is not None:
        print(f"landmark-to-video checkpoint: {result.vid2vid.path}")
    kind = "landmark animation" if options.landmarks_only else "talking face"
    print(
        f"wrote {result.out} ({kind}, {result.num_frames} frames, {result.num_frames / 25:.2f} s, with sound)"
    )
    return 0
