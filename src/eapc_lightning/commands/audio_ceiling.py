"""``eapc audio-ceiling --cache-dir CACHE --out DIR [--ridge 1e4]``: how much of each clip's mouth opening
the audio features predict, learnt from the other clips of the same cache
(``eapc_lightning.evaluation.audio_ceiling``); writes ``DIR/audio_ceiling.md``. Exit status 0 written;
1 a cache with fewer than two clips or unreadable clips; 2 a ridge below 0.
"""

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, required=True, help="a prepared cache (eapc prepare --out)")
    parser.add_argument("--out", type=Path, required=True, help="folder for audio_ceiling.md")
    parser.add_argument("--ridge", type=float, default=None, help="ridge strength (default 1e4)")


def run(args: argparse.Namespace) -> int:
    from eapc_lightning.data.index import list_clips
    from eapc_lightning.errors import InputError
    from eapc_lightning.evaluation.audio_ceiling import RIDGE, audio_ceiling, write_audio_ceiling

    ridge = RIDGE if args.ridge is None else args.ridge
    if ridge < 0:
        print("eapc audio-ceiling: --ridge must be >= 0", file=sys.stderr)
        return 2
    try:
        ceiling = audio_ceiling(list_clips(args.cache_dir), ridge)
        path = write_audio_ceiling(ceiling, args.out)
    except (InputError, ValueError) as error:
        print(f"eapc audio-ceiling: {error}", file=sys.stderr)
        return 1
    print(
        f"audio features alone, each clip scored by the other {len(ceiling.r) - 1}: mean mouth r "
        f"{ceiling.mean_r:.3f}, {ceiling.above()} of {len(ceiling.r)} clips above 0.5 ({path})"
    )
    return 0
