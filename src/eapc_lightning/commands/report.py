"""``eapc report RUN_DIR... --out report.md``: run folders gathered into one markdown report."""

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dirs", nargs="+", type=Path, help="run folders (eapc fit/test, eapc evaluate --out)"
    )
    parser.add_argument("--out", type=Path, default=Path("report.md"), help="markdown file to write")


def run(args: argparse.Namespace) -> int:
    from eapc_lightning.evaluation.report import write_report

    out, sections = write_report(args.run_dirs, args.out)
    for section in sections:
        if not section.ok:
            print(f"eapc report: {section.run_dir}: not a folder, skipped", file=sys.stderr)
    print(f"wrote {out} ({sum(s.pictures for s in sections)} pictures)")
    return 0 if any(section.ok for section in sections) else 1
