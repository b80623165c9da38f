"""``eapc evaluate-render``: does each renderer's face follow its driving landmarks? (docs/generate.md)

    eapc evaluate-render --faces DIR_OR_FILES... --speech WAVS... [--renderer vid2vid warp]
                         [--a2l CKPT] [--vid2vid CKPT] [--runs runs] [--out tables/render_fidelity]

Every face x speech x renderer goes through ``eapc generate``'s pipeline (the a2l checkpoint is the same
for all, so both renderers of a face and a speech get the same landmarks); MediaPipe re-detects the
landmarks on the frames, and the re-detected inner-lip gap is compared with the driving one
(``eapc_lightning.evaluation.render_fidelity``). Writes ``OUT/render_fidelity.md`` and ``.csv``, the
videos and their driving landmarks (``.npy``) under ``OUT/videos/``. A failed item (a photo without a
face, say) is recorded with its reason and the rest go on. Exit status 0 when at least one item was
measured, 1 when none was, 2 for bad options.
"""

import argparse
import shlex
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from eapc_lightning.constants import CANONICAL_FACE_SIZE

RENDERER_CHOICES = ("vid2vid", "warp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--faces", nargs="+", required=True, type=Path, help="face photos, or folders of them (png, jpg, ...)"
    )
    parser.add_argument("--speech", nargs="+", required=True, type=Path, help="speech files (wav, m4a, ...)")
    parser.add_argument(
        "--renderer",
        nargs="+",
        choices=RENDERER_CHOICES,
        default=list(RENDERER_CHOICES),
        help="renderers to measure (default: vid2vid warp)",
    )
    parser.add_argument(
        "--a2l", type=Path, help="audio-to-landmark checkpoint (default: newest under --runs)"
    )
    parser.add_argument("--vid2vid", type=Path, help="landmark-to-video checkpoint (default: newest)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="where to look for checkpoints")
    parser.add_argument(
        "--out", type=Path, default=Path("tables/render_fidelity"), help="folder for the tables and videos"
    )
    parser.add_argument("--size", type=int, default=CANONICAL_FACE_SIZE, help="frame side in pixels")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")


def _unique_stems(paths: Sequence[Path]) -> list[str]:
    stems = [path.stem for path in paths]
    return [stem if stems.count(stem) == 1 else f"{index:02d}-{stem}" for index, stem in enumerate(stems)]


def _render_and_measure(item, photo, video: Path, options: dict) -> None:
    import numpy as np

    from eapc_lightning.evaluation.render_fidelity import measure_render
    from eapc_lightning.inference.pipeline import GenerateOptions, generate
    from eapc_lightning.prepare.video import iter_frames

    landmarks = video.with_suffix(".npy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = generate(
            GenerateOptions(
                audio=item.speech,
                face=item.face,
                out=video,
                renderer=item.renderer,
                landmarks_npy=landmarks,
                vid2vid=options["vid2vid"] if item.renderer == "vid2vid" else None,
                a2l=options["a2l"],
                runs_dir=options["runs"],
                size=options["size"],
                device=options["device"],
            )
        )
    item.notes += result.notes + [str(w.message) for w in caught if "faces found" in str(w.message)]
    item.video = video
    item.fidelity = measure_render(
        iter_frames(video), np.load(landmarks), photo.aligned_face(options["size"]), photo.reference_landmarks
    )


def evaluate_renders(
    faces: Sequence[Path],
    speeches: Sequence[Path],
    renderers: Sequence[str],
    out: Path,
    *,
    a2l: Path | None = None,
    vid2vid: Path | None = None,
    runs: Path = Path("runs"),
    size: int = CANONICAL_FACE_SIZE,
    device: str = "cpu",
    command: str = "",
    progress: Callable | None = None,
) -> list:
    """Generate and measure every face x speech x renderer (a list of ``RenderItem`` in that order);
    videos and driving landmarks go to ``out/videos/``, the tables to ``out/render_fidelity.{md,csv}``."""
    from eapc_lightning.errors import InputError
    from eapc_lightning.evaluation.render_fidelity import RenderItem, write_tables
    from eapc_lightning.inference.checkpoints import MissingCheckpointError
    from eapc_lightning.inference.face_photo import load_face_photo

    out = Path(out)
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    options = dict(a2l=a2l, vid2vid=vid2vid, runs=runs, size=size, device=device)
    items = []
    for face, face_name in zip(faces, _unique_stems(faces)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # several faces: generate's warning is recorded per item
                photo, photo_error = load_face_photo(face), None
        except InputError as error:
            photo, photo_error = None, error.reason
        for speech, speech_name in zip(speeches, _unique_stems(speeches)):
            for renderer in renderers:
                item = RenderItem(face=face, speech=speech, renderer=renderer, error=photo_error)
                items.append(item)
                if photo is not None:
                    video = videos / f"{face_name}-{speech_name}-{renderer}.mp4"
                    try:
                        _render_and_measure(item, photo, video, options)
                    except (InputError, MissingCheckpointError, ValueError, RuntimeError) as error:
                        item.error = str(error)
                if progress is not None:
                    progress(item)
    write_tables(items, renderers, out, command)
    return items


def _command_line(args: argparse.Namespace) -> str:
    """The command as it was given (its options in a fixed order), for the table's heading."""
    words = ["eapc", "evaluate-render", "--faces", *args.faces, "--speech", *args.speech]
    words += ["--renderer", *args.renderer]
    for flag in ("a2l", "vid2vid"):
        if getattr(args, flag) is not None:
            words += [f"--{flag}", getattr(args, flag)]
    words += ["--runs", args.runs, "--out", args.out]
    if args.size != CANONICAL_FACE_SIZE:
        words += ["--size", args.size]
    return " ".join(shlex.quote(str(word)) for word in words)


def _report(item) -> None:
    where = f"{item.face.name} x {item.speech.name} x {item.renderer}"
    if not item.ok:
        print(f"{where}: failed: {item.error}", file=sys.stderr, flush=True)
        return
    measured = item.fidelity
    r = "-" if measured.r is None else f"{measured.r:.2f}"
    ratio = "-" if measured.std_ratio is None else f"{measured.std_ratio:.2f}"
    print(
        f"{where}: r {r}, std ratio {ratio}, mouth diff {measured.mouth_difference:.1f} vs forehead "
        f"{measured.forehead_difference:.1f} ({measured.detected}/{measured.frames} frames with a face)",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    if args.vid2vid is not None and "vid2vid" not in args.renderer:
        print("eapc evaluate-render: --vid2vid needs --renderer vid2vid", file=sys.stderr)
        return 2
    if args.size < 16 or args.size % 2:
        print(f"eapc evaluate-render: --size must be an even number >= 16, got {args.size}", file=sys.stderr)
        return 2
    from eapc_lightning.evaluation.render_fidelity import face_files

    faces = face_files(args.faces)
    if not faces:
        print(f"eapc evaluate-render: no image in {' '.join(map(str, args.faces))}", file=sys.stderr)
        return 2
    items = evaluate_renders(
        faces,
        args.speech,
        args.renderer,
        args.out,
        a2l=args.a2l,
        vid2vid=args.vid2vid,
        runs=args.runs,
        size=args.size,
        device=args.device,
        command=_command_line(args),
        progress=_report,
    )
    done = sum(item.ok for item in items)
    tables = f"{args.out}/render_fidelity.md, {args.out}/render_fidelity.csv"
    print(f"measured {done} of {len(items)} items: {tables}")
    return 0 if done else 1
