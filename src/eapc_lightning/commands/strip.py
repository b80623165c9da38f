"""``eapc strip VIDEO --frames 6 --out strip.png [--height 128]``: evenly spaced frames of a video as one PNG.

The first and the last frame are always among them; the frames are scaled to ``--height`` and lined up
left to right with a ``--gap`` of white pixels (``eapc_lightning.render.compose.video_strip``). The PNG
is written atomically. Exit status 0 written; 1 an unreadable video or an output that cannot be written;
2 bad numbers.
"""

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="any video PyAV reads (mp4, mkv, flv, ...)")
    parser.add_argument("--frames", type=int, default=6, help="how many frames (default 6)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument(
        "--height", type=int, default=128, help="height of each frame in pixels (default 128)"
    )
    parser.add_argument("--gap", type=int, default=2, help="white pixels between frames (default 2)")


def run(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.height < 8 or args.gap < 0:
        print("eapc strip: --frames must be >= 1, --height >= 8 and --gap >= 0", file=sys.stderr)
        return 2
    from eapc_lightning.errors import InputError
    from eapc_lightning.fileio import write_png
    from eapc_lightning.render.compose import video_strip
    from eapc_lightning.render.video import check_output_path

    try:
        check_output_path(args.out)
        picture = video_strip(args.video, args.frames, args.height, args.gap)
        write_png(args.out, picture)
    except (InputError, ValueError) as error:
        print(f"eapc strip: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({picture.shape[1]}x{picture.shape[0]} px, frames of {args.video})")
    return 0
