"""``eapc evaluate``: every clip through the pipeline under a protocol, then Table 1, breakdowns, a per-clip
CSV and a Fig. 4 grid.

A clip that fails is recorded (``status = failed`` and the error in the per-clip CSV) and the rest go on.
Each metric of our rows is averaged over clips as the protocol says (``clip_average``) and carries a 95%
bootstrap interval over clips (seeded, :mod:`eapc_lightning.evaluation.scores`); FID compares the
protocol's FID frames of a row with the true frames at the same crop, with the offline Inception
extractor of ``eapc_lightning.metrics.image`` (no interval: one Inception pass per resample is too dear).

Rows (see :mod:`~eapc_lightning.evaluation.clip_eval`): our predicted landmarks and our full pipeline
(one row per vid2vid model when several are given, e.g. trained on ground-truth landmarks and fine-tuned
on predicted ones, all on the same clips and the same a2l landmarks), then the reference rows every Table 1 carries: ground truth through the output path (the floor) and
copying the reference image (doing nothing); ``table1.md`` also holds the audio-to-landmark stage beside
the reference held still, with the mouth-opening statistics. ``breakdown.md`` / ``breakdown.csv`` split
our rows by emotion, intensity level and speaker.
"""

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import torch

from eapc_lightning.constants import EMOTIONS
from eapc_lightning.evaluation.clip_eval import ClipOutcome, evaluate_clip, video_models
from eapc_lightning.evaluation.figure import write_grid
from eapc_lightning.evaluation.landmark_stage import StageRow, stage_csv, stage_markdown
from eapc_lightning.evaluation.measure import FrameMeasurer
from eapc_lightning.evaluation.protocol import EvaluationProtocol
from eapc_lightning.evaluation.scores import LANDMARK_METRICS, average, bootstrap_interval
from eapc_lightning.evaluation.table1 import TableRow, format_value, quoted_rows, write_table1
from eapc_lightning.fileio import atomic_write_bytes
from eapc_lightning.metrics.image import build_fid
from eapc_lightning.metrics.mouth_opening import summarise

FIGURE_CLIPS = 3
SCORED_METRICS = (*LANDMARK_METRICS, "PSNR", "SSIM")
# row key -> the method name printed in the tables
ROW_NAMES = {
    "predicted": "EAPC (ours, predicted landmarks)",
    "pipeline": "EAPC (ours, full pipeline)",
    "output_path": "Ground truth through the output path (floor)",
    "copy_reference": "Copy the reference image",
    "held_still": "Reference held still",
}
BREAKDOWN_ROWS = ("predicted", "pipeline")
REFERENCE_VIDEO_ROWS = ("output_path", "copy_reference")
BREAKDOWNS = {
    "emotion": lambda record: (
        EMOTIONS[record.emotion] if 0 <= record.emotion < len(EMOTIONS) else "unlabelled"
    ),
    "intensity": lambda record: f"level {record.level}" if record.level else "unknown",
    "speaker": lambda record: record.speaker,
}


@dataclass
class EvaluationResult:
    table_markdown: Path
    table_csv: Path
    per_clip_csv: Path
    landmark_stage_csv: Path | None
    breakdown_csv: Path
    figure: Path | None
    ours: list[TableRow]
    failures: dict[str, str]
    stage: list[StageRow]
    breakdown: list[dict]


def _row_values(outcomes: list[ClipOutcome], row: str, protocol: EvaluationProtocol, seed: int):
    clips = [outcome.scores[row] for outcome in outcomes if row in outcome.scores]
    values = {name: average(clips, name, protocol.clip_average) for name in SCORED_METRICS}
    intervals = {
        name: bootstrap_interval(clips, name, protocol.clip_average, seed) for name in SCORED_METRICS
    }
    return values, intervals, len(clips)


def _fid(outcomes: list[ClipOutcome], row: str, extractor) -> float | None:
    fid = build_fid(extractor)
    if fid is None:
        return None
    count = 0
    for outcome in outcomes:
        frames = outcome.fid_frames.get(row)
        if frames is None or not len(frames[0]):
            continue
        generated, truth = frames
        fid.update(torch.from_numpy(truth).permute(0, 3, 1, 2).float() / 255, real=True)
        fid.update(torch.from_numpy(generated).permute(0, 3, 1, 2).float() / 255, real=False)
        count += len(generated)
    return float(fid.compute()) if count >= 2 else None


def breakdown_rows(
    outcomes: list[ClipOutcome],
    protocol: EvaluationProtocol,
    seed: int,
    rows: tuple[str, ...] = BREAKDOWN_ROWS,
    names: dict[str, str] = ROW_NAMES,
) -> list[dict]:
    """Our ``rows`` per emotion, intensity level and speaker: one dict per (grouping, group, row)."""
    table = []
    for grouping, key_of in BREAKDOWNS.items():
        groups: dict[str, list[ClipOutcome]] = {}
        for outcome in outcomes:
            groups.setdefault(key_of(outcome.record), []).append(outcome)
        for group in sorted(groups):
            for row in rows:
                values, intervals, clips = _row_values(groups[group], row, protocol, seed)
                if clips:
                    table.append(
                        {"by": grouping, "group": group, "method": names[row], "clips": clips}
                        | {name: values[name] for name in SCORED_METRICS}
                        | {f"{name} 95% CI": intervals[name] for name in SCORED_METRICS}
                    )
    return table


def _interval_text(interval) -> str:
    return "" if interval is None else f"[{format_value(interval[0])}, {format_value(interval[1])}]"


def breakdown_markdown(table: list[dict], protocol: EvaluationProtocol, dataset_label: str) -> str:
    lines = [
        f"# Breakdowns: {dataset_label}",
        "",
        protocol.header(),
        "",
        "Each value with its 95% bootstrap interval over the group's clips.",
    ]
    for grouping in BREAKDOWNS:
        entries = [entry for entry in table if entry["by"] == grouping]
        if not entries:
            continue
        lines += [
            "",
            f"## By {grouping}",
            "",
            "| Group | Method | Clips | " + " | ".join(SCORED_METRICS) + " |",
        ]
        lines.append("|" + "---|" * (3 + len(SCORED_METRICS)))
        for entry in entries:
            cells = [
                f"{format_value(entry[name])} {_interval_text(entry[f'{name} 95% CI'])}".strip()
                for name in SCORED_METRICS
            ]
            lines.append(
                f"| {entry['group']} | {entry['method']} | {entry['clips']} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines) + "\n"


def breakdown_csv(table: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    bounds = [f"{name}_ci_{side}" for name in SCORED_METRICS for side in ("low", "high")]
    writer.writerow(["by", "group", "method", "clips", *SCORED_METRICS, *bounds])
    for entry in table:
        cells = ["" if entry[name] is None else f"{entry[name]:.6g}" for name in SCORED_METRICS]
        interval_cells = []
        for name in SCORED_METRICS:
            interval = entry[f"{name} 95% CI"]
            interval_cells += ["", ""] if interval is None else [f"{interval[0]:.6g}", f"{interval[1]:.6g}"]
        writer.writerow(
            [entry["by"], entry["group"], entry["method"], entry["clips"], *cells, *interval_cells]
        )
    return buffer.getvalue()


def _per_clip_csv(
    outcomes: list[ClipOutcome],
    failures: dict[str, str],
    names: dict[str, str] = ROW_NAMES,
    video_rows: tuple[str, ...] = ("pipeline", *REFERENCE_VIDEO_ROWS),
) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = [row for row in names if any(row in outcome.scores for outcome in outcomes)]
    columns = [f"{row}_{name}" for row in rows for name in SCORED_METRICS]
    found = [f"{row}_faces_found" for row in video_rows]
    mouth = ["mouth_r", "mouth_std_ratio", "pred_gap_min", "pred_gap_max", "pred_gap_range"]
    mouth += ["true_gap_min", "true_gap_max", "true_gap_range", "held_mouth_r", "level_mouth_r"]
    writer.writerow(
        ["clip_id", "status", "speaker", "emotion", "level", "frames", *columns, *found, *mouth, "error"]
    )

    def cell(value):
        return "" if value is None else f"{value:.6g}"

    for outcome in outcomes:
        record = outcome.record
        scores = [
            cell(outcome.scores[row].value(name)) if row in outcome.scores else ""
            for row in rows
            for name in SCORED_METRICS
        ]
        faces = [
            f"{outcome.faces_found[row][0]}/{outcome.faces_found[row][1]}"
            if row in outcome.faces_found
            else ""
            for row in video_rows
        ]
        m, held = outcome.mouth, outcome.held_mouth
        mouth_cells = (
            [cell(m.r), cell(m.std_ratio), cell(m.predicted_min), cell(m.predicted_max)]
            + [cell(m.predicted_range), cell(m.true_min), cell(m.true_max), cell(m.true_range)]
            + [cell(held.r if held else None), cell(outcome.level_mouth_r)]
            if m is not None
            else [""] * len(mouth)
        )
        emotion = BREAKDOWNS["emotion"](record)
        writer.writerow(
            [
                record.clip_id,
                "ok",
                record.speaker,
                emotion,
                record.level,
                outcome.num_frames,
                *scores,
                *faces,
                *mouth_cells,
                "",
            ]
        )
    for clip_id, error in failures.items():
        writer.writerow([clip_id, "failed", *[""] * (4 + len(columns) + len(found) + len(mouth)), error])
    return buffer.getvalue()


def evaluate_split(
    records,
    a2l_module,
    vid2vid_module,
    out_dir: str | Path,
    dataset_label: str,
    source: str,
    protocol: EvaluationProtocol,
    fid_extractor: str | torch.nn.Module = "auto",
    quoted_dataset: str | None = None,
    progress=None,
    seed: int = 0,
) -> EvaluationResult:
    """Evaluate ``records`` (cache clip records) under ``protocol``; write the tables and figure.

    ``vid2vid_module``: one module (the ``pipeline`` row), a list of
    :class:`~eapc_lightning.evaluation.clip_eval.VideoModel` (one full-pipeline row each, in order) or
    None (the a2l stage alone).
    """
    out_dir = Path(out_dir)
    models = video_models(vid2vid_module)
    names = {"predicted": ROW_NAMES["predicted"]}  # in table order: ours, then the reference rows
    names |= {model.key: model.name or ROW_NAMES.get(model.key, model.key) for model in models}
    names |= {row: name for row, name in ROW_NAMES.items() if row not in names and row != "pipeline"}
    model_rows = tuple(model.key for model in models)
    sources = {model.key: model.source or source for model in models}
    measurer = FrameMeasurer(protocol) if models else None
    outcomes: list[ClipOutcome] = []
    failures: dict[str, str] = {}
    figure_clips = []
    for index, record in enumerate(records):
        try:
            outcome = evaluate_clip(record, a2l_module, models or None, protocol, measurer)
        except Exception as error:  # one bad clip is recorded; the others are still scored
            failures[record.clip_id] = f"{type(error).__name__}: {error}"
            continue
        finally:
            if progress is not None:
                progress(index + 1, len(records))
        if outcome.generated is not None and len(figure_clips) < FIGURE_CLIPS:
            figure_clips.append((record.clip_id, outcome.generated, outcome.truth))
        outcome.generated = outcome.truth = None  # keep memory flat over the split
        outcomes.append(outcome)

    ours = []
    for row in ("predicted", *model_rows, *REFERENCE_VIDEO_ROWS):
        values, intervals, clips = _row_values(outcomes, row, protocol, seed)
        if not clips:
            continue
        if row in (*model_rows, *REFERENCE_VIDEO_ROWS):
            values["FID"] = _fid(outcomes, row, fid_extractor)
            found = sum(outcome.faces_found[row][0] for outcome in outcomes if row in outcome.faces_found)
            scored = sum(outcome.faces_found[row][1] for outcome in outcomes if row in outcome.faces_found)
            note = f"{clips} clips; the detector found a face in {found}/{scored} scored frames"
        else:
            note = f"{clips} clips; landmarks scored before rendering"
        row_source = sources.get(row, source)
        ours.append(TableRow(dataset_label, names[row], values, row_source, notes=note, intervals=intervals))
    if failures and ours:
        ours[0].notes += f"; {len(failures)} clips failed (see per_clip.csv)"
    stage = []
    stage_table = None
    if any("predicted" in outcome.scores for outcome in outcomes):
        for row, mouth_of in (("predicted", "mouth"), ("held_still", "held_mouth")):
            clips = [outcome.scores[row] for outcome in outcomes if row in outcome.scores]
            landmarks = {name: average(clips, name, protocol.clip_average) for name in LANDMARK_METRICS}
            mouths = [getattr(o, mouth_of) for o in outcomes if getattr(o, mouth_of) is not None]
            stage.append(StageRow(ROW_NAMES[row], landmarks, summarise(mouths)))
        stage_table = out_dir / "landmark_stage.csv"
        atomic_write_bytes(stage_table, stage_csv(stage).encode())
    appendix = stage_markdown(stage, dataset_label) if stage else ""
    markdown, table = write_table1(
        out_dir, ours, quoted_rows(quoted_dataset), appendix=appendix, protocol_header=protocol.header()
    )
    breakdown = breakdown_rows(outcomes, protocol, seed, ("predicted", *model_rows), names)
    breakdown_table = out_dir / "breakdown.csv"
    atomic_write_bytes(breakdown_table, breakdown_csv(breakdown).encode())
    atomic_write_bytes(
        out_dir / "breakdown.md", breakdown_markdown(breakdown, protocol, dataset_label).encode()
    )
    per_clip = out_dir / "per_clip.csv"
    video_rows = (*(model_rows or ("pipeline",)), *REFERENCE_VIDEO_ROWS)
    atomic_write_bytes(per_clip, _per_clip_csv(outcomes, failures, names, video_rows).encode())
    figure = write_grid(out_dir / "fig4_generated_vs_truth.png", figure_clips) if figure_clips else None
    return EvaluationResult(
        markdown, table, per_clip, stage_table, breakdown_table, figure, ours, failures, stage, breakdown
    )


def log_to_wandb(result: EvaluationResult, protocol: EvaluationProtocol, label: str, out_dir: Path) -> Path:
    """Table 1, the breakdowns and the per-clip values as W&B tables of one ``evaluate`` run (offline
    unless an API key is configured); returns the run's folder."""
    import wandb

    from eapc_lightning.commands.lightning import wandb_api_key_configured

    mode = None if wandb_api_key_configured() else "offline"
    settings = {
        key: list(value) if isinstance(value, tuple) else value for key, value in vars(protocol).items()
    }
    run = wandb.init(
        project="eapc-lightning",
        job_type="evaluate",
        name=f"evaluate/{label}/{protocol.name}",
        dir=str(out_dir),
        config={"protocol": settings, "dataset": label},
        mode=mode,
        reinit="create_new",  # its own run even when the process holds another one (a training run's)
    )
    tables = {}
    for key, path in (
        ("table1", result.table_csv),
        ("breakdown", result.breakdown_csv),
        ("per_clip", result.per_clip_csv),
    ):
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        tables[f"evaluate/{key}"] = wandb.Table(columns=rows[0], data=rows[1:])
    run.log(tables)
    folder = Path(run.dir).parent
    run.finish()
    return folder
