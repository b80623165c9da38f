"""``eapc prepare``: decode raw media, detect landmarks and extract audio features into a clip cache.

Exit status 0 when the run finished (failed items are recorded in the summary), 2 on usage errors:
invalid arguments, a root holding no clips in the dataset's layout, filters that select nothing, or a
cache folder that cannot be written (each a one-line message naming the path). The library raises
these in its own terms (eapc_lightning.prepare.errors); ``usage_message`` words them with the flags.
"""

import argparse
import logging
import sys

from eapc_lightning.landmarks.gaps import GAP_POLICIES
from eapc_lightning.prepare.errors import (
    ArgumentError,
    CacheFolderError,
    NothingSelectedError,
    PrepareUsageError,
)
from eapc_lightning.prepare.run import prepare_dataset
from eapc_lightning.prepare.settings import DEFAULT_MAX_GAP
from eapc_lightning.prepare.sources import DATASETS

SHOWN_FAILURES = 10
# the flag of each parameter of prepare_dataset (and filter) that an error can name
FLAGS = {
    "dataset": "--dataset",
    "root": "--root",
    "out": "--out",
    "labels_csv": "--labels",
    "workers": "--workers",
    "num_shards": "--num-shards",
    "shard_index": "--shard-index",
    "limit": "--limit",
    "speakers": "--speakers",
    "emotions": "--emotions",
    "views": "--views",
    "crop_size": "--crop-size",
    "max_gap": "--max-gap",
    "gap_policy": "--gap-policy",
}


def _names(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="layout of the raw media")
    parser.add_argument("--root", required=True, help="folder of the raw dataset")
    parser.add_argument("--out", required=True, help="cache folder (clips/, manifest*.json, summary*.json)")
    parser.add_argument(
        "--labels", default=None, help="folder dataset: CSV with columns path,speaker,emotion,level"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes preparing clips in parallel")
    parser.add_argument("--num-shards", type=int, default=1, help="split the sorted item list into K shards")
    parser.add_argument("--shard-index", type=int, default=0, help="which shard this run prepares (0-based)")
    parser.add_argument(
        "--limit", type=int, default=None, help="prepare only the first N items (before sharding)"
    )
    parser.add_argument("--speakers", type=_names, default=None, help="comma-separated speakers to keep")
    parser.add_argument("--emotions", type=_names, default=None, help="comma-separated emotions to keep")
    parser.add_argument(
        "--views", type=_names, default=["front"], help="MEAD camera views to keep (default: front)"
    )
    parser.add_argument("--crop-size", type=int, default=256, help="aligned face crop size in pixels")
    parser.add_argument(
        "--max-gap", type=int, default=DEFAULT_MAX_GAP, help="longest run of faceless frames to interpolate"
    )
    parser.add_argument(
        "--gap-policy",
        choices=GAP_POLICIES,
        default="split",
        help="what to do with a clip whose gap is longer",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = prepare_dataset(
            args.dataset,
            args.root,
            args.out,
            workers=args.workers,
            num_shards=args.num_shards,
            shard_index=args.shard_index,
            limit=args.limit,
            speakers=args.speakers,
            emotions=args.emotions,
            views=args.views,
            crop_size=args.crop_size,
            max_gap=args.max_gap,
            gap_policy=args.gap_policy,
            labels_csv=args.labels,
            progress=not args.no_progress,
        )
    except PrepareUsageError as error:
        print(f"eapc prepare: error: {usage_message(error)}", file=sys.stderr)
        return 2
    print(brief_summary(summary))
    return 0


def usage_message(error: PrepareUsageError) -> str:
    """The one-line message of a usage error, worded with this command's flags."""
    if isinstance(error, ArgumentError):
        return f"{FLAGS[error.name]} must be {error.rule}, not {error.value}"
    if isinstance(error, NothingSelectedError):
        wanted = " ".join(f"{FLAGS[name]} {','.join(values)}" for name, values in error.filters.items())
        return (
            f"{error.root}: {error.found} clip(s) found, but none matches {wanted} (found {error.available})"
        )
    if isinstance(error, CacheFolderError):
        return f"{FLAGS['out']} {error.out}: {error.reason}"
    return str(error)


def brief_summary(summary: dict) -> str:
    counts = summary["counts"]
    lines = [
        f"prepared {counts['ok']} item(s), {counts['skipped']} up to date, {counts['failed']} failed; "
        f"{summary['frames_prepared']} frames in {summary['seconds']:.1f} s",
    ]
    shard = summary["shard"]
    if not summary["items"]:
        lines.append(
            f"  shard {shard['index']} of {shard['count']} holds no items: "
            f"{summary.get('selected_items', 0)} item(s) selected for all shards"
        )
    failures = [record for record in summary["items"] if record["status"] == "failed"]
    for record in failures[:SHOWN_FAILURES]:
        lines.append(f"  failed {record['item']}: {record['reason']}")
    if len(failures) > SHOWN_FAILURES:
        lines.append(f"  ... and {len(failures) - SHOWN_FAILURES} more")
    warned = sum(bool(record["warnings"]) for record in summary["items"])
    if warned:
        lines.append(f"  {warned} item(s) with warnings")
    lines.append(f"summary: {summary['summary_path']}")
    return "\n".join(lines)
