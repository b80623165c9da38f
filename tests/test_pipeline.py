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
