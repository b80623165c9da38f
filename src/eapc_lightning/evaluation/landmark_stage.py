"""The audio-to-landmark stage on its own: landmark metrics and mouth opening, beside the held-still reference.

Two rows: the predicted landmarks, and the clip's first-frame reference held still over the clip (what a
model that ignores the audio would score). Columns: M-LD, M-LVD, F-LD, F-LVD pooled over all frames as
in Table 1, then the inner-lip gap statistics of ``eapc_lightning.metrics.mouth_opening`` averaged over
clips: mean Pearson r between predicted and true gap, the number of clips with r above 0.5, the mean
ratio std(predicted gap) / std(true gap), and the mean per-clip range (max - min) of the predicted and of
the true gap, in canonical-frame pixels.
"""

import csv
import io
from dataclasses import dataclass

from eapc_lightning.evaluation.scores import LANDMARK_METRICS
from eapc_lightning.evaluation.table1 import format_value
from eapc_lightning.metrics.mouth_opening import MouthOpeningSummary

MOUTH_COLUMNS = ("mouth r", "clips r > 0.5", "gap std ratio", "predicted gap range", "true gap range")


@dataclass
class StageRow:
    method: str
    landmarks: dict[str, float | None]
    mouth: MouthOpeningSummary

    def mouth_values(self) -> dict[str, float | int | None]:
        m = self.mouth
        return {
            "mouth r": m.mean_r,
            "clips r > 0.5": m.clips_r_above,
            "gap std ratio": m.mean_std_ratio,
            "predicted gap range": m.mean_predicted_range,
            "true gap range": m.mean_true_range,
        }


def stage_markdown(rows: list[StageRow], dataset_label: str) -> str:
    clips = rows[0].mouth.clips if rows else 0
    lines = [
        "## The audio-to-landmark stage on its own",
        "",
        f"{dataset_label}, {clips} clips. Landmark metrics (lower is better) averaged over clips as the protocol says; mouth "
        "opening = inner-lip gap (points 61-63 to 67-65, canonical-frame pixels): mean over clips of the "
        "Pearson r between predicted and true gap, clips with r > 0.5, mean std(predicted) / std(true), "
        "mean per-clip range (max - min) of the predicted and of the true gap.",
        "",
        "| Method | "
        + " | ".join(f"{n} ↓" for n in LANDMARK_METRICS)
        + " | "
        + " | ".join(MOUTH_COLUMNS)
        + " |",
        "|" + "---|" * (1 + len(LANDMARK_METRICS) + len(MOUTH_COLUMNS)),
    ]
    for row in rows:
        landmark_cells = [format_value(row.landmarks.get(n)) for n in LANDMARK_METRICS]
        mouth = row.mouth_values()
        mouth_cells = [
            format_value(mouth["mouth r"]),
            f"{mouth['clips r > 0.5']}/{clips}",
            format_value(mouth["gap std ratio"]),
            format_value(mouth["predicted gap range"]),
            format_value(mouth["true gap range"]),
        ]
        lines.append(f"| {row.method} | " + " | ".join(landmark_cells + mouth_cells) + " |")
    return "\n".join(lines) + "\n"


def stage_csv(rows: list[StageRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", *LANDMARK_METRICS, *MOUTH_COLUMNS, "clips"])
    for row in rows:
        values = {**row.landmarks, **row.mouth_values()}
        cells = [
            ""
            if values[n] is None
            else (str(values[n]) if isinstance(values[n], int) else f"{values[n]:.6g}")
            for n in (*LANDMARK_METRICS, *MOUTH_COLUMNS)
        ]
        writer.writerow([row.method, *cells, row.mouth.clips])
    return buffer.getvalue()
