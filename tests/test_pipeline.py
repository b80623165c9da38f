"""``eapc pipeline``: dataset dispatch, the resume decisions, and the a2l job end to end (twice: the
second run goes on with the first run's folder and re-runs nothing)."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from eapc_lightning.commands import pipeline
from eapc_lightning.commands.pipeline import UsageError, choose_run_folder, dataset_plan, fit_and_test
from helpers.recording_steps import RecordingSteps


def test_synthetic_plan_uses_the_preset_in_its_folders():
    default = dataset_plan("synthetic", None)
    assert (default.raw, default.cache, default.layout) == (
        Path("data/raw/synthetic"),
        Path("data/cache/synthetic"),
        "mead",
    )
    tiny = dataset_plan("synthetic", None, "tiny")
    assert (tiny.raw, tiny.cache) == (Path("data/raw/synthetic_tiny"), Path("data/cache/synthetic_tiny"))
    assert tiny.a2l_paper_config is None


def test_real_dataset_plan_needs_an_existing_root(tmp_path):
    with pytest.raises(UsageError, match="--data mead needs --root"):
        dataset_plan("mead", None)
    with pytest.raises(UsageError, match=f"--root {tmp_path / 'absent'}: not a folder"):
        dataset_plan("crema_d", tmp_path / "absent")
    crema = dataset_plan("crema_d", tmp_path)
    assert (crema.layout, crema.cache, crema.a2l_paper_config) == (
        "crema_d",
        Path("data/cache/crema_d"),
        Path("experiments/a2l_crema_d.yaml"),
    )
    assert dataset_plan("folder", tmp_path).a2l_paper_config is None  # no paper setting for own footage
    for plan in (crema, dataset_plan("folder", tmp_path), dataset_plan("synthetic", None)):
        assert (REPO_ROOT / plan.data_config).is_file()
        assert plan.a2l_paper_config is None or (REPO_ROOT / plan.a2l_paper_config).is_file()


def _ckpt_of(command: list[str]) -> str | None:
    return command[command.index("--ckpt_path") + 1] if "--ckpt_path" in command else None


def test_a_new_run_is_fitted_then_tested_with_its_best_checkpoint(tmp_path):
    steps = RecordingSteps()
    fit_and_test(steps, tmp_path / "run", ["--config", "a.yaml"])
    assert [command[0] for command in steps.commands] == ["fit", "test"]
    assert _ckpt_of(steps.commands[0]) is None
    assert _ckpt_of(steps.commands[1]) == str(tmp_path / "run" / "checkpoints" / "best.ckpt")


def test_an_interrupted_fit_resumes_from_last_ckpt(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")  # no metrics.json: the fit did not finish
    steps = RecordingSteps()
    fit_and_test(steps, run_dir, [])
    assert _ckpt_of(steps.commands[0]) == str(run_dir / "checkpoints" / "last.ckpt")
    assert "resuming the interrupted fit" in capsys.readouterr().out


def test_a_finished_fit_is_only_tested_and_a_tested_run_is_skipped(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")  # nothing monitored: no best.ckpt
    (run_dir / "metrics.json").write_text("{}")
    steps = RecordingSteps()
    fit_and_test(steps, run_dir, [])
    assert [command[0] for command in steps.commands] == ["test"]
    assert _ckpt_of(steps.commands[0]) == str(run_dir / "checkpoints" / "last.ckpt")
    assert "skip fit" in capsys.readouterr().out

    (run_dir / "test").mkdir()
    (run_dir / "test" / "metrics.json").write_text("{}")
    steps = RecordingSteps()
    fit_and_test(steps, run_dir, [])
    assert steps.commands == []
    assert "skip fit and test" in capsys.readouterr().out


def test_resume_picks_the_newest_run_folder_and_otherwise_names_a_new_one(tmp_path):
    for stamp in ("20261201-090000-seed0", "20261202-080000-seed0", "20261130-230000-seed0"):
        (tmp_path / "a2l" / stamp).mkdir(parents=True)
    args = argparse.Namespace(run_dir=None, resume=True, runs=tmp_path, seed=0)
    assert choose_run_folder(args, "a2l") == tmp_path / "a2l" / "20261202-080000-seed0"
    fresh = choose_run_folder(argparse.Namespace(run_dir=None, resume=False, runs=tmp_path, seed=3), "a2l")
    assert fresh.parent == tmp_path / "a2l" and fresh.name.endswith("-seed3") and not fresh.exists()
    named = tmp_path / "mine"
    assert (
        choose_run_folder(argparse.Namespace(run_dir=named, resume=False, runs=tmp_path, seed=0), "a2l")
        == named
    )


def test_every_ablation_variant_and_default_config_exists():
    assert sorted((REPO_ROOT / pipeline.ABLATION_VARIANTS).glob("*.yaml"))
    for path in (
        pipeline.A2L_EXPERIMENT,
        pipeline.VID2VID_EXPERIMENT,
        pipeline.CPU_SWEEP_BUDGET,
        pipeline.DEMO_A2L_EXPERIMENT,
        pipeline.DEMO_VID2VID_EXPERIMENT,
    ):
        assert (REPO_ROOT / path).is_file(), path


def _eapc(*arguments: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "eapc_lightning.cli", *(str(argument) for argument in arguments)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_the_a2l_job_runs_end_to_end_and_a_resumed_run_redoes_nothing(tmp_path):
    job = [
        "pipeline",
        "a2l",
        "--synth-preset",
        "tiny",
        "--root",
        tmp_path / "raw",
        "--cache",
        tmp_path / "cache",
        "--runs",
        tmp_path / "runs",
        "--set",
        "trainer.max_epochs=1",
        "--set",
        "trainer.limit_train_batches=2",
        "--set",
        "trainer.limit_val_batches=1",
        "--set",
        "trainer.limit_test_batches=1",
    ]
    first = _eapc(*job)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs" / "a2l").iterdir()
    assert run_dir.name.endswith("-seed0")
    for produced in (
        "config.yaml",
        "checkpoints/last.ckpt",
        "metrics.json",
        "test/metrics.json",
        "report.md",
    ):
        assert (run_dir / produced).is_file(), produced
    tested = json.loads((run_dir / "test" / "metrics.json").read_text())
    assert tested["stage"] == "test" and "test/M-LD" in tested["metrics"]
    assert f"run folder: {run_dir}" in first.stdout

    checkpoint_time = (run_dir / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    second = _eapc(*job, "--resume")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "skip synth" in second.stdout and "skip fit and test" in second.stdout
    assert "==> fit:" not in second.stdout and "==> test:" not in second.stdout
    assert [path.name for path in (tmp_path / "runs" / "a2l").iterdir()] == [run_dir.name]
    assert (run_dir / "checkpoints" / "last.ckpt").stat().st_mtime_ns == checkpoint_time


def test_bad_flags_stop_before_any_work(tmp_path):
    result = _eapc("pipeline", "vid2vid", "--data", "crema_d", "--runs", tmp_path / "runs")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "eapc pipeline vid2vid: --data crema_d needs --root <folder of the raw crema_d dataset> (make: ROOT=...)"
    )
    assert not (tmp_path / "runs").exists()


def test_the_vid2vid_summary_reads_the_test_metrics(tmp_path):
    (tmp_path / "test").mkdir()
    record = {
        "stage": "test",
        "metrics": {"test/psnr": 24.88, "test/psnr_copy_reference": 22.8, "test/ssim": 0.9127},
    }
    (tmp_path / "test" / "metrics.json").write_text(json.dumps(record))
    assert pipeline.vid2vid_summary(tmp_path) == (
        "test PSNR 24.88 dB vs copying the reference 22.80 dB; SSIM 0.913; FID not computed: "
        "generated frames beat the copied reference"
    )


def _paper_args(tmp_path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    pipeline.add_arguments(parser)
    return parser.parse_args(
        ["paper", "--root", str(tmp_path / "raw"), "--cache", str(tmp_path / "cache")]
        + ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "tables"), *extra]
    )


def _option(command: list[str], prefix: str) -> str:
    (value,) = [item.removeprefix(prefix) for item in command if item.startswith(prefix)]
    return value


def test_the_paper_job_fine_tunes_the_vid2vid_run_on_the_a2l_run_and_tables_both(tmp_path):
    steps = RecordingSteps()
    pipeline.run_paper(_paper_args(tmp_path, "--vid2vid-set", "model.init_args.fid_extractor=none"), steps)
    kinds = [command[0] for command in steps.commands]
    assert kinds == ["synth", "prepare", "fit", "test", "fit", "test", "fit", "test", "evaluate"]
    a2l_fit, vid2vid_fit, finetune_fit = (c for c in steps.commands if c[0] == "fit")
    run_of = {
        name: Path(command[command.index("--run.dir") + 1])
        for name, command in (("a2l", a2l_fit), ("vid2vid", vid2vid_fit), ("finetune", finetune_fit))
    }
    assert run_of["a2l"].parent == tmp_path / "runs" / "a2l"
    assert run_of["vid2vid"].parent == tmp_path / "runs" / "vid2vid"
    assert run_of["finetune"] == (
        tmp_path / "runs" / "vid2vid_finetune" / f"{run_of['vid2vid'].name}+a2l-{run_of['a2l'].name}"
    )
    assert "experiments/vid2vid_finetune.yaml" in finetune_fit
    best = {name: str(run / "checkpoints" / "best.ckpt") for name, run in run_of.items()}
    assert _option(finetune_fit, "--model.init_args.init_weights=") == best["vid2vid"]
    assert _option(finetune_fit, "--data.init_args.predicted_landmarks=") == best["a2l"]
    # the vid2vid-only override reaches both vid2vid runs and not the a2l run
    assert (
        "--model.init_args.fid_extractor=none" in vid2vid_fit
        and "--model.init_args.fid_extractor=none" in finetune_fit
    )
    assert not any("fid_extractor" in item for item in a2l_fit)
    evaluate = steps.commands[-1]
    vid2vid_rows = [evaluate[i + 1] for i, item in enumerate(evaluate) if item == "--vid2vid"]
    names = [evaluate[i + 1] for i, item in enumerate(evaluate) if item == "--vid2vid-name"]
    assert vid2vid_rows == [best["vid2vid"], best["finetune"]] and names == list(pipeline.PAPER_ROW_NAMES)
    assert evaluate[evaluate.index("--a2l") + 1] == best["a2l"]
    assert (tmp_path / "tables" / pipeline.PAPER_INPUTS).is_file()


def test_the_paper_job_knows_the_fine_tuning_delta_of_each_shipped_vid2vid_config():
    for base, delta in pipeline.FINETUNE_EXPERIMENTS.items():
        assert (REPO_ROOT / base).is_file() and (REPO_ROOT / delta).is_file()
    with pytest.raises(UsageError, match="--finetune-config"):
        pipeline.finetune_experiment(Path("experiments/other.yaml"), None)


@pytest.mark.slow
def test_the_paper_job_runs_end_to_end_and_writes_table1_with_both_vid2vid_rows(tmp_path):
    import csv

    job = [
        "pipeline",
        "paper",
        "--synth-preset",
        "tiny",
        "--root",
        tmp_path / "raw",
        "--cache",
        tmp_path / "cache",
        "--runs",
        tmp_path / "runs",
        "--out",
        tmp_path / "tables",
        "--set",
        "trainer.max_epochs=1",
        "--set",
        "trainer.limit_train_batches=2",
        "--set",
        "trainer.limit_val_batches=1",
        "--set",
        "trainer.limit_test_batches=1",
        "--vid2vid-set",
        "model.init_args.fid_extractor=none",
        "--fid-extractor",
        "none",
        "--max-clips",
        "1",
    ]
    first = _eapc(*job)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    (finetune_run,) = (tmp_path / "runs" / "vid2vid_finetune").iterdir()
    (vid2vid_run,) = (tmp_path / "runs" / "vid2vid").iterdir()
    assert finetune_run.name.startswith(vid2vid_run.name + "+a2l-")
    assert (finetune_run / "test" / "metrics.json").is_file()
    assert list((tmp_path / "cache" / "predicted_landmarks").glob("*/*.npy"))  # the fine-tuning's targets
    with open(tmp_path / "tables" / "table1.csv", newline="") as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle) if row["quoted"] == "0"}
    for name in pipeline.PAPER_ROW_NAMES:
        for column in ("M-LD", "PSNR", "SSIM"):
            assert rows[name][column], (name, column)
        assert "1 clips" in rows[name]["notes"]
    assert rows[pipeline.PAPER_ROW_NAMES[0]]["PSNR"] != rows[pipeline.PAPER_ROW_NAMES[1]]["PSNR"]
    markdown = (tmp_path / "tables" / "table1.md").read_text()
    assert all(f"**{name}**" in markdown for name in pipeline.PAPER_ROW_NAMES)
    assert "fine-tuning moved M-LD by" in first.stdout

    second = _eapc(*job, "--resume")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert second.stdout.count("skip fit and test") == 3 and "skip Table 1" in second.stdout
    assert "==> fit:" not in second.stdout and "==> Table 1:" not in second.stdout
