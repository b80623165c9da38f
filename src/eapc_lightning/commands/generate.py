"""``eapc generate``: speech + a face photo -> a talking-face mp4 with sound (docs/generate.md).

Exit status: 0 written; 1 a bad input, output path, device or checkpoint (one line on stderr naming it;
output paths, device and checkpoint kinds are checked before any model is loaded or audio decoded); 2 a bad
combination of options; 130 interrupted (Ctrl-C, SIGINT); 143 terminated (SIGTERM, reported as an exit
status, not by re-raising the signal). On SIGINT and SIGTERM the command unwinds like any error, so
no temporary file is left beside the output, and prints one line (``eapc generate: interrupted`` or
``eapc generate: terminated``). A second SIGINT or SIGTERM while it unwinds ends it at once; a temporary file left
that way (or by SIGKILL) is removed by the next run writing the same output.
"""

import argparse
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from eapc_lightning.constants import CANONICAL_FACE_SIZE, EMOTIONS, VIDEO_FPS


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
        "--renderer",
        choices=("vid2vid", "warp"),
        default="vid2vid",
        help="landmarks -> video: vid2vid (trained generator, default) or warp (the photo warped onto"
        " the landmarks with a painted mouth; needs no vid2vid checkpoint, fast on a CPU)",
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
    """A rich progress bar (the generated frames) and the callback that drives it."""
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


EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Interrupted(KeyboardInterrupt):
    """SIGINT arrived. Raised by this command's own handler rather than Python's default one, so an
    interrupted run that reports itself ends with status 130 and never by the signal."""


class Terminated(BaseException):
    """SIGTERM arrived; unwinds like KeyboardInterrupt, so every ``finally`` and cleanup runs."""


_STOP_SIGNALS: dict[int, type[BaseException]] = {signal.SIGINT: Interrupted, signal.SIGTERM: Terminated}
_stop_requested: list[type[BaseException]] = []  # the exception of the first stop signal, once it came


def _raise_stop(signum, frame) -> None:
    signal.signal(signum, signal.SIG_DFL)  # the same signal again ends the process at once
    stop = _STOP_SIGNALS[signum]
    _stop_requested.append(stop)  # checked once per frame too, should extension code swallow the exception
    raise stop()


def _stop_if_signalled(update: Callable[[str, int, int], None] | None) -> Callable[[str, int, int], None]:
    """The per-frame progress callback, which also ends the run once SIGINT or SIGTERM has arrived."""

    def progress(stage: str, done: int, total: int) -> None:
        if _stop_requested:
            raise _stop_requested[0]()
        if update is not None:
            update(stage, done, total)

    return progress


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """Within the block SIGINT raises :class:`Interrupted` and SIGTERM :class:`Terminated` (main thread
    only; elsewhere nothing changes); the previous handlers come back at its end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _stop_requested.clear()
    previous = {signum: signal.signal(signum, _raise_stop) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def run(args: argparse.Namespace) -> int:
    if args.intensity is not None and args.emotion is None:
        print("eapc generate: --intensity needs --emotion", file=sys.stderr)
        return 2
    if args.renderer == "warp" and args.vid2vid is not None:
        print("eapc generate: --vid2vid needs --renderer vid2vid", file=sys.stderr)
        return 2
    with _stop_signals_raise():
        try:
            return _run(args)
        except KeyboardInterrupt:
            print("eapc generate: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Terminated:
            print("eapc generate: terminated", file=sys.stderr)
            return EXIT_TERMINATED


def _run(args: argparse.Namespace) -> int:
    from eapc_lightning.errors import InputError
    from eapc_lightning.render.video import check_output_path

    try:  # before the heavy imports: a path that cannot be written fails in a fraction of a second
        for path in (args.out, args.save_landmarks):
            if path is not None:
                check_output_path(path)
    except InputError as error:
        print(f"eapc generate: {error}", file=sys.stderr)
        return 1

    from eapc_lightning.inference.checkpoints import MissingCheckpointError
    from eapc_lightning.inference.face_photo import MultipleFacesWarning
    from eapc_lightning.inference.pipeline import GenerateOptions, SilentAudioWarning, generate

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
        renderer=args.renderer,
    )
    bar, update = _progress_bar(not args.no_progress)
    update = _stop_if_signalled(update)
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
    kind = (
        "landmark animation"
        if options.landmarks_only
        else "talking face, warp renderer"
        if options.renderer == "warp"
        else "talking face"
    )
    print(
        f"wrote {result.out} ({kind}, {result.num_frames} frames, {result.num_frames / VIDEO_FPS:.2f} s, with sound)"
    )
    low, high = result.gap_range
    print(
        f"mouth: inner-lip gap {low:.1f} to {high:.1f} px of the {CANONICAL_FACE_SIZE}-px face frame "
        f"(spans {high - low:.1f} px)"
    )
    return 0
