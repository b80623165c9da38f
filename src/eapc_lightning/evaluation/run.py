"""``eapc evaluate``: every test clip through the pipeline, then Table 1, a per-clip CSV and a Fig. 4 grid.

A clip that fails is recorded (``status = failed`` and the error in the per-clip CSV) and the rest go on.
Landmark metrics pool distance sums over all clips (as the torchmetrics states would); PSNR and SSIM
are computed per clip (over all its frames) and averaged over clips weighted by their frame counts; FID compares all generated frames with all ground-truth
crops (at the generator's resolution) with the offline Inception extractor of
``eapc_lightning.metrics.image``.

Below Table 1, ``table1.md`` holds the audio-to-landmark stage on its own (also ``landmark_stage.csv``):
the predicted landmarks beside the first-frame reference held still, with the mouth-opening statistics
of ``eapc_lightning.metrics.mouth_opening``; the per-clip CSV has the held-still metrics (``held_*``)
and the mouth-opening values of each clip.
"""

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import torch

from eapc_lightning.evaluation.clip_eval import LANDMARK_METRICS, ClipOutcome, LandmarkSums, evaluate_clip
from eapc_lightning.evaluation.figure import write_grid
from eapc_lightning.evaluation.landmark_stage import StageRow, stage_csv, stage_markdown
from eapc_lightning.evaluation.table1 import TableRow, quoted_rows, write_table1
from eapc_lightning.fileio import atomic_write_bytes
from eapc_lightning.metrics.image import build_fid
from eapc_lightning.metrics.mouth_opening import summarise

FIGURE_CLIPS = 3


@dataclass
class EvaluationResult:
    table_markdown: Path
    table_csv: Path
    per_clip_csv: Path
    landmark_stage_csv: Path
    figure: Path | None
    ours: list[TableRow]
    failures: dict[str, str]
    stage: list[StageRow]


MOUTH_CSV_COLUMNS = (
    "mouth_r",
    "mouth_std_ratio",
    "pred_gap_min",
    "pred_gap_max",
    "pred_gap_range",
    "true_gap_min",
    "true_gap_max",
    "true_gap_range",
)


def _per_clip_csv(outcomes: list[ClipOutcome], failures: dict[str, str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = [f"a2l_{n}" for n in LANDMARK_METRICS] + list(LANDMARK_METRICS)
    held_names = [f"held_{n}" for n in LANDMARK_METRICS]
    header = ["clip_id", "status", "frames", "frames_with_face", *names, "PSNR", "SSIM"]
    writer.writerow([*header, *held_names, *MOUTH_CSV_COLUMNS, "error"])

    def cell(value):
        return "" if value is None else f"{value:.6g}"

    for outcome in outcomes:
        a2l = outcome.a2l.values()
        redetected = outcome.redetected.values() if outcome.redetected else {}
        held = outcome.held_still.values() if outcome.held_still else {}
        mouth = outcome.mouth
        mouth_cells = (
            [mouth.r, mouth.std_ratio, mouth.predicted_min, mouth.predicted_max, mouth.predicted_range]
            + [mouth.true_min, mouth.true_max, mouth.true_range]
            if mouth is not None
            else [None] * len(MOUTH_CSV_COLUMNS)
        )
        writer.writerow(
            [
                outcome.clip_id,
                "ok",
                outcome.num_frames,
                cell(outcome.frames_with_face),
                *[cell(a2l[n]) for n in LANDMARK_METRICS],
                *[cell(redetected.get(n)) for n in LANDMARK_METRICS],
                cell(outcome.psnr),
                cell(outcome.ssim),
                *[cell(held.get(n)) for n in LANDMARK_METRICS],
                *[cell(v) for v in mouth_cells],
                "",
            ]
        )
    for clip_id, error in failures.items():
        blanks = [""] * (len(names) + 2 + len(held_names) + len(MOUTH_CSV_COLUMNS))
        writer.writerow([clip_id, "failed", "", "", *blanks, error])
    return buffer.getvalue()


def evaluate_split(
    records,
    a2l_module,
    vid2vid_module,
    out_dir: str | Path,
    dataset_label: str,
    source: str,
    fid_extractor: str | torch.nn.Module = "auto",
    quoted_dataset: str | None = None,
    progress=None,
) -> EvaluationResult:
    """Evaluate ``records`` (cache clip records) and write the tables and figure into ``out_dir``."""
    out_dir = Path(out_dir)
    outcomes: list[ClipOutcome] = []
    failures: dict[str, str] = {}
    a2l_pool, redetected_pool, held_pool = LandmarkSums(), LandmarkSums(), LandmarkSums()
    frames_total = frames_found = 0
    psnr_sum = ssim_sum = 0.0
    fid = None if vid2vid_module is None else build_fid(fid_extractor)
    figure_clips = []
    for index, record in enumerate(records):
        try:
            outcome = evaluate_clip(record, a2l_module, vid2vid_module)
        except Exception as error:  # one bad clip is recorded; the others are still scored
            failures[record.clip_id] = f"{type(error).__name__}: {error}"
            continue
        finally:
            if progress is not None:
                progress(index + 1, len(records))
        a2l_pool.merge(outcome.a2l)
        if outcome.held_still is not None:
            held_pool.merge(outcome.held_still)
        if outcome.redetected is not None:
            redetected_pool.merge(outcome.redetected)
            frames_total += outcome.num_frames
            frames_found += outcome.frames_with_face
            psnr_sum += outcome.psnr * outcome.num_frames
            ssim_sum += outcome.ssim * outcome.num_frames
            if fid is not None:
                fid.update(torch.from_numpy(outcome.truth).permute(0, 3, 1, 2).float() / 255, real=True)
                fid.update(torch.from_numpy(outcome.generated).permute(0, 3, 1, 2).float() / 255, real=False)
            if len(figure_clips) < FIGURE_CLIPS:
                figure_clips.append((outcome.clip_id, outcome.generated, outcome.truth))
        outcome.generated = outcome.truth = None  # keep memory flat over the split
        outcomes.append(outcome)

    ours = [
        TableRow(
            dataset_label,
            "EAPC (ours, predicted landmarks)",
            a2l_pool.values(),
            source,
            notes=f"{len(outcomes)} clips; landmarks scored before rendering",
        )
    ]
    if vid2vid_module is not None and outcomes:
        values = dict(redetected_pool.values())
        values["PSNR"] = psnr_sum / frames_total if frames_total else None
        values["SSIM"] = ssim_sum / frames_total if frames_total else None
        values["FID"] = None
        if fid is not None and frames_total >= 2:
            values["FID"] = float(fid.compute())
        note = (
            f"{len(outcomes)} clips; MediaPipe found a face in {frames_found}/{frames_total} generated frames"
        )
        ours.append(TableRow(dataset_label, "EAPC (ours, full pipeline)", values, source, notes=note))
    if failures:
        ours[0].notes += f"; {len(failures)} clips failed (see per_clip.csv)"
    stage = [
        StageRow(
            "EAPC (ours, predicted landmarks)",
            a2l_pool.values(),
            summarise([o.mouth for o in outcomes if o.mouth is not None]),
        ),
        StageRow(
            "Reference held still",
            held_pool.values(),
            summarise([o.held_mouth for o in outcomes if o.held_mouth is not None]),
        ),
    ]
    markdown, table = write_table1(
        out_dir, ours, quoted_rows(quoted_dataset), appendix=stage_markdown(stage, dataset_label)
    )
    stage_table = out_dir / "landmark_stage.csv"
    atomic_write_bytes(stage_table, stage_csv(stage).encode())
    per_clip = out_dir / "per_clip.csv"
    atomic_write_bytes(per_clip, _per_clip_csv(outcomes, failures).encode())
    figure = write_grid(out_dir / "fig4_generated_vs_truth.png", figure_clips) if figure_clips else None
    return EvaluationResult(markdown, table, per_clip, stage_table, figure, ours, failures, stage)
