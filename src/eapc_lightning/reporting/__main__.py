"""``python -m eapc_lightning.reporting``: metric tables from run folders.

python -m eapc_lightning.reporting run RUN_DIR            # one run vs. its held-still baseline
python -m eapc_lightning.reporting ablation RUNS --out DIR   # Tables 2 and 3 from a sweep's runs
"""

import argparse
import sys
from pathlib import Path

from eapc_lightning.errors import InputError
from eapc_lightning.reporting.ablation import ablation_tables
from eapc_lightning.reporting.runs import collect_sweep
from eapc_lightning.reporting.single_run import run_report
from eapc_lightning.reporting.tables import tables_markdown, write_tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eapc_lightning.reporting", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    single = commands.add_parser("run", help="report of one run folder (writes report.md/.csv into it)")
    single.add_argument("run_dir", type=Path)
    sweep = commands.add_parser("ablation", help="ablation tables from <runs>/<variant>/seed<k>/ folders")
    sweep.add_argument("runs", type=Path)
    sweep.add_argument("--out", type=Path, default=Path("tables"))
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            print(run_report(args.run_dir))
            print(f"written: {args.run_dir / 'report.md'}, {args.run_dir / 'report.csv'}")
        else:
            tables = ablation_tables(collect_sweep(args.runs))
            write_tables(tables, args.out / "ablation.md", args.out / "ablation.csv", heading="Ablation")
            print(tables_markdown(tables))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
