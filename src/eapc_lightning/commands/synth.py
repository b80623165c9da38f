"""``eapc synth --out DIR``: write the synthetic emotional talking-face dataset (MEAD layout)."""

import argparse
import time

from eapc_lightning.constants import EMOTIONS, VIDEO_FPS


def _csv(kind):
    def parse(text: str):
        return tuple(kind(item) for item in text.split(",") if item.strip())

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from eapc_lightning.synth.generator import SYNTH_PRESETS, VOICES

    parser.add_argument("--out", required=True, help="output folder (created; complete clips are kept)")
    parser.add_argument("--preset", default="default", choices=sorted(SYNTH_PRESETS), help="dataset size")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (speakers, sentences, motion)")
    parser.add_argument("--workers", type=int, default=2, help="processes generating clips in parallel")
    parser.add_argument("--speakers", type=int, help="number of speakers (M101, W102, ...)")
    parser.add_argument("--clips-per-cell", type=int, help="clips per speaker, emotion and level")
    parser.add_argument("--seconds", type=float, help="mean clip length in seconds (each clip varies +-15%%)")
    parser.add_argument("--emotions", type=_csv(str), help=f"comma-separated subset of {','.join(EMOTIONS)}")
    parser.add_argument("--levels", type=_csv(int), help="comma-separated subset of 1,2,3")
    parser.add_argument("--size", type=int, help="video frame side in pixels (default 256)")
    parser.add_argument(
        "--voice",
        choices=VOICES,
        help="espeak: English sentences by eSpeak NG; formant: the formant synthesiser's syllables "
        "(default: the preset's)",
    )
    parser.add_argument(
        "--clean-audio",
        action="store_true",
        help="the synthesiser's studio-clean audio (no room, channel, noise or gain; docs/synthetic.md)",
    )
    parser.add_argument(
        "--contact-sheet",
        metavar="PNG",
        help="also write the speakers' rest frames side by side to this PNG (docs/images/synthetic_speakers.png)",
    )


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from eapc_lightning.synth.generator import (
        clip_specs,
        generate_dataset,
        resolve_settings,
        write_contact_sheet,
    )

    overrides = {
        "speakers": args.speakers,
        "clips_per_cell": args.clips_per_cell,
        "seconds": args.seconds,
        "emotions": args.emotions,
        "levels": args.levels,
        "size": args.size,
        "recording": False if args.clean_audio else None,
        "voice": args.voice,
    }
    try:
        settings = resolve_settings(args.preset, overrides)
        total = len(clip_specs(settings))
    except ValueError as error:
        print(f"eapc synth: {error}")
        return 2
    if args.contact_sheet:
        sheet = write_contact_sheet(args.contact_sheet, seed=args.seed, speakers=settings.speakers)
        print(f"speakers' contact sheet: {sheet}")
    start = time.perf_counter()
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("clips", total=total)
        records = generate_dataset(
            args.out,
            preset=args.preset,
            seed=args.seed,
            workers=args.workers,
            progress=lambda _: progress.advance(task),
            **overrides,
        )
    elapsed = time.perf_counter() - start
    counts = {
        status: sum(r["status"] == status for r in records) for status in ("generated", "skipped", "failed")
    }
    frames = sum(r["num_frames"] or 0 for r in records)
    speakers = sorted({r["speaker"] for r in records})
    print(
        f"{len(records)} clips ({counts['generated']} generated, {counts['skipped']} already complete, "
        f"{counts['failed']} failed), {len(speakers)} speakers ({', '.join(speakers)}), {frames} frames "
        f"({frames / VIDEO_FPS:.0f} s) in {args.out}; {elapsed:.1f} s"
    )
    for record in records:
        if record["status"] == "failed":
            print(f"failed: {record['video']}: {record['error']}")
    return 1 if counts["failed"] else 0
