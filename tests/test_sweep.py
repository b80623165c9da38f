"""`eapc sweep` end to end with tiny runs of the real A2L module on a tiny cache of random clips.

One sweep of the three ablation variants plus a broken variant (a misspelt key), one seed: every table
row is filled, the broken run is recorded without stopping the others, a second sweep reuses the
finished runs, and each run folder holds what `eapc fit` / `eapc test` leave (checkpoints, renders).
"""

import argparse
import csv
import io
import json

import numpy as np
import pytest
import yaml

from conftest import REPO_ROOT
from eapc_lightning.audio.features import AudioFeatureConfig
from eapc_lightning.cli import main as eapc_main
from eapc_lightning.constants import EMOTIONS
from eapc_lightning.data.cache import save_clip

pytest.importorskip("eapc_lightning.lit.a2l", reason="the A2L module is needed for real sweep runs")
pytest.importorskip("eapc_lightning.data.datamodule", reason="the LandmarkDataModule is needed for sweeps")

VARIANTS = [REPO_ROOT / "experiments" / "ablations" / f"{name}.yaml" for name in ("no_prior", "prior")]
VARIANTS.append(REPO_ROOT / "experiments" / "ablations" / "prior_attention.yaml")

TINY_RUN = {
    "model": {
        "init_args": {
            "network": {
                "audio_hidden": 8,
                "audio_layers": 1,
                "llf_hidden": 8,
                "llf_layers": 1,
                "landmark_hidden": 8,
                "landmark_layers": 1,
                "attention_dim": 8,
                "reference_dim": 8,
                "head_hidden": [16],
            }
        }
    },
    "data": {"init_args": {"batch_size": 4, "stride": 10}},
    "trainer": {
        "max_epochs": 1,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "limit_test_batches": 2,
        "logger": [{"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "x"}}],
    },
}


def _write_tiny_cache(cache_dir) -> None:
    """6 speakers x 2 clips x 30 frames of random features and landmarks (plumbing only)."""
    rng = np.random.default_rng(0)
    for s in range(6):
        for c in range(2):
            frames = 30
            landmarks = rng.uniform(60.0, 200.0, size=(frames, 68, 2)).astype(np.float32)
            arrays = {
                "mfcc": rng.normal(size=(frames, 28, 12)).astype(np.float32),
                "llf": rng.normal(size=(frames, 25)).astype(np.float32),
                "landmarks": landmarks,
                "landmarks_raw": landmarks,
                "detected": np.ones(frames, dtype=bool),
                "align_matrix": np.eye(2, 3, dtype=np.float32),
                "faces_jpeg": np.zeros(0, dtype=np.uint8),
                "faces_offsets": np.zeros(frames + 1, dtype=np.int64),
            }
            clip_id = f"S{s}_{c}"
            meta = {
                "audio_features": AudioFeatureConfig().to_dict(),
                "clip_id": clip_id,
                "dataset": "mead",
                "speaker": f"S{s}",
                "emotion": EMOTIONS[(s + c) % len(EMOTIONS)],
                "level": 1,
                "num_frames": frames,
            }
            save_clip(cache_dir / "clips" / f"{clip_id}.npz", arrays, meta)


@pytest.fixture(scope="module")
def sweep_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    _write_tiny_cache(root / "cache")
    tiny = root / "tiny.yaml"
    run = yaml.safe_load(yaml.safe_dump(TINY_RUN))
    run["data"]["init_args"]["cache_dir"] = str(root / "cache")
    tiny.write_text(yaml.safe_dump(run))
    broken = root / "broken.yaml"
    broken.write_text(yaml.safe_dump({"model": {"init_args": {"network": {"prior_skipp": True}}}}))
    return root, tiny, broken


def _sweep(root, tiny, variants, monkeypatch) -> int:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    argv = ["sweep", "--base", str(REPO_ROOT / "experiments" / "a2l.yaml")]
    argv += ["--data", str(REPO_ROOT / "data_modules" / "synthetic.yaml"), "--config", str(tiny)]
    argv += ["--variants", *map(str, variants), "--seeds", "0", "--jobs", "2"]
    argv += ["--runs", str(root / "runs"), "--out", str(root / "tables")]
    return eapc_main(argv)


def test_sweep_fills_every_row_records_failures_and_resumes(sweep_setup, monkeypatch, capsys):
    root, tiny, broken = sweep_setup
    assert _sweep(root, tiny, [*VARIANTS, broken], monkeypatch) == 1  # one run failed
    markdown = (root / "tables" / "ablation.md").read_text()
    for label in ("w/o Audio i-1 [no_prior]", "w Audio i-1 [prior]", "w attention [prior_attention]"):
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")[1:]]
        assert len(cells) == 4 and all(cell != "-" for cell in cells), row
    baseline_rows = [line for line in markdown.splitlines() if line.startswith("| Reference held still |")]
    assert len(baseline_rows) == 2 and "-" not in baseline_rows[0].split("|")[2]
    assert "Runs: 3 of 4 finished." in markdown
    assert "FAILED broken seed 0 at fit" in markdown

    failed = json.loads((root / "runs" / "broken" / "seed0" / "sweep.json").read_text())
    assert failed["status"] == "failed" and "prior_skipp" in failed["error"]

    rows = list(csv.DictReader(io.StringIO((root / "tables" / "ablation.csv").read_text())))
    prior = next(row for row in rows if row["method"] == "w Audio i-1 [prior]")
    run = root / "runs" / "prior" / "seed0"
    test_record = json.loads((run / "test" / "metrics.json").read_text())["metrics"]
    assert float(prior["M-LD_mean"]) == pytest.approx(test_record["test/M-LD"])
    assert {"test/baseline_M-LD", "test/F-LVD", "test/emotion_acc"} <= set(test_record)
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "config.yaml").is_file()
    assert (
        yaml.safe_load((run / "config.yaml").read_text())["model"]["init_args"]["network"]["attention"]
        is False
    )
    assert list((run / "test" / "renders").glob("*.mp4")), "test renders are written for sweep runs too"

    fit_log_time = (run / "fit.log").stat().st_mtime_ns
    capsys.readouterr()
    assert _sweep(root, tiny, VARIANTS, monkeypatch) == 0  # the finished runs are reused, nothing runs
    assert (run / "fit.log").stat().st_mtime_ns == fit_log_time
    assert "fit ..." not in capsys.readouterr().out
    assert "Runs: 3 of 3 finished." in (root / "tables" / "ablation.md").read_text()


def test_sweep_checks_its_inputs(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    argv = ["sweep", "--base", str(missing), "--data", str(missing), "--variants", str(missing)]
    assert eapc_main(argv) == 2
    assert f"{missing}: file not found" in capsys.readouterr().err


def test_dry_run_prints_fit_and_test_commands(capsys):
    from eapc_lightning.commands import sweep

    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    args = parser.parse_args(
        [
            "--base",
            str(REPO_ROOT / "experiments" / "a2l.yaml"),
            "--data",
            str(REPO_ROOT / "data_modules" / "synthetic.yaml"),
        ]
        + ["--variants", str(VARIANTS[0]), "--seeds", "3", "--dry-run", "--set", "trainer.max_epochs=2"]
    )
    assert sweep.run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and " fit " in lines[0] and " test " in lines[1]
    assert "--seed_everything 3" in lines[0] and "--trainer.max_epochs=2" in lines[0]
    assert "no_prior/seed3/checkpoints/best.ckpt" in lines[1]
