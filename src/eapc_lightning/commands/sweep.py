"""``eapc sweep``: run experiment variants over seeds (fit, then test of the best checkpoint), then tables.

    eapc sweep --base experiments/a2l.yaml --data data_modules/synthetic.yaml \\
               --variants experiments/ablations/*.yaml --seeds 0 1 2 --out tables/

Each variant x seed is one run folder ``<runs>/<variant>/seed<k>/`` (variant = the file's stem), trained
by ``eapc fit --config BASE --config DATA --config VARIANT [--config EXTRA ...] [--KEY=VALUE ...]
--seed_everything k --run.dir FOLDER`` and evaluated by ``eapc test ... --ckpt_path FOLDER/checkpoints/
best.ckpt``, each in its own process (a crash cannot take the sweep down) with its output in
``fit.log`` / ``test.log`` beside the run. Resuming: a run whose test metrics exist is reused; a run whose
fit finished is only tested; anything else starts again from an empty folder. A failed run is recorded
in its ``sweep.json`` and in the tables' footer, and the others go on. At the end
``<out>/<table_name>.md`` and ``.csv`` hold the paper's Tables 2 and 3 (eapc_lightning.reporting.ablation)
as mean +- std over the seeds; the exit status is 1 when any run failed.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from eapc_lightning.fileio import atomic_write_json
from eapc_lightning.reporting.ablation import ablation_tables
from eapc_lightning.reporting.runs import METRICS_FILENAME, test_metrics
from eapc_lightning.reporting.tables import tables_markdown, write_tables

STATUS_FILENAME = "sweep.json"
LOG_TAIL_LINES = 15


@dataclass
class RunOutcome:
    variant: str
    seed: int
    run_dir: str
    status: str  # "ok", "reused" or "failed"
    stage: str | None = None  # the stage that failed
    error: str | None = None
    seconds: float = 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", type=Path, required=True, help="experiment YAML every variant starts from")
    parser.add_argument("--data", type=Path, required=True, help="dataset YAML (data_modules/*.yaml)")
    parser.add_argument("--variants", type=Path, nargs="+", required=True, help="variant YAMLs, one run each")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    parser.add_argument("--out", type=Path, default=Path("tables"), help="folder for the tables")
    parser.add_argument(
        "--runs", type=Path, default=Path("runs/sweeps/ablation"), help="folder of the run folders"
    )
    parser.add_argument("--table-name", default="ablation", help="tables are <out>/<name>.md and .csv")
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        dest="extra_configs",
        help="further YAML applied after the variant (e.g. a CPU-budget override); repeatable",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="LightningCLI override for fit and test, e.g. --set trainer.max_epochs=2; repeatable",
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time (each in its own process)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")


def _config_arguments(args: argparse.Namespace, variant: Path) -> list[str]:
    files = [args.base, args.data, variant, *args.extra_configs]
    configured = [item for path in files for item in ("--config", str(path))]
    return configured + [f"--{override}" for override in args.overrides]


def _commands(args: argparse.Namespace, variant: Path, seed: int, run_dir: Path) -> dict[str, list[str]]:
    common = _config_arguments(args, variant) + ["--seed_everything", str(seed), "--run.dir", str(run_dir)]
    launcher = [sys.executable, "-m", "eapc_lightning.cli"]
    return {
        "fit": launcher + ["fit", *common],
        "test": launcher + ["test", *common, "--ckpt_path", str(run_dir / "checkpoints" / "best.ckpt")],
    }


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(line for line in lines[-LOG_TAIL_LINES:] if line.strip())


def _run_stage(command: list[str], log_path: Path, env: dict[str, str]) -> int:
    with open(log_path, "w") as log_file:
        log_file.write(" ".join(command) + "\n\n")
        log_file.flush()
        return subprocess.run(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, check=False
        ).returncode


def _fit_finished(run_dir: Path) -> bool:
    return (run_dir / METRICS_FILENAME).is_file() and (run_dir / "checkpoints" / "best.ckpt").is_file()


def run_one(args: argparse.Namespace, variant: Path, seed: int, env: dict[str, str]) -> RunOutcome:
    """Fit and test one variant x seed (or reuse it); never raises for a failing run."""
    name = variant.stem
    run_dir = args.runs / name / f"seed{seed}"
    outcome = RunOutcome(variant=name, seed=seed, run_dir=str(run_dir), status="ok")
    if (run_dir / "test" / METRICS_FILENAME).is_file():
        outcome.status = "reused"
        return outcome
    started = time.monotonic()
    commands = _commands(args, variant, seed, run_dir)
    stages = ["test"] if _fit_finished(run_dir) else ["fit", "test"]
    if stages[0] == "fit" and run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted or failed fit starts over
    run_dir.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        log_path = run_dir / f"{stage}.log"
        print(f"[{name} seed {seed}] {stage} ... (log: {log_path})", flush=True)
        returncode = _run_stage(commands[stage], log_path, env)
        if returncode != 0 or (stage == "test" and not (run_dir / "test" / METRICS_FILENAME).is_file()):
            outcome.status, outcome.stage = "failed", stage
            outcome.error = f"exit status {returncode}; last lines of {log_path}:\n{_log_tail(log_path)}"
            break
    outcome.seconds = round(time.monotonic() - started, 1)
    atomic_write_json(run_dir / STATUS_FILENAME, asdict(outcome))
    print(f"[{name} seed {seed}] {outcome.status} in {outcome.seconds:.0f} s", flush=True)
    return outcome


def _child_environment(jobs: int) -> dict[str, str]:
    env = dict(os.environ)
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def _footer(outcomes: list[RunOutcome]) -> str:
    finished = sum(outcome.status != "failed" for outcome in outcomes)
    lines = [f"Runs: {finished} of {len(outcomes)} finished."]
    for outcome in outcomes:
        if outcome.status == "failed":
            first_line = (outcome.error or "").splitlines()[0] if outcome.error else ""
            lines.append(
                f"- FAILED {outcome.variant} seed {outcome.seed} at {outcome.stage}: {first_line} "
                f"(see {outcome.run_dir}/{outcome.stage}.log)"
            )
    return "\n".join(lines) + "\n"


def _check_inputs(args: argparse.Namespace) -> list[str]:
    problems = []
    for path in [args.base, args.data, *args.extra_configs, *args.variants]:
        if not path.is_file():
            problems.append(f"{path}: file not found")
    stems = [variant.stem for variant in args.variants]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        problems.append(f"variant names must be unique, repeated: {', '.join(duplicates)}")
    if args.jobs < 1:
        problems.append(f"--jobs must be at least 1, got {args.jobs}")
    return problems


def run(args: argparse.Namespace) -> int:
    problems = _check_inputs(args)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    plan = [(variant, seed) for variant in args.variants for seed in args.seeds]
    if args.dry_run:
        for variant, seed in plan:
            for command in _commands(args, variant, seed, args.runs / variant.stem / f"seed{seed}").values():
                print(" ".join(command))
        return 0
    env = _child_environment(args.jobs)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(pool.map(lambda item: run_one(args, item[0], item[1], env), plan))

    results: dict[str, dict[int, dict]] = {}
    for outcome in outcomes:
        if outcome.status != "failed":
            results.setdefault(outcome.variant, {})[outcome.seed] = test_metrics(outcome.run_dir)
    tables = ablation_tables(results)
    footer = _footer(outcomes)
    markdown_path = args.out / f"{args.table_name}.md"
    write_tables(
        tables, markdown_path, args.out / f"{args.table_name}.csv", heading="Ablation", footer=footer
    )
    atomic_write_json(args.runs / "sweep_summary.json", [asdict(outcome) for outcome in outcomes])
    print(tables_markdown(tables, footer=footer))
    print(f"written: {markdown_path}, {args.out / f'{args.table_name}.csv'}")
    return 1 if any(outcome.status == "failed" for outcome in outcomes) else 0
