"""Does a rendered talking face follow its driving landmarks? (``eapc evaluate-render``)

A renderer (the vid2vid generator, the mesh warp) turns a landmark sequence into frames. Whether the
pictured mouth opens when the landmarks say so is measured from the pictures alone: the project's
MediaPipe detector (``eapc_lightning.landmarks.detect``, tracking mode, one detector per video) finds
the 68 landmarks again on every generated frame; frames where it finds no face are filled from the
neighbouring detections (``eapc_lightning.landmarks.gaps.interpolate_missing``). Re-detected points are
taken into the canonical 256 frame (the frames are aligned crops of ``size`` pixels: a scale by
``256 / size``), and their inner-lip gap is compared with the driving landmarks' by
``eapc_lightning.metrics.mouth_opening.mouth_opening_stats`` (re-detected as "predicted", driving as
"true"):

* **r**, the Pearson correlation over frames: does the pictured mouth open when the landmarks open;
  undefined (None) when either gap does not vary, e.g. a still picture;
* **std ratio**, std(re-detected gap) / std(driving gap): does it open as much (1 = as much).

Beside that, how much the frames differ from the reference photo (the aligned crop at the same size),
as the mean absolute difference in 0-255 grey levels over the RGB pixels of two boxes, averaged over
frames:

* the **mouth** box, around the reference's mouth points 48-67, reaching 0.35 D below them for the
  dropping jaw (D = the reference's inter-ocular distance);
* the **forehead** box, between the outer brow ends, from 0.45 D to 0.1 D above the brows: what moves
  there is head motion and rendering noise, not speech.

``mouth_difference_r`` is the correlation over frames between the mouth box's difference and the
driving gap: the mouth region changes where (when) the landmarks open the mouth. A video that is the
reference photo repeated has no difference anywhere, a std ratio near 0 and r undefined or meaningless
(MediaPipe's tracking jitters by a fraction of a pixel on identical frames); it fails
:meth:`RenderFidelity.follows`.

``eapc evaluate-render`` (``eapc_lightning.commands.evaluate_render``) runs ``eapc generate``'s pipeline
for every face x speech x renderer and measures each video here; :func:`write_tables` writes
``render_fidelity.md`` and ``render_fidelity.csv`` (each atomically: temporary file, then rename), failed
items (a photo without a face, a missing checkpoint) with their reason.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eapc_lightning.constants import CANONICAL_FACE_SIZE, LEFT_EYE, RIGHT_EYE
from eapc_lightning.fileio import atomic_write_bytes
from eapc_lightning.landmarks.gaps import NoUsableFaceError, interpolate_missing
from eapc_lightning.metrics.mouth_opening import MouthOpening, inner_lip_gap, mouth_opening_stats, pearson

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# a video follows its landmarks when r is above FOLLOW_R and its mouth box differs from the reference
# FOLLOW_CONTRAST times as much as its forehead box
FOLLOW_R = 0.5
FOLLOW_CONTRAST = 1.5


@dataclass(frozen=True)
class Box:
    """Pixel rows ``top:bottom`` and columns ``left:right`` of a frame."""

    top: int
    bottom: int
    left: int
    right: int

    def of(self, frame: np.ndarray) -> np.ndarray:
        return frame[self.top : self.bottom, self.left : self.right]


def _box(x0: float, x1: float, y0: float, y1: float, size: int) -> Box:
    top, bottom = int(np.clip(np.floor(y0), 0, size - 1)), int(np.clip(np.ceil(y1), 1, size))
    left, right = int(np.clip(np.floor(x0), 0, size - 1)), int(np.clip(np.ceil(x1), 1, size))
    if bottom <= top or right <= left:
        raise ValueError(f"empty region {x0:.0f}-{x1:.0f} x {y0:.0f}-{y1:.0f} in a {size}-px frame")
    return Box(top, bottom, left, right)


def mouth_and_forehead(reference_landmarks: np.ndarray, size: int) -> tuple[Box, Box]:
    """The mouth and forehead boxes of a ``size``-px frame, from the (68, 2) canonical reference landmarks."""
    points = np.asarray(reference_landmarks, np.float64) * (size / CANONICAL_FACE_SIZE)
    eyes = np.linalg.norm(points[list(LEFT_EYE)].mean(axis=0) - points[list(RIGHT_EYE)].mean(axis=0))
    mouth = points[48:68]
    low, high = mouth.min(axis=0), mouth.max(axis=0)
    mouth_box = _box(
        low[0] - 0.1 * eyes, high[0] + 0.1 * eyes, low[1] - 0.1 * eyes, high[1] + 0.35 * eyes, size
    )
    brows = points[17:27]
    top = brows[:, 1].min()
    forehead_box = _box(brows[0, 0], brows[-1, 0], top - 0.45 * eyes, top - 0.1 * eyes, size)
    return mouth_box, forehead_box


def _difference(frame: np.ndarray, reference: np.ndarray, box: Box) -> float:
    return float(np.abs(box.of(frame).astype(np.float32) - box.of(reference).astype(np.float32)).mean())


@dataclass(frozen=True)
class RenderFidelity:
    """How one rendered video follows its driving landmarks (gaps in pixels of the 256 frame)."""

    frames: int
    detected: int  # frames where the detector found a face
    mouth: MouthOpening | None  # re-detected ("predicted") against driving ("true"); None: no face at all
    mouth_difference: float  # mean |frame - reference| in the mouth box, 0-255
    forehead_difference: float  # the same in the forehead box
    # correlation over frames of the mouth box's difference and the driving gap
    mouth_difference_r: float | None

    @property
    def r(self) -> float | None:
        return None if self.mouth is None else self.mouth.r

    @property
    def std_ratio(self) -> float | None:
        return None if self.mouth is None else self.mouth.std_ratio

    @property
    def contrast(self) -> float | None:
        """Mouth difference over forehead difference; None when neither region changed."""
        if self.forehead_difference > 1e-6:
            return self.mouth_difference / self.forehead_difference
        return None if self.mouth_difference <= 1e-6 else float("inf")

    def follows(self, min_r: float = FOLLOW_R, min_contrast: float = FOLLOW_CONTRAST) -> bool:
        """The pictured mouth opens with the landmarks (r > min_r) and the mouth region changes more than
        the forehead (by ``min_contrast`` times)."""
        contrast = self.contrast
        return self.r is not None and self.r > min_r and contrast is not None and contrast > min_contrast


def measure_render(
    frames: Iterable[np.ndarray],
    driving: np.ndarray,
    reference_image: np.ndarray,
    reference_landmarks: np.ndarray,
) -> RenderFidelity:
    """Measure a rendered video (``frames``: (S, S, 3) uint8 RGB aligned crops, streamed) against its
    ``driving`` (T, 68, 2) canonical landmarks, the reference photo's aligned crop ``reference_image``
    (S, S, 3) and its (68, 2) canonical ``reference_landmarks``. Only the first min(T, frames) frames count.
    """
    from eapc_lightning.landmarks.detect import FaceLandmarkDetector

    driving = np.asarray(driving, np.float64)
    if driving.ndim != 3 or driving.shape[1:] != (68, 2) or len(driving) == 0:
        raise ValueError(f"driving landmarks must be (T >= 1, 68, 2), got {driving.shape}")
    reference_image = np.asarray(reference_image)
    size = reference_image.shape[0]
    if reference_image.shape != (size, size, 3):
        raise ValueError(f"the reference image must be a square RGB crop, got {reference_image.shape}")
    mouth_box, forehead_box = mouth_and_forehead(reference_landmarks, size)
    points, found, mouth_differences, forehead_differences = [], [], [], []
    with FaceLandmarkDetector(video=True, max_faces=1) as detector:
        for frame in frames:
            if len(points) == len(driving):
                break
            if frame.shape != reference_image.shape:
                raise ValueError(
                    f"frame {len(points)} is {frame.shape}, the reference {reference_image.shape}"
                )
            landmarks = detector(frame)
            found.append(landmarks is not None)
            points.append(np.full((68, 2), np.nan) if landmarks is None else landmarks)
            mouth_differences.append(_difference(frame, reference_image, mouth_box))
            forehead_differences.append(_difference(frame, reference_image, forehead_box))
    if not points:
        raise ValueError("the video has no frames")
    count = len(points)
    try:
        detected = interpolate_missing(np.stack(points), np.asarray(found)) * (CANONICAL_FACE_SIZE / size)
        mouth = mouth_opening_stats(detected, driving[:count])
    except NoUsableFaceError:
        mouth = None
    return RenderFidelity(
        frames=count,
        detected=int(np.sum(found)),
        mouth=mouth,
        mouth_difference=float(np.mean(mouth_differences)),
        forehead_difference=float(np.mean(forehead_differences)),
        mouth_difference_r=pearson(mouth_differences, inner_lip_gap(driving[:count])) if count > 1 else None,
    )


# ------------------------------------------------------------------------------ faces x speech x renderer


@dataclass
class RenderItem:
    """One face x speech x renderer: what was made and measured, or why it failed."""

    face: Path
    speech: Path
    renderer: str
    video: Path | None = None
    fidelity: RenderFidelity | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fidelity is not None


def face_files(entries: Sequence[str | Path]) -> list[Path]:
    """Image files named in ``entries``: files as given, folders expanded to their images (sorted)."""
    found = []
    for entry in map(Path, entries):
        if entry.is_dir():
            found += sorted(p for p in entry.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            found.append(entry)  # a missing or unreadable file is recorded as failed when it is used
    return found


def write_tables(items: Sequence[RenderItem], renderers: Sequence[str], out: Path, command: str = "") -> None:
    """``out/render_fidelity.csv`` (one row per item) and ``out/render_fidelity.md``, each written atomically."""
    atomic_write_bytes(Path(out) / "render_fidelity.csv", items_csv(items).encode())
    atomic_write_bytes(Path(out) / "render_fidelity.md", items_markdown(items, renderers, command).encode())


def _number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return "inf" if value == float("inf") else f"{value:.{digits}f}"


CSV_COLUMNS = (
    "face", "speech", "renderer", "status", "frames", "detected", "r", "std_ratio", "driving_gap_min",
    "driving_gap_max", "detected_gap_min", "detected_gap_max", "mouth_difference", "forehead_difference",
    "mouth_difference_r", "follows", "video", "error",
)  # fmt: skip


def _row(item: RenderItem) -> dict:
    row = {"face": str(item.face), "speech": str(item.speech), "renderer": item.renderer}
    row["status"] = "ok" if item.ok else "failed"
    row["video"] = "" if item.video is None else str(item.video)
    row["error"] = item.error or ""
    measured = item.fidelity
    if measured is not None:
        mouth = measured.mouth
        row.update(
            frames=measured.frames,
            detected=measured.detected,
            r=measured.r,
            std_ratio=measured.std_ratio,
            driving_gap_min=None if mouth is None else mouth.true_min,
            driving_gap_max=None if mouth is None else mouth.true_max,
            detected_gap_min=None if mouth is None else mouth.predicted_min,
            detected_gap_max=None if mouth is None else mouth.predicted_max,
            mouth_difference=measured.mouth_difference,
            forehead_difference=measured.forehead_difference,
            mouth_difference_r=measured.mouth_difference_r,
            follows=measured.follows(),
        )
    return row


def items_csv(items: Sequence[RenderItem]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow({key: "" if value is None else value for key, value in _row(item).items()})
    return buffer.getvalue()


def _mean(values) -> float | None:
    values = [value for value in values if value is not None and np.isfinite(value)]
    return float(np.mean(values)) if values else None


def items_markdown(items: Sequence[RenderItem], renderers: Sequence[str], command: str = "") -> str:
    lines = ["# Does the rendered face follow its landmarks?", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += [
        "r: Pearson correlation over frames between the inner-lip gap MediaPipe re-detects on the frames and "
        "the driving landmarks' gap (256-px face frame); std ratio: std(re-detected) / std(driving). "
        "Differences: mean |frame - reference photo| (0-255) in the mouth and the forehead boxes; "
        f"diff r: correlation over frames of the mouth difference with the driving gap. Follows: r > {FOLLOW_R} "
        f"and mouth difference > {FOLLOW_CONTRAST} x forehead difference.",
        "",
        "| renderer | items ok | follows | mean r | mean std ratio | mouth diff | forehead diff | mean diff r |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for renderer in renderers:
        done = [item.fidelity for item in items if item.renderer == renderer and item.ok]
        total = sum(1 for item in items if item.renderer == renderer)
        lines.append(
            f"| {renderer} | {len(done)}/{total} | {sum(f.follows() for f in done)} | "
            f"{_number(_mean(f.r for f in done))} | {_number(_mean(f.std_ratio for f in done))} | "
            f"{_number(_mean(f.mouth_difference for f in done), 1)} | "
            f"{_number(_mean(f.forehead_difference for f in done), 1)} | "
            f"{_number(_mean(f.mouth_difference_r for f in done))} |"
        )
    lines += [
        "",
        "| face | speech | renderer | frames (face found) | r | std ratio | driving gap | re-detected gap "
        "| mouth diff | forehead diff | diff r | follows |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    failures = []
    for item in items:
        measured = item.fidelity
        if measured is None:
            failures.append(f"- {item.face.name} x {item.speech.name} x {item.renderer}: {item.error}")
            lines.append(f"| {item.face.name} | {item.speech.name} | {item.renderer} | failed |" + " - |" * 8)
            continue
        mouth = measured.mouth
        driving = "-" if mouth is None else f"{mouth.true_min:.1f} to {mouth.true_max:.1f}"
        seen = "-" if mouth is None else f"{mouth.predicted_min:.1f} to {mouth.predicted_max:.1f}"
        lines.append(
            f"| {item.face.name} | {item.speech.name} | {item.renderer} | {measured.frames} ({measured.detected}) "
            f"| {_number(measured.r)} | {_number(measured.std_ratio)} | {driving} | {seen} "
            f"| {measured.mouth_difference:.1f} | {measured.forehead_difference:.1f} "
            f"| {_number(measured.mouth_difference_r)} | {'yes' if measured.follows() else 'no'} |"
        )
    if failures:
        lines += ["", "Failed:", "", *failures]
    notes = [f"- {i.face.name} x {i.speech.name} x {i.renderer}: {note}" for i in items for note in i.notes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"
