"""``eapc report``: run folders -> one markdown report with curves, tables and sample frames."""

import json
import re

import cv2
import numpy as np
import yaml

from eapc_lightning.cli import main as eapc
from eapc_lightning.evaluation.table1 import TableRow, quoted_rows, write_table1
from eapc_lightning.render.video import write_video


def make_fit_run(folder):
    (folder / "csv").mkdir(parents=True)
    (folder / "config.yaml").write_text(
        yaml.safe_dump({"model": {"class_path": "eapc_lightning.lit.a2l.A2LModule"}})
    )
    (folder / "metrics.json").write_text(json.dumps({"metrics": {"val/M-LD": 3.25, "train/loss": 0.5}}))
    (folder / "test").mkdir()
    (folder / "test" / "metrics.json").write_text(json.dumps({"metrics": {"test/M-LD": 3.5}}))
    rows = ["epoch,step,train/loss,val/M-LD"] + [
        f"{s // 10},{s},{1.0 / (s + 1):.4f}," for s in range(0, 50, 10)
    ]
    rows += ["0,9,,4.0", "1,19,,3.5", "2,29,,3.25"]
    (folder / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    frames = [np.full((64, 64, 3), 40 * k, np.uint8) for k in range(5)]
    write_video(folder / "samples" / "test_sample.mp4", frames)
    return folder


def test_report_gathers_runs_with_curves_tables_and_frames(tmp_path, capsys):
    fit_run = make_fit_run(tmp_path / "runs" / "a2l" / "run1")
    evaluation = tmp_path / "tables"
    ours = [TableRow("synthetic", "EAPC (ours)", {"M-LD": 2.5}, "measured")]
    write_table1(evaluation, ours, quoted_rows("MEAD"))
    cv2.imwrite(str(evaluation / "fig4_generated_vs_truth.png"), np.zeros((32, 64, 3), np.uint8))
    missing = tmp_path / "no_such_run"
    out = tmp_path / "report" / "report.md"

    assert eapc(["report", str(fit_run), str(evaluation), str(missing), "--out", str(out)]) == 0
    assert "not a folder" in capsys.readouterr().err
    text = out.read_text()
    assert "eapc_lightning.lit.a2l.A2LModule" in text
    assert "| val/M-LD | 3.25 |" in text and "| test/M-LD | 3.5 |" in text
    assert "**EAPC (ours)**" in text and "*(quoted)*" in text  # the evaluate table is embedded
    assert f"{missing}: not a folder" in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) == 3  # curves, the Fig. 4 grid, the middle frame of the sample video
    for image in images:
        picture = cv2.imread(str(out.parent / image))
        assert picture is not None and picture.size > 0
    middle = next(image for image in images if "test_sample" in image)
    assert cv2.imread(str(out.parent / middle))[..., 0].mean() > 0  # a decoded frame, not black


def test_report_of_only_missing_folders_fails(tmp_path):
    assert eapc(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r.md")]) == 1
