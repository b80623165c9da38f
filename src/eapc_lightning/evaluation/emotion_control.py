"""What the emotion input does: the LLF encoder's own reading of each clip, and the landmark change an
``--emotion`` override makes.

For each clip the audio goes through the audio-to-landmark model three times from the same reference
frame: with the network's own emotion source (whose LLF-encoder distribution, averaged over the clip's
frames, is the clip's *predicted emotion*), and with two forced emotions ``first`` and ``second`` (e.g.
happy and sad, as ``eapc generate --emotion`` forces them). The difference between the two forced runs
is measured where expressions show, in canonical-frame pixels (y grows downwards):

* mouth corners (points 48 and 54): mean distance between the two runs' corners, and the mean signed
  height difference (``second`` minus ``first``: positive when ``first`` lifts the corners);
* brows (points 17-26): the same two quantities;
* mouth width (48 to 54) and inner-lip gap, mean difference ``first`` minus ``second``.

Per-clip values are averaged over clips, each clip weighing the same.
"""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eapc_lightning.constants import EMOTIONS, LEFT_BROW, RIGHT_BROW
from eapc_lightning.data.cache import load_clip
from eapc_lightning.fileio import atomic_write_bytes
from eapc_lightning.metrics.mouth_opening import inner_lip_gap

MEASURES = (  # the ClipEmotionControl fields measuring the forced emotions' difference, table order
    "corner_distance",
    "corner_lift",
    "brow_distance",
    "brow_lift",
    "width_difference",
    "gap_difference",
)
CSV_FIELDS = ("clip_id", "predicted_emotion", *MEASURES)
MOUTH_CORNERS = (48, 54)
BROWS = RIGHT_BROW + LEFT_BROW


@dataclass(frozen=True)
class ClipEmotionControl:
    clip_id: str
    predicted_emotion: str  # argmax of the LLF encoder's distribution averaged over the clip
    predicted_probabilities: tuple[float, ...]  # that average, in EMOTIONS order
    corner_distance: float
    corner_lift: float
    brow_distance: float
    brow_lift: float
    width_difference: float
    gap_difference: float


@dataclass(frozen=True)
class EmotionControlSummary:
    first: str
    second: str
    clips: list[ClipEmotionControl]

    def mean(self, name: str) -> float:
        return float(np.mean([getattr(clip, name) for clip in self.clips])) if self.clips else float("nan")

    def predicted_counts(self) -> Counter:
        return Counter(clip.predicted_emotion for clip in self.clips)


def _lift(points_first: np.ndarray, points_second: np.ndarray, index) -> float:
    return float((points_second[:, index, 1] - points_first[:, index, 1]).mean())


def _distance(points_first: np.ndarray, points_second: np.ndarray, index) -> float:
    return float(np.linalg.norm(points_first[:, index] - points_second[:, index], axis=-1).mean())


def _width(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, MOUTH_CORNERS[0]] - points[:, MOUTH_CORNERS[1]], axis=-1)


def clip_emotion_control(module, mfcc, llf, reference, clip_id: str, first: str, second: str, intensity=None):
    """:class:`ClipEmotionControl` of one clip's raw features from ``reference`` (68, 2)."""
    stream = module.landmark_stream(reference)
    stream(mfcc, llf)
    probabilities = torch.softmax(torch.cat(stream.emotion_logits), dim=-1).mean(dim=0).numpy()
    forced_first = module.predict_clip(mfcc, llf, reference, emotion=first, intensity=intensity).numpy()
    forced_second = module.predict_clip(mfcc, llf, reference, emotion=second, intensity=intensity).numpy()
    return ClipEmotionControl(
        clip_id=clip_id,
        predicted_emotion=EMOTIONS[int(np.argmax(probabilities))],
        predicted_probabilities=tuple(float(p) for p in probabilities),
        corner_distance=_distance(forced_first, forced_second, list(MOUTH_CORNERS)),
        corner_lift=_lift(forced_first, forced_second, list(MOUTH_CORNERS)),
        brow_distance=_distance(forced_first, forced_second, list(BROWS)),
        brow_lift=_lift(forced_first, forced_second, list(BROWS)),
        width_difference=float((_width(forced_first) - _width(forced_second)).mean()),
        gap_difference=float((inner_lip_gap(forced_first) - inner_lip_gap(forced_second)).mean()),
    )


def emotion_control(records, module, first: str = "happy", second: str = "sad", intensity=None):
    """:class:`EmotionControlSummary` over cached clips (``ClipRecord``), each from its first frame."""
    clips = []
    for record in records:
        arrays = load_clip(record.path, ("mfcc", "llf", "landmarks")).arrays
        reference = arrays["landmarks"][0].astype(np.float32)
        clips.append(
            clip_emotion_control(
                module, arrays["mfcc"], arrays["llf"], reference, record.clip_id, first, second, intensity
            )
        )
    return EmotionControlSummary(first, second, clips)


def emotion_control_markdown(summary: EmotionControlSummary, dataset_label: str) -> str:
    counts = summary.predicted_counts()
    read = ", ".join(f"{name} {counts[name]}" for name in EMOTIONS if counts[name]) or "none"
    mean_probabilities = (
        np.mean([clip.predicted_probabilities for clip in summary.clips], axis=0)
        if summary.clips
        else np.full(len(EMOTIONS), np.nan)
    )
    first, second = summary.first, summary.second
    return "\n".join(
        [
            "## The emotion input",
            "",
            f"{dataset_label}, {len(summary.clips)} clips. The LLF encoder's reading (argmax of its "
            f"distribution averaged over each clip): {read}. Mean distribution: "
            + ", ".join(f"{name} {p:.2f}" for name, p in zip(EMOTIONS, mean_probabilities))
            + ".",
            "",
            f"`--emotion {first}` against `--emotion {second}` on the same audio and reference, "
            "canonical-frame pixels, means over frames and clips (lift: positive when "
            f"{first} puts the points higher):",
            "",
            "| mouth corners moved | mouth corners lift | brows moved | brows lift | mouth width | inner-lip gap |",
            "|---|---|---|---|---|---|",
            "| " + " | ".join(f"{summary.mean(name):.2f}" for name in MEASURES) + " |",
            "",
        ]
    )


def emotion_control_csv(summary: EmotionControlSummary) -> str:
    lines = [",".join(CSV_FIELDS + tuple(f"p_{name}" for name in EMOTIONS))]
    for clip in summary.clips:
        cells = [clip.clip_id, clip.predicted_emotion]
        cells += [f"{getattr(clip, name):.6g}" for name in MEASURES]
        cells += [f"{p:.6g}" for p in clip.predicted_probabilities]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def write_emotion_control(summary: EmotionControlSummary, dataset_label: str, out_dir: Path) -> Path:
    """``out_dir/emotion_control.md`` and ``.csv`` (written atomically); returns the markdown's path."""
    markdown = Path(out_dir) / "emotion_control.md"
    atomic_write_bytes(markdown.with_suffix(".csv"), emotion_control_csv(summary).encode())
    atomic_write_bytes(markdown, emotion_control_markdown(summary, dataset_label).encode())
    return markdown
