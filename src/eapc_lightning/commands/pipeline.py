"""``eapc pipeline a2l|vid2vid|ablation|demo|real-speech|paper``: the Makefile's jobs, each a resumable chain
of eapc commands.

    eapc pipeline a2l      [--data synthetic|mead|crema_d|folder] [--root RAW] [--seed 0] [--set KEY=VALUE]
    eapc pipeline vid2vid  [--data ...] [--root RAW] [--config experiments/vid2vid.yaml]
    eapc pipeline ablation [--data ...] [--root RAW] [--seeds 0 1 2] [--jobs 2] [--out tables]
    eapc pipeline demo     [--work data/demo] [--runs runs]
    eapc pipeline real-speech [--footage ../shared/data] [--a2l CKPT] [--out tables/real_speech] [--finetune]
    eapc pipeline paper    [--data ...] [--root RAW] [--config experiments/vid2vid.yaml] [--out tables/paper]

Each step is an ``eapc`` command run in its own process, echoed before it runs; a failing step stops the
job with its exit status. What is already there is skipped, with a line saying so: a synthetic set with
its ``synth_info.json``, clips ``eapc prepare`` finds up to date, a fit whose checkpoints and metrics are
written, a test whose metrics are written. ``--resume`` picks the newest run folder of the experiment
(``--run-dir`` names one) and goes on from where it stopped: an interrupted fit restarts from its
``last.ckpt``. Without either, the run folder is a new ``<runs>/<name>/<timestamp>-seed<k>``, named by
the same rule as ``eapc fit``.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from eapc_lightning.commands.lightning import CHECKPOINT_FOLDER, new_run_folder
from eapc_lightning.reporting.runs import METRICS_FILENAME

DATASETS = ("synthetic", "mead", "crema_d", "folder")
SYNTHETIC_RAW = Path("data/raw/synthetic")
CACHE_ROOT = Path("data/cache")
A2L_EXPERIMENT = Path("experiments/a2l.yaml")
VID2VID_EXPERIMENT = Path("experiments/vid2vid.yaml")
ABLATION_VARIANTS = Path("experiments/ablations")
CPU_SWEEP_BUDGET = Path("experiments/a2l_sweep_cpu.yaml")
DEMO_A2L_EXPERIMENT = Path("experiments/demo_a2l.yaml")
DEMO_VID2VID_EXPERIMENT = Path("experiments/demo_vid2vid.yaml")
REAL_FOOTAGE = Path("../shared/data")
REAL_FOOTAGE_SETS = ("voxceleb2", "hdtf")  # the sets of real talking-face video with speech in it
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".flv")
REAL_SPEECH_DATA = Path("data_modules/real_speech.yaml")
A2L_FINETUNE_REAL_EXPERIMENT = Path("experiments/a2l_finetune_real.yaml")
DEMO_SIZE = 128  # the demo's synthetic set and cache, in pixels (tiny models train in a minute each)


class UsageError(Exception):
    """The job's flags do not fit together (exit status 2)."""


class StepFailed(Exception):
    """A step's process exited with a non-zero status (the status is ``returncode``)."""

    def __init__(self, step: str, returncode: int):
        super().__init__(f"{step} failed with exit status {returncode}")
        self.returncode = returncode


@dataclass(frozen=True)
class DatasetPlan:
    """Where a dataset's raw media, cache and configs are, for ``--data NAME [--root RAW]``."""

    name: str  # synthetic | mead | crema_d | folder
    layout: str  # the ``--dataset`` of eapc prepare (the synthetic set has MEAD's layout)
    raw: Path
    cache: Path
    data_config: Path  # data_modules/<name>.yaml
    a2l_paper_config: Path | None  # paper-scale a2l override of a real dataset (500 epochs: a GPU's job)


def dataset_plan(
    name: str, root: Path | None, synth_preset: str = "default", cache: Path | None = None
) -> DatasetPlan:
    """The plan for ``--data name``; a :class:`UsageError` worded as the flags when they do not fit together.

    The synthetic set is generated into ``root`` (default ``data/raw/synthetic[_<preset>]``); caches go to
    ``cache`` (default ``data/cache/<name>[_<preset>]``).
    """
    if name == "synthetic":
        suffix = "" if synth_preset == "default" else f"_{synth_preset}"
        raw = root or SYNTHETIC_RAW.with_name(SYNTHETIC_RAW.name + suffix)
        return DatasetPlan(
            name,
            "mead",
            raw,
            cache or CACHE_ROOT / f"synthetic{suffix}",
            Path("data_modules/synthetic.yaml"),
            None,
        )
    if root is None:
        raise UsageError(f"--data {name} needs --root <folder of the raw {name} dataset> (make: ROOT=...)")
    if not root.is_dir():
        raise UsageError(f"--root {root}: not a folder (the raw {name} dataset is expected there)")
    paper = Path(f"experiments/a2l_{name}.yaml") if name != "folder" else None
    return DatasetPlan(name, name, root, cache or CACHE_ROOT / name, Path(f"data_modules/{name}.yaml"), paper)


class Steps:
    """Runs ``eapc`` commands one after another in child processes, echoing each; prints what it skips."""

    def __init__(self, env: dict[str, str] | None = None):
        self.env = dict(os.environ if env is None else env)
        self.started = time.monotonic()
        self.timings: list[tuple[str, float]] = []

    def eapc(self, step: str, *arguments: object) -> None:
        command = [sys.executable, "-m", "eapc_lightning.cli", *(str(argument) for argument in arguments)]
        print(f"==> {step}: eapc {' '.join(command[3:])}", flush=True)
        began = time.monotonic()
        returncode = subprocess.run(command, env=self.env, check=False).returncode
        self.timings.append((step, time.monotonic() - began))
        if returncode != 0:
            raise StepFailed(step, returncode)

    @staticmethod
    def skip(step: str, reason: str) -> None:
        print(f"==> skip {step}: {reason}", flush=True)

    def summary(self) -> str:
        parts = [f"{step} {seconds:.0f} s" for step, seconds in self.timings]
        return f"time: {', '.join(parts) or 'nothing run'}; total {time.monotonic() - self.started:.0f} s"


def ensure_synthetic(steps: Steps, raw: Path, preset: str, workers: int, size: int | None = None) -> None:
    """Generate the synthetic set into ``raw`` unless its ``synth_info.json`` says it is complete."""
    if (raw / "synth_info.json").is_file():
        steps.skip("synth", f"{raw}/synth_info.json exists")
        return
    size_arguments = ["--size", size] if size else []
    steps.eapc(
        "synth", "synth", "--out", raw, "--preset", preset, "--seed", 0, "--workers", workers, *size_arguments
    )


def ensure_cache(steps: Steps, plan: DatasetPlan, preset: str, workers: int) -> None:
    """Raw media (generated for the synthetic set) -> the clip cache; eapc prepare skips current clips."""
    if plan.name == "synthetic":
        ensure_synthetic(steps, plan.raw, preset, workers)
    steps.eapc(
        "prepare",
        "prepare",
        "--dataset",
        plan.layout,
        "--root",
        plan.raw,
        "--out",
        plan.cache,
        "--workers",
        workers,
    )


def choose_run_folder(args: argparse.Namespace, name: str) -> Path:
    """``--run-dir``, the newest run of ``name`` with ``--resume``, or a new folder named as ``eapc fit`` does."""
    if args.run_dir is not None:
        return args.run_dir
    if args.resume:
        earlier = sorted(path for path in (args.runs / name).glob("*") if path.is_dir())
        if earlier:
            return earlier[-1]
        print(f"==> nothing to resume under {args.runs / name}: starting a new run", flush=True)
    return new_run_folder(str(args.runs), name, args.seed)


def fit_finished(run_dir: Path) -> bool:
    """The fit wrote its final metrics and at least one checkpoint."""
    return (run_dir / METRICS_FILENAME).is_file() and any((run_dir / CHECKPOINT_FOLDER).glob("*.ckpt"))


def test_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a finished fit is tested with: best.ckpt, or last.ckpt when nothing was monitored."""
    best = run_dir / CHECKPOINT_FOLDER / "best.ckpt"
    return best if best.is_file() else run_dir / CHECKPOINT_FOLDER / "last.ckpt"


def fit_and_test(steps: Steps, run_dir: Path, common: list[object]) -> None:
    """``eapc fit`` into ``run_dir`` (resumed from last.ckpt when interrupted), then ``eapc test``."""
    tested = run_dir / "test" / METRICS_FILENAME
    if tested.is_file():
        steps.skip("fit and test", f"{tested} exists")
        return
    if fit_finished(run_dir):
        steps.skip("fit", f"{run_dir / METRICS_FILENAME} exists")
    else:
        last = run_dir / CHECKPOINT_FOLDER / "last.ckpt"
        resume = ["--ckpt_path", last] if last.is_file() else []
        if resume:
            print(f"==> resuming the interrupted fit from {last}", flush=True)
        steps.eapc("fit", "fit", *common, "--run.dir", run_dir, *resume)
    checkpoint = test_checkpoint(run_dir)
    if not checkpoint.is_file():
        raise StepFailed(f"fit (no checkpoint in {run_dir / CHECKPOINT_FOLDER})", 1)
    steps.eapc("test", "test", *common, "--ckpt_path", checkpoint)


def config_arguments(configs: list[Path], overrides: list[str]) -> list[object]:
    return [item for path in configs for item in ("--config", path)] + [f"--{item}" for item in overrides]


def run_a2l(args: argparse.Namespace, steps: Steps) -> None:
    from eapc_lightning.reporting.single_run import run_report

    plan = dataset_plan(args.data, args.root, args.synth_preset, args.cache)
    ensure_cache(steps, plan, args.synth_preset, args.workers)
    configs = [A2L_EXPERIMENT, plan.data_config, *([plan.a2l_paper_config] if plan.a2l_paper_config else [])]
    name = "a2l" if plan.name == "synthetic" else f"a2l_{plan.name}"
    run_dir = choose_run_folder(args, name)
    common = config_arguments(configs, [f"data.init_args.cache_dir={plan.cache}", *args.overrides])
    fit_and_test(steps, run_dir, [*common, "--seed_everything", args.seed])
    print(run_report(run_dir))
    print(f"\nrun folder: {run_dir}")
    print(
        "  config.yaml, versions.json, git.json, checkpoints/{best,last}.ckpt, csv/metrics.csv, curves.png,"
    )
    print(
        "  test/metrics.json, test/renders/*.mp4, report.md, report.csv, wandb/ (offline: wandb sync <run>/wandb/*)"
    )


def vid2vid_summary(run_dir: Path) -> str:
    """The test PSNR beside copying the reference image unchanged, SSIM and FID, in one line."""
    from eapc_lightning.reporting.runs import test_metrics

    metrics = test_metrics(run_dir)  # names without the "test/" prefix
    psnr, copy = metrics.get("psnr"), metrics.get("psnr_copy_reference")
    if psnr is None or copy is None:
        return f"{run_dir}/test/{METRICS_FILENAME} has no test/psnr and test/psnr_copy_reference"
    ssim, fid = metrics.get("ssim"), metrics.get("fid")
    verdict = "beat" if psnr > copy else "do NOT beat"
    return (
        f"test PSNR {psnr:.2f} dB vs copying the reference {copy:.2f} dB; "
        f"SSIM {'not computed' if ssim is None else f'{ssim:.3f}'}; "
        f"FID {'not computed' if fid is None else f'{fid:.1f}'}: generated frames {verdict} the copied reference"
    )


def run_vid2vid(args: argparse.Namespace, steps: Steps) -> None:
    plan = dataset_plan(args.data, args.root, args.synth_preset, args.cache)
    ensure_cache(steps, plan, args.synth_preset, args.workers)
    # one intra-op thread per process unless set: on a busy 2-core machine two OpenMP threads per process
    # made a CPU training step ~16x slower than one (benchmarks/README.md)
    steps.env.setdefault("OMP_NUM_THREADS", "1")
    # a delta YAML after the experiment (an ablation) names the run: runs/vid2vid-<its stem>/
    name = "-".join(["vid2vid", *(Path(path).stem for path in args.config[1:])])
    run_dir = choose_run_folder(args, name)
    common = config_arguments(args.config, [f"data.init_args.cache_dir={plan.cache}", *args.overrides])
    fit_and_test(steps, run_dir, [*common, "--seed_everything", args.seed])
    print(vid2vid_summary(run_dir))
    print(f"sample video: {run_dir}/test/samples/test_sample.mp4")


def run_ablation(args: argparse.Namespace, steps: Steps) -> None:
    plan = dataset_plan(args.data, args.root, args.synth_preset, args.cache)
    ensure_cache(steps, plan, args.synth_preset, args.workers)
    budget = args.budget or plan.a2l_paper_config or CPU_SWEEP_BUDGET
    variants = sorted(ABLATION_VARIANTS.glob("*.yaml"))
    try:
        steps.eapc(
            "sweep",
            "sweep",
            "--base",
            A2L_EXPERIMENT,
            "--data",
            plan.data_config,
            "--variants",
            *variants,
            "--seeds",
            *args.seeds,
            "--config",
            budget,
            "--set",
            f"data.init_args.cache_dir={plan.cache}",
            *[item for override in args.overrides for item in ("--set", override)],
            "--runs",
            args.runs / "sweeps" / f"ablation_{plan.name}",
            "--out",
            args.out,
            "--jobs",
            args.jobs,
        )
    except StepFailed:
        print(f"some runs failed (listed at the end of {args.out}/ablation.md); run again to retry them")
        raise
    print(f"tables: {args.out}/ablation.md, {args.out}/ablation.csv")


def has_checkpoint(kind: str, runs: Path) -> bool:
    from eapc_lightning.inference.checkpoints import MissingCheckpointError, find_checkpoint

    try:
        find_checkpoint(kind, runs)
    except MissingCheckpointError:
        return False
    return True


def write_demo_inputs(work: Path) -> tuple[Path, Path]:
    """The demo's face (scikit-image's bundled astronaut photo) and a 6 s synthetic sentence; kept once made."""
    from skimage import data

    from eapc_lightning.fileio import atomic_write_bytes, write_png
    from eapc_lightning.synth import generate_dataset

    face = work / "face.png"
    if not face.is_file():
        write_png(face, data.astronaut())
    speech_record = work / "speech_path.txt"
    if speech_record.is_file() and Path(speech_record.read_text().strip()).is_file():
        return face, Path(speech_record.read_text().strip())
    records = generate_dataset(
        work / "speech", preset="tiny", seed=7, speakers=1, emotions=["happy"], seconds=6.0, size=DEMO_SIZE
    )
    speech = Path(records[0]["audio"])
    atomic_write_bytes(speech_record, str(speech).encode())
    return face, speech


def ensure_demo_cache(steps: Steps, work: Path, workers: int) -> Path:
    """The demo's small synthetic set at DEMO_SIZE px and its cache, under ``work``."""
    cache = work / "cache"
    if (cache / "summary.json").is_file():
        steps.skip("demo data", f"{cache}/summary.json exists")
        return cache
    ensure_synthetic(steps, work / "synthetic", "small", workers, size=DEMO_SIZE)
    steps.eapc(
        "prepare",
        "prepare",
        "--dataset",
        "mead",
        "--root",
        work / "synthetic",
        "--out",
        cache,
        "--crop-size",
        DEMO_SIZE,
        "--workers",
        workers,
    )
    return cache


def run_demo(args: argparse.Namespace, steps: Steps) -> None:
    """Tiny models when ``runs`` has none; then the demo photo and speech through both renderers, and one
    mp4 with the vid2vid frames on the left, the warp frames on the right and the speech."""
    from eapc_lightning.errors import InputError
    from eapc_lightning.inference.checkpoints import find_checkpoint
    from eapc_lightning.render.compose import write_side_by_side

    stages = (
        ("a2l", [A2L_EXPERIMENT, Path("data_modules/synthetic.yaml"), DEMO_A2L_EXPERIMENT]),
        ("vid2vid", [VID2VID_EXPERIMENT, DEMO_VID2VID_EXPERIMENT]),
    )
    for kind, configs in stages:
        if has_checkpoint(kind, args.runs):
            steps.skip(f"demo {kind} training", f"a {kind} checkpoint is under {args.runs}/")
            continue
        print(f"==> no {kind} checkpoint under {args.runs}/: training a tiny one", flush=True)
        cache = ensure_demo_cache(steps, args.work, args.workers)
        arguments = config_arguments(configs, [f"data.init_args.cache_dir={cache}", f"run.root={args.runs}"])
        steps.eapc(f"{kind} fit", "fit", *arguments)
    face, speech = write_demo_inputs(args.work)
    # both renderers get the same photo, speech and a2l checkpoint, hence the same landmarks
    a2l = find_checkpoint("a2l", args.runs).path
    left, right = "vid2vid", "warp"
    videos = {renderer: args.work / f"demo_{renderer}.mp4" for renderer in (left, right)}
    for renderer, video in videos.items():
        steps.eapc(
            f"generate ({renderer})",
            "generate",
            "--audio",
            speech,
            "--face",
            face,
            "--renderer",
            renderer,
            "--a2l",
            a2l,
            "--runs",
            args.runs,
            "--out",
            video,
        )
    out = args.work / "demo.mp4"
    print(f"==> side by side: {left} (left) | {right} (right), with the speech -> {out}", flush=True)
    began = time.monotonic()
    try:
        write_side_by_side(videos[left], videos[right], out, audio=speech, labels=(left, right))
    except InputError as error:
        print(f"side by side: {error}", file=sys.stderr)
        raise StepFailed("side by side", 1) from error
    steps.timings.append(("side by side", time.monotonic() - began))
    print(f"each renderer alone: {videos[left].resolve()}, {videos[right].resolve()}")
    print(f"demo video: {out.resolve()} (left: {left} renderer, right: {right} renderer)")


def link_real_footage(footage: Path, raw: Path) -> int:
    """Links ``raw/<set>-<clip>/<clip>.mp4`` to the videos of ``footage/<set>/``: each clip its own speaker
    for the folder dataset (the sets hold one clip per person or a few), so clips can be held out by name.
    Returns how many; UsageError when there are none."""
    count = 0
    for name in REAL_FOOTAGE_SETS:
        videos = sorted(p for p in (footage / name).glob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        for video in videos:
            folder = raw / f"{name}-{video.stem}"
            folder.mkdir(parents=True, exist_ok=True)
            link = folder / video.name
            if not link.is_symlink():
                link.symlink_to(video.resolve())
            count += 1
    if count == 0:
        sets = ", ".join(f"{footage}/{name}/" for name in REAL_FOOTAGE_SETS)
        raise UsageError(f"no video with speech found in {sets}: pass --footage FOLDER holding them")
    return count


def run_real_speech(args: argparse.Namespace, steps: Steps) -> None:
    """Real footage no model trained on -> a cache -> the a2l stage scored on every clip, with the emotion
    input's effect; with ``--finetune`` also the model fine-tuned on nine clips, both scored on five held-out
    ones (docs/real_speech.md)."""
    from eapc_lightning.errors import InputError
    from eapc_lightning.inference.checkpoints import MissingCheckpointError, resolve_checkpoint

    try:
        base = resolve_checkpoint("a2l", args.a2l, args.runs).path
    except (InputError, MissingCheckpointError) as error:
        raise UsageError(str(error)) from None
    raw, cache = args.work / "raw", args.work / "cache"
    videos = link_real_footage(args.footage, raw)
    print(f"==> {videos} real videos from {args.footage} linked under {raw}", flush=True)
    steps.eapc(
        "prepare", "prepare", "--dataset", "folder", "--root", raw, "--out", cache, "--workers", args.workers
    )

    def evaluate(step: str, checkpoint: Path, split: str, out: Path, *extra: str) -> None:
        steps.eapc(
            step,
            "evaluate",
            "--data",
            REAL_SPEECH_DATA,
            "--cache-dir",
            cache,
            "--split",
            split,
            "--landmarks-only",
            "--a2l",
            checkpoint,
            "--out",
            out,
            "--label",
            "real-speech",
            *extra,
        )

    evaluate("evaluate", base, "all", args.out, "--emotion-control", "happy,sad")
    steps.eapc("audio ceiling", "audio-ceiling", "--cache-dir", cache, "--out", args.out)
    if not args.finetune:
        return
    run_dir = args.work / "runs" / "a2l_finetune_real" / base.parent.parent.name
    overrides = [f"data.init_args.cache_dir={cache}", f"model.init_args.init_weights={base}"]
    common = config_arguments([A2L_EXPERIMENT, REAL_SPEECH_DATA, A2L_FINETUNE_REAL_EXPERIMENT], overrides)
    fit_and_test(steps, run_dir, common)
    evaluate("evaluate held out, before", base, "test", args.out / "held_out_before")
    evaluate(
        "evaluate held out, fine-tuned", test_checkpoint(run_dir), "test", args.out / "held_out_finetuned"
    )
    print(f"fine-tuned model: {test_checkpoint(run_dir)}")
    print(
        f"held-out clips: {args.out / 'held_out_before'}/table1.md, {args.out / 'held_out_finetuned'}/table1.md"
    )


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", choices=DATASETS, default="synthetic", help="dataset (default: synthetic)")
    parser.add_argument("--root", type=Path, help="folder of the raw dataset (required unless synthetic)")
    parser.add_argument("--cache", type=Path, help="folder of the clip cache (default data/cache/<data>)")
    parser.add_argument(
        "--synth-preset",
        default="default",
        help="synthetic set preset (eapc synth --preset; default: default)",
    )
    parser.add_argument("--workers", type=int, default=2, help="processes for synth and prepare (default 2)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder of the run folders")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="LightningCLI override for fit and test, e.g. --set trainer.max_epochs=3; repeatable",
    )


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed_everything (default 0)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run-dir", type=Path, help="use (or go on with) exactly this run folder")
    where.add_argument(
        "--resume", action="store_true", help="go on with the newest run folder of the experiment"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs = parser.add_subparsers(dest="job", metavar="JOB", required=True)
    a2l = jobs.add_parser("a2l", help="make train-a2l: synth -> prepare -> fit -> test -> report")
    _dataset_arguments(a2l)
    _run_arguments(a2l)
    vid2vid = jobs.add_parser("vid2vid", help="make train-vid2vid: synth -> prepare -> fit -> test")
    _dataset_arguments(vid2vid)
    _run_arguments(vid2vid)
    vid2vid.add_argument(
        "--config",
        type=Path,
        nargs="+",
        default=[VID2VID_EXPERIMENT],
        help="experiment YAML (default experiments/vid2vid.yaml; paper scale: experiments/vid2vid_mead.yaml), "
        "then delta YAMLs applied in order (experiments/vid2vid_no_mesh_flow.yaml)",
    )
    ablation = jobs.add_parser("ablation", help="make sweep-ablation: the paper's Tables 2 and 3 over seeds")
    _dataset_arguments(ablation)
    ablation.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    ablation.add_argument("--jobs", type=int, default=2, help="runs at once (default 2: one thread each)")
    ablation.add_argument("--out", type=Path, default=Path("tables"), help="folder for the tables")
    ablation.add_argument(
        "--budget",
        type=Path,
        help="budget override (default: experiments/a2l_sweep_cpu.yaml on synthetic data, "
        "experiments/a2l_<DATA>.yaml on a real dataset)",
    )
    demo = jobs.add_parser(
        "demo",
        help="make demo: tiny models if runs/ has none, then speech + photo -> one mp4 with the vid2vid"
        " (left) and warp (right) renderers side by side",
    )
    demo.add_argument("--work", type=Path, default=Path("data/demo"), help="folder of the demo's data")
    demo.add_argument("--runs", type=Path, default=Path("runs"), help="folder of the run folders")
    demo.add_argument("--workers", type=int, default=2, help="processes for synth and prepare (default 2)")

    real = jobs.add_parser(
        "real-speech", help="the a2l stage on real footage no model trained on (docs/real_speech.md)"
    )
    real.add_argument(
        "--footage",
        type=Path,
        default=REAL_FOOTAGE,
        help=f"folder with {' and '.join(REAL_FOOTAGE_SETS)} subfolders of videos (default {REAL_FOOTAGE})",
    )
    real.add_argument("--a2l", type=Path, help="audio-to-landmark checkpoint (default: newest under --runs)")
    real.add_argument("--runs", type=Path, default=Path("runs"), help="folder of the run folders")
    real.add_argument("--work", type=Path, default=Path("data/real_speech"), help="links and cache")
    real.add_argument("--out", type=Path, default=Path("tables/real_speech"), help="folder for the tables")
    real.add_argument("--workers", type=int, default=1, help="processes for prepare (default 1)")
    real.add_argument(
        "--finetune",
        action="store_true",
        help="also fine-tune the model on nine clips and score both on five held-out ones "
        "(experiments/a2l_finetune_real.yaml)",
    )
    _paper_arguments(jobs)


JOBS = {
    "a2l": run_a2l,
    "vid2vid": run_vid2vid,
    "ablation": run_ablation,
    "demo": run_demo,
    "real-speech": run_real_speech,
}


def run(args: argparse.Namespace) -> int:
    steps = Steps()
    try:
        JOBS[args.job](args, steps)
    except UsageError as error:
        print(f"eapc pipeline {args.job}: {error}", file=sys.stderr)
        return 2
    except StepFailed as error:
        print(f"eapc pipeline {args.job}: {error}", file=sys.stderr)
        print(steps.summary())
        return error.returncode
    print(steps.summary())
    return 0


# ---------------------------------------------------------------- eapc pipeline paper (make paper)

PAPER_TABLES = Path("tables/paper")
# the base vid2vid experiment -> its fine-tuning delta (paper section 3.1)
FINETUNE_EXPERIMENTS = {
    VID2VID_EXPERIMENT: Path("experiments/vid2vid_finetune.yaml"),
    Path("experiments/vid2vid_mead.yaml"): Path("experiments/vid2vid_finetune_mead.yaml"),
}
PAPER_ROW_NAMES = (
    "EAPC (ours, vid2vid trained on ground-truth landmarks)",
    "EAPC (ours, vid2vid fine-tuned on predicted landmarks)",
)
PAPER_INPUTS = "paper_inputs.json"  # what the written Table 1 was made from
QUOTED_DATASETS = {"mead": "MEAD", "crema_d": "CREMA-D"}


def finetune_experiment(config: Path, finetune_config: Path | None) -> Path:
    """``--finetune-config``, else the fine-tuning delta of the base vid2vid experiment ``--config``."""
    if finetune_config is not None:
        return finetune_config
    try:
        return FINETUNE_EXPERIMENTS[Path(config)]
    except KeyError:
        raise UsageError(
            f"--config {config}: no fine-tuning experiment is known for it; pass --finetune-config FILE"
        ) from None


def paper_table(
    steps: Steps, args: argparse.Namespace, plan: DatasetPlan, a2l: Path, vid2vid: list[Path]
) -> Path:
    """``eapc evaluate`` of the a2l model with each vid2vid model as a row, unless ``--out`` already holds
    the Table 1 of exactly these inputs; returns its table1.csv."""
    from eapc_lightning.fileio import atomic_write_json

    table = args.out / "table1.csv"
    inputs = {
        "a2l": str(a2l),
        "vid2vid": [str(path) for path in vid2vid],
        "names": list(PAPER_ROW_NAMES),
        "cache": str(plan.cache),
        "protocol": args.protocol,
        "fid_extractor": args.fid_extractor,
        "max_clips": args.max_clips,
    }
    record = args.out / PAPER_INPUTS
    if table.is_file() and record.is_file() and json.loads(record.read_text()) == inputs:
        steps.skip("Table 1", f"{table} was made from these checkpoints ({record})")
        return table
    rows = [
        item
        for path, name in zip(vid2vid, PAPER_ROW_NAMES, strict=True)
        for item in ("--vid2vid", path, "--vid2vid-name", name)
    ]
    quoted = ["--quoted", QUOTED_DATASETS[plan.name]] if plan.name in QUOTED_DATASETS else []
    steps.eapc(
        "Table 1",
        "evaluate",
        "--data",
        plan.data_config,
        "--cache-dir",
        plan.cache,
        "--a2l",
        a2l,
        *rows,
        "--out",
        args.out,
        "--label",
        plan.name,
        "--protocol",
        args.protocol,
        "--fid-extractor",
        args.fid_extractor,
        *quoted,
        *(["--max-clips", args.max_clips] if args.max_clips else []),
    )
    atomic_write_json(record, inputs)
    return table


def paper_summary(table: Path) -> str:
    """The two vid2vid rows of a Table 1 csv side by side: M-LD, PSNR, SSIM, FID and what fine-tuning moved."""
    import csv

    if not table.is_file():
        return f"{table}: no Table 1 written"
    with open(table, newline="") as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    lines = []
    for name in PAPER_ROW_NAMES:
        row = rows.get(name)
        if row is None:
            lines.append(f"{name}: no row in {table}")
            continue
        cells = [f"{column} {row[column] or '-'}" for column in ("M-LD", "PSNR", "SSIM", "FID")]
        lines.append(f"{name}: {', '.join(cells)}")
    base, tuned = (rows.get(name) for name in PAPER_ROW_NAMES)
    if base and tuned and all(row[column] for row in (base, tuned) for column in ("M-LD", "PSNR")):
        moved_ld = float(tuned["M-LD"]) - float(base["M-LD"])
        moved_psnr = float(tuned["PSNR"]) - float(base["PSNR"])
        lines.append(f"fine-tuning moved M-LD by {moved_ld:+.3f} px and PSNR by {moved_psnr:+.2f} dB")
    return "\n".join(lines)


def run_paper(args: argparse.Namespace, steps: Steps) -> None:
    """The paper's whole pipeline on one dataset: the a2l model, vid2vid on ground-truth landmarks, vid2vid
    fine-tuned on the a2l model's landmarks (section 3.1), then Table 1 with a row for each vid2vid model,
    both on the same test clips and the same a2l landmarks."""
    finetune_config = finetune_experiment(args.config, args.finetune_config)
    plan = dataset_plan(args.data, args.root, args.synth_preset, args.cache)
    ensure_cache(steps, plan, args.synth_preset, args.workers)
    steps.env.setdefault("OMP_NUM_THREADS", "1")  # as run_vid2vid: one intra-op thread per process
    cache = f"data.init_args.cache_dir={plan.cache}"
    seed = ["--seed_everything", args.seed]

    a2l_configs = [
        A2L_EXPERIMENT,
        plan.data_config,
        *([plan.a2l_paper_config] if plan.a2l_paper_config else []),
    ]
    a2l_run = choose_run_folder(args, "a2l" if plan.name == "synthetic" else f"a2l_{plan.name}")
    print(f"==> audio-to-landmark model: {a2l_run}", flush=True)
    a2l_overrides = [cache, *args.overrides, *args.a2l_overrides]
    fit_and_test(steps, a2l_run, [*config_arguments(a2l_configs, a2l_overrides), *seed])
    a2l = test_checkpoint(a2l_run)

    vid2vid_run = choose_run_folder(args, Path(args.config).stem)
    print(f"==> vid2vid on ground-truth landmarks: {vid2vid_run}", flush=True)
    vid2vid_overrides = [cache, *args.overrides, *args.vid2vid_overrides]
    fit_and_test(steps, vid2vid_run, [*config_arguments([args.config], vid2vid_overrides), *seed])
    vid2vid = test_checkpoint(vid2vid_run)

    # named after the two runs it starts from, so a resumed job finds it and other inputs get their own
    finetune_run = args.runs / finetune_config.stem / f"{vid2vid_run.name}+a2l-{a2l_run.name}"
    print(f"==> vid2vid fine-tuned on the a2l model's landmarks: {finetune_run}", flush=True)
    finetune_overrides = [
        cache,
        f"model.init_args.init_weights={vid2vid}",
        f"data.init_args.predicted_landmarks={a2l}",
        *args.overrides,
        *args.vid2vid_overrides,
        *args.finetune_overrides,
    ]
    fit_and_test(
        steps, finetune_run, [*config_arguments([args.config, finetune_config], finetune_overrides), *seed]
    )
    finetuned = test_checkpoint(finetune_run)

    table = paper_table(steps, args, plan, a2l, [vid2vid, finetuned])
    print(paper_summary(table))
    print(f"\nTable 1: {args.out / 'table1.md'} (csv, breakdown.md, per_clip.csv beside it)")
    print(f"runs: {a2l_run}, {vid2vid_run}, {finetune_run}")


def _paper_arguments(jobs) -> None:
    paper = jobs.add_parser(
        "paper",
        help="make paper: a2l -> vid2vid -> vid2vid fine-tuned on predicted landmarks -> Table 1 of both",
    )
    _dataset_arguments(paper)
    paper.add_argument("--seed", type=int, default=0, help="seed_everything of the three fits (default 0)")
    paper.add_argument(
        "--resume",
        action="store_true",
        help="go on with (or re-use) the newest a2l and vid2vid run folders; the fine-tuning run's folder "
        "is named after those two",
    )
    paper.set_defaults(run_dir=None)
    paper.add_argument(
        "--config",
        type=Path,
        default=VID2VID_EXPERIMENT,
        help="vid2vid experiment (default experiments/vid2vid.yaml; paper scale: experiments/vid2vid_mead.yaml)",
    )
    paper.add_argument(
        "--finetune-config",
        type=Path,
        help="fine-tuning delta composed after --config (default: experiments/vid2vid_finetune[_mead].yaml)",
    )
    for flag, dest, what in (
        ("--a2l-set", "a2l_overrides", "the a2l fit and test"),
        ("--vid2vid-set", "vid2vid_overrides", "both vid2vid fits and tests"),
        ("--finetune-set", "finetune_overrides", "the fine-tuning fit and test"),
    ):
        paper.add_argument(
            flag,
            action="append",
            default=[],
            dest=dest,
            metavar="KEY=VALUE",
            help=f"as --set, for {what} only",
        )
    paper.add_argument(
        "--out", type=Path, default=PAPER_TABLES, help=f"folder for Table 1 (default {PAPER_TABLES})"
    )
    paper.add_argument("--protocol", default="eapc", help="evaluation protocol of Table 1 (default eapc)")
    paper.add_argument(
        "--fid-extractor",
        default="auto",
        choices=("auto", "official", "offline", "none"),
        help="FID features of Table 1 (default auto)",
    )
    paper.add_argument("--max-clips", type=int, help="score only the first N test clips (default: all)")


JOBS["paper"] = run_paper
