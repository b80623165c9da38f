"""``eapc evaluate``: Table 1 with quoted paper rows, per-clip CSV, Fig. 4 grid, failure isolation, metrics."""

import csv
import dataclasses

import cv2
import numpy as np
import pytest
import torch
import yaml

from eapc_lightning.cli import main as eapc
from eapc_lightning.evaluation.protocol import load_protocol
from eapc_lightning.evaluation.run import evaluate_split
from eapc_lightning.evaluation.scores import Scores
from eapc_lightning.evaluation.table1 import PAPER_TABLE1, quoted_rows
from eapc_lightning.inference.checkpoints import load_module, resolve_checkpoint
from eapc_lightning.metrics.landmark import LandmarkDistance, LandmarkVelocityDistance, centre_frames
from helpers.tiny_models import tiny_models_once

EAPC = load_protocol("eapc")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_models_once(tmp_path_factory)


@pytest.fixture(scope="module")
def data_yaml(models, tmp_path_factory):
    """The synthetic data YAML pointed at the tiny cache, with one of its two speakers held out for test."""
    path = tmp_path_factory.mktemp("data") / "synthetic_tiny.yaml"
    config = {
        "data": {
            "class_path": "eapc_lightning.data.datamodule.LandmarkDataModule",
            "init_args": {
                "cache_dir": str(models.cache),
                "val_fraction": 0.0,
                "test_fraction": 0.5,
                "seed": 0,
            },
        }
    }
    path.write_text(yaml.safe_dump(config))
    return path


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_evaluate_writes_table1_per_clip_csv_and_figure(models, data_yaml, tmp_path, capsys):
    out = tmp_path / "tables"
    args = ["evaluate", "--data", str(data_yaml), "--a2l", str(models.a2l), "--vid2vid", str(models.vid2vid)]
    # Inception on CPU costs a minute here: FID is exercised below with a small stand-in extractor
    assert eapc([*args, "--out", str(out), "--label", "synthetic", "--fid-extractor", "none"]) == 0
    assert str(models.vid2vid) in capsys.readouterr().out

    rows = read_csv(out / "table1.csv")
    ours = [row for row in rows if row["quoted"] == "0"]
    quoted = [row for row in rows if row["quoted"] == "1"]
    assert [row["method"] for row in ours] == [
        "EAPC (ours, predicted landmarks)",
        "EAPC (ours, full pipeline)",
        "Ground truth through the output path (floor)",
        "Copy the reference image",
    ]
    clip_count = len(read_csv(out / "per_clip.csv"))
    # every value sits inside its bootstrap interval (which needs two clips to resample); MediaPipe may
    # find no face in the tiny 32-px frames, which leaves a landmark cell empty, never a wrong number
    checked = 0
    for row in ours:
        for name in ("M-LD", "F-LVD", "PSNR"):
            if clip_count >= 2 and row[name]:
                assert float(row[f"{name}_ci_low"]) <= float(row[name]) <= float(row[f"{name}_ci_high"])
                checked += 1
    assert checked >= 4
    floor, pipeline = ours[2], ours[1]
    assert float(floor["PSNR"]) > float(pipeline["PSNR"])  # the codec costs less than the generator
    assert len(quoted) == 8 and all(row["source"] == "quoted: EAPC paper, Table 1" for row in quoted)
    # two published values, read off the paper's Table 1
    eapc_mead = next(r for r in quoted if r["dataset"] == "MEAD" and r["method"] == "EAPC")
    assert float(eapc_mead["M-LD"]) == 2.01 and float(eapc_mead["PSNR"]) == 32.03
    eapc_crema = next(r for r in quoted if r["dataset"] == "CREMA-D" and r["method"] == "EAPC")
    assert float(eapc_crema["FID"]) == 17.31 and float(eapc_crema["SSIM"]) == 0.855
    full = ours[1]
    assert 0 < float(full["PSNR"]) < 60 and 0 <= float(full["SSIM"]) <= 1 and full["FID"] == ""
    assert float(ours[0]["M-LD"]) > 0

    markdown = (out / "table1.md").read_text()
    assert markdown.count("*(quoted)*") == 8 and "**EAPC (ours, full pipeline)**" in markdown
    assert EAPC.header() in markdown and EAPC.header() in (out / "breakdown.md").read_text()

    clips = read_csv(out / "per_clip.csv")
    breakdown = read_csv(out / "breakdown.csv")
    for grouping, column in (("emotion", "emotion"), ("speaker", "speaker")):
        groups = {
            row["group"]: int(row["clips"])
            for row in breakdown
            if row["by"] == grouping and "pipeline" in row["method"]
        }
        expected = {}
        for clip in clips:
            expected[clip[column]] = expected.get(clip[column], 0) + 1
        assert groups == expected

    assert len(clips) >= 1 and all(row["status"] == "ok" for row in clips)
    for row in clips:  # frame 0 is the reference: never scored
        found, scored = map(int, row["pipeline_faces_found"].split("/"))
        assert found <= scored == int(row["frames"]) - 1
    figure = cv2.imread(str(out / "fig4_generated_vs_truth.png"))
    assert figure is not None and figure.shape[1] == 6 * 128  # six time steps per row
    assert figure.shape[0] >= 2 * 128  # generated above ground truth


def test_a_failing_clip_is_recorded_and_the_rest_are_scored(models, data_yaml, tmp_path):
    from eapc_lightning.commands.evaluate import datamodule_from_yaml

    records = datamodule_from_yaml(data_yaml, None).test_clips()
    broken = dataclasses.replace(records[0], clip_id="broken_clip", path=tmp_path / "missing.npz")
    a2l = load_module("a2l", resolve_checkpoint("a2l", models.a2l))
    result = evaluate_split([broken, *records], a2l, None, tmp_path / "out", "synthetic", "test", EAPC)
    rows = read_csv(result.per_clip_csv)
    assert rows[-1]["clip_id"] == "broken_clip" and rows[-1]["status"] == "failed"
    assert "missing.npz" in rows[-1]["error"]
    assert [row["status"] for row in rows[:-1]] == ["ok"] * len(records)
    assert result.ours[0].values["M-LD"] is not None and "1 clips failed" in result.ours[0].notes
    assert result.figure is None  # no frames without a vid2vid model


class PooledColours(torch.nn.Module):
    """A deliberately small FID stand-in: per-channel means and standard deviations at 4 x 4 cells."""

    num_features = 96

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        cells = torch.nn.functional.adaptive_avg_pool2d(images.float(), 4)
        squares = torch.nn.functional.adaptive_avg_pool2d(images.float() ** 2, 4)
        return torch.cat([cells.flatten(1), (squares - cells**2).clamp(min=0).sqrt().flatten(1)], dim=1)


def test_full_pipeline_scores_fid_and_psnr_against_a_hand_computation(models, data_yaml, tmp_path):
    from eapc_lightning.commands.evaluate import datamodule_from_yaml
    from eapc_lightning.evaluation.clip_eval import evaluate_clip

    records = datamodule_from_yaml(data_yaml, None).test_clips()[:1]
    a2l = load_module("a2l", resolve_checkpoint("a2l", models.a2l))
    vid2vid = load_module("vid2vid", resolve_checkpoint("vid2vid", models.vid2vid))
    result = evaluate_split(
        records, a2l, vid2vid, tmp_path, "synthetic", "test", EAPC, fid_extractor=PooledColours()
    )
    full = result.ours[1].values
    assert full["FID"] is not None and full["FID"] > 0
    outcome = evaluate_clip(records[0], a2l, vid2vid, EAPC)
    # per-frame PSNR over the scored frames (all but the reference frame 0), averaged
    errors = ((outcome.generated[1:].astype(np.float64) - outcome.truth[1:].astype(np.float64)) / 255) ** 2
    assert full["PSNR"] == pytest.approx(np.mean(10 * np.log10(1 / errors.mean(axis=(1, 2, 3)))), rel=1e-4)


def test_several_vid2vid_models_are_rows_of_one_table_on_the_same_clips(models, data_yaml, tmp_path):
    """``make paper``'s Table 1: one full-pipeline row per vid2vid model, each equal to that model's own
    evaluation, the reference rows shared."""
    from eapc_lightning.commands.evaluate import datamodule_from_yaml
    from eapc_lightning.evaluation.clip_eval import VideoModel
    from helpers.tiny_models import train_vid2vid

    records = datamodule_from_yaml(data_yaml, None).test_clips()[:2]
    a2l = load_module("a2l", resolve_checkpoint("a2l", models.a2l))
    first = load_module("vid2vid", resolve_checkpoint("vid2vid", models.vid2vid))
    other_checkpoint = train_vid2vid(models.cache, tmp_path / "runs" / "vid2vid" / "other", steps=1, seed=1)
    second = load_module("vid2vid", resolve_checkpoint("vid2vid", other_checkpoint))
    rows = [
        VideoModel("pipeline", first, "ground truth trained"),
        VideoModel("pipeline_2", second, "fine-tuned"),
    ]
    both = evaluate_split(
        records, a2l, rows, tmp_path / "both", "synthetic", "test", EAPC, fid_extractor="none"
    )
    assert [row.method for row in both.ours] == [
        "EAPC (ours, predicted landmarks)",
        "ground truth trained",
        "fine-tuned",
        "Ground truth through the output path (floor)",
        "Copy the reference image",
    ]
    alone = {}
    for name, module in (("ground truth trained", first), ("fine-tuned", second)):
        result = evaluate_split(
            records, a2l, module, tmp_path / name, "synthetic", "test", EAPC, fid_extractor="none"
        )
        alone[name] = {row.method: row.values for row in result.ours}
    by_name = {row.method: row.values for row in both.ours}
    for name in ("ground truth trained", "fine-tuned"):
        assert by_name[name] == pytest.approx(alone[name]["EAPC (ours, full pipeline)"], nan_ok=True)
        for shared in ("EAPC (ours, predicted landmarks)", "Copy the reference image"):
            assert by_name[shared] == pytest.approx(alone[name][shared], nan_ok=True)
    assert by_name["ground truth trained"]["PSNR"] != pytest.approx(by_name["fine-tuned"]["PSNR"])
    clips = read_csv(both.per_clip_csv)
    assert [row["clip_id"] for row in clips] == [record.clip_id for record in records]
    assert all(
        row["pipeline_PSNR"] and row["pipeline_2_PSNR"] and row["pipeline_2_faces_found"] for row in clips
    )
    methods = {row["method"] for row in read_csv(both.breakdown_csv)}
    assert {"ground truth trained", "fine-tuned"} <= methods


def test_scores_match_the_torchmetrics_and_skip_missing_frames():
    generator = torch.Generator().manual_seed(0)
    prediction = centre_frames(128 + 20 * torch.randn(12, 68, 2, generator=generator))
    target = centre_frames(128 + 20 * torch.randn(12, 68, 2, generator=generator))
    scores = Scores()
    scores.add_landmarks(prediction.numpy(), target.numpy(), np.ones(12, bool), region_centroid=False)
    for name, metric in (("M-LD", LandmarkDistance("mouth")), ("F-LVD", LandmarkVelocityDistance("face"))):
        metric.update(prediction, target)
        assert scores.value(name) == pytest.approx(float(metric.compute()), rel=1e-6)
    # frames 3 and 4 missing: LD over the other 10 frames, LVD over the 8 pairs of found neighbours
    found = np.ones(12, bool)
    found[[3, 4]] = False
    partial = Scores()
    partial.add_landmarks(prediction.numpy(), target.numpy(), found, region_centroid=False)
    keep = [0, 1, 2, *range(5, 12)]
    distance = LandmarkDistance("face")
    distance.update(prediction[keep], target[keep])
    assert partial.value("F-LD") == pytest.approx(float(distance.compute()), rel=1e-6)
    velocity = LandmarkVelocityDistance("face")
    velocity.update(prediction[:3], target[:3])
    velocity.update(prediction[5:], target[5:])
    assert partial.value("F-LVD") == pytest.approx(float(velocity.compute()), rel=1e-6)
    assert partial.counts["F-LVD"] == 8 * 68


def test_quoted_rows_are_the_papers_and_marked():
    rows = quoted_rows()
    assert {row.dataset for row in rows} == set(PAPER_TABLE1) == {"MEAD", "CREMA-D"}
    assert all(row.quoted for row in rows)
    sinha_mead = next(r for r in rows if r.dataset == "MEAD" and r.method.startswith("(Sinha"))
    assert sinha_mead.values["M-LVD"] == 0.77 and sinha_mead.values["FID"] == 35.41


def test_data_yaml_is_parsed_and_checked_like_eapc_fit(tmp_path):
    from eapc_lightning.commands.evaluate import datamodule_from_yaml
    from eapc_lightning.errors import InputError

    typo = tmp_path / "typo.yaml"
    typo.write_text(
        "data:\n  class_path: eapc_lightning.data.datamodule.LandmarkDataModule\n"
        "  init_args:\n    batch_sise: 3\n"
    )
    with pytest.raises(
        InputError, match=r"unknown key 'data\.init_args\.batch_sise'.*did you mean 'batch_size'"
    ):
        datamodule_from_yaml(typo, None)
    wrong_type = tmp_path / "wrong_type.yaml"
    wrong_type.write_text(
        "data:\n  class_path: eapc_lightning.data.datamodule.LandmarkDataModule\n"
        "  init_args:\n    window: many\n"
    )
    with pytest.raises(InputError, match=str(wrong_type)):
        datamodule_from_yaml(wrong_type, None)


def test_data_yaml_defaults_come_from_the_datamodule(models, tmp_path):
    """A data YAML with only a class path and a cache gets LandmarkDataModule's defaults, as eapc fit does."""
    import inspect

    from eapc_lightning.commands.evaluate import datamodule_from_yaml
    from eapc_lightning.data.datamodule import LandmarkDataModule

    minimal = tmp_path / "minimal.yaml"
    minimal.write_text("data:\n  class_path: eapc_lightning.data.datamodule.LandmarkDataModule\n")
    datamodule = datamodule_from_yaml(minimal, str(models.cache))
    defaults = inspect.signature(LandmarkDataModule).parameters
    assert datamodule.hparams.window == defaults["window"].default
    assert datamodule.hparams.cache_dir == str(models.cache)


def test_wandb_tables_hold_what_the_csv_files_hold(models, data_yaml, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    out = tmp_path / "tables"
    args = [
        "evaluate",
        "--data",
        str(data_yaml),
        "--a2l",
        str(models.a2l),
        "--landmarks-only",
        "--split",
        "all",
    ]
    assert eapc([*args, "--out", str(out), "--wandb"]) == 0
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    for key, csv_name in (
        ("table1", "table1.csv"),
        ("breakdown", "breakdown.csv"),
        ("per_clip", "per_clip.csv"),
    ):
        (table_file,) = (run_dir / "files" / "media" / "table" / "evaluate").glob(f"{key}_*.table.json")
        table = json.loads(table_file.read_text())
        with open(out / csv_name, newline="") as handle:
            rows = list(csv.reader(handle))
        assert table["columns"] == rows[0] and table["data"] == rows[1:]
    groups = {row["by"] for row in read_csv(out / "breakdown.csv")}
    assert groups == {"emotion", "intensity", "speaker"}
