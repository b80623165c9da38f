"""One test clip through the whole pipeline, scored as in the paper's section 4.2.

Per clip: the cached raw MFCC/LLF features -> ``A2LModule.predict_clip`` with the clip's first frame's
aligned landmarks as the reference -> vid2vid frames with the first aligned face crop as the reference
image -> MediaPipe landmarks re-detected on the generated frames (video mode, frames upscaled to the
canonical 256 frame) -> M-LD, M-LVD, F-LD, F-LVD against the clip's aligned ground-truth landmarks, and
PSNR / SSIM against the ground-truth crops at the generator's resolution. Frames where MediaPipe finds no
face in a generated frame are left out of the landmark metrics (the count is recorded); LVD uses only
pairs of consecutive frames that were both found.

The predicted landmarks are also scored directly (``a2l_*`` columns), which isolates the first stage, as
is the clip's first-frame reference held still over the clip (``held_*``: what a model that ignores the
audio would score). The inner-lip gap of the predicted and true landmarks is compared frame by frame
(``eapc_lightning.metrics.mouth_opening``): does the mouth open when the speaker's does, and as far.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from eapc_lightning.constants import CANONICAL_FACE_SIZE, MOUTH
from eapc_lightning.data.cache import load_clip
from eapc_lightning.landmarks.detect import FaceLandmarkDetector
from eapc_lightning.metrics.landmark import centre_frames
from eapc_lightning.metrics.mouth_opening import MouthOpening, mouth_opening_stats

LANDMARK_METRICS = ("M-LD", "M-LVD", "F-LD", "F-LVD")


@dataclass
class LandmarkSums:
    """Distance sums and counts per metric, so clips pool exactly (as the torchmetrics states do)."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LANDMARK_METRICS, 0.0))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LANDMARK_METRICS, 0))

    def add(self, prediction: np.ndarray, target: np.ndarray, found: np.ndarray) -> None:
        """Score frames where ``found``; velocities only between consecutive found frames."""
        prediction = centre_frames(torch.as_tensor(prediction, dtype=torch.float64))
        target = centre_frames(torch.as_tensor(target, dtype=torch.float64))
        found = torch.as_tensor(found, dtype=torch.bool)
        pairs = found[1:] & found[:-1]
        for region, index in (("M", list(MOUTH)), ("F", list(range(68)))):
            p, t = prediction[:, index], target[:, index]
            distance = (p - t).norm(dim=-1)[found]
            velocity = ((p.diff(dim=0) - t.diff(dim=0)).norm(dim=-1))[pairs]
            self.sums[f"{region}-LD"] += float(distance.sum())
            self.counts[f"{region}-LD"] += int(distance.numel())
            self.sums[f"{region}-LVD"] += float(velocity.sum())
            self.counts[f"{region}-LVD"] += int(velocity.numel())

    def merge(self, other: "LandmarkSums") -> None:
        for name in LANDMARK_METRICS:
            self.sums[name] += other.sums[name]
            self.counts[name] += other.counts[name]

    def values(self) -> dict[str, float | None]:
        return {n: (self.sums[n] / self.counts[n] if self.counts[n] else None) for n in LANDMARK_METRICS}


@dataclass
class ClipOutcome:
    clip_id: str
    num_frames: int
    a2l: LandmarkSums
    held_still: LandmarkSums | None = None  # the first-frame reference repeated over the clip
    mouth: MouthOpening | None = None  # predicted vs true inner-lip gap
    held_mouth: MouthOpening | None = None  # held-still reference vs true inner-lip gap
    redetected: LandmarkSums | None = None
    frames_with_face: int | None = None
    psnr: float | None = None
    ssim: float | None = None
    generated: np.ndarray | None = None  # (T, S, S, 3) uint8 (kept only for the figure / FID)
    truth: np.ndarray | None = None  # (T, S, S, 3) uint8 ground-truth crops at the same size


def _unit(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def evaluate_clip(
    record,
    a2l_module,
    vid2vid_module=None,
    detector_confidence: float = 0.5,
) -> ClipOutcome:
    """Run and score one cached clip (``record`` from ``LandmarkDataModule.test_clips()``)."""
    keys = ("mfcc", "llf", "landmarks", "faces_jpeg", "faces_offsets")
    clip = load_clip(record.path, keys if vid2vid_module is not None else keys[:3])
    arrays = clip.arrays
    truth_landmarks = arrays["landmarks"].astype(np.float32)
    predicted = a2l_module.predict_clip(arrays["mfcc"], arrays["llf"], truth_landmarks[0]).numpy()
    truth_landmarks = truth_landmarks[: len(predicted)]
    every_frame = np.ones(len(predicted), bool)
    outcome = ClipOutcome(
        clip_id=record.clip_id,
        num_frames=len(predicted),
        a2l=LandmarkSums(),
        held_still=LandmarkSums(),
        mouth=mouth_opening_stats(predicted, truth_landmarks),
    )
    outcome.a2l.add(predicted, truth_landmarks, every_frame)
    held = np.repeat(truth_landmarks[:1], len(truth_landmarks), axis=0)
    outcome.held_still.add(held, truth_landmarks, every_frame)
    outcome.held_mouth = mouth_opening_stats(held, truth_landmarks)
    if vid2vid_module is None:
        return outcome

    faces = clip.faces(range(len(predicted)))
    stream = vid2vid_module.frame_stream(faces[0], truth_landmarks[0])
    generated = np.stack(list(stream(predicted)))
    size = generated.shape[1]
    truth = np.stack([cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA) for face in faces])
    outcome.generated, outcome.truth = generated, truth
    outcome.psnr = float(peak_signal_noise_ratio(_unit(generated), _unit(truth), data_range=1.0))
    outcome.ssim = float(structural_similarity_index_measure(_unit(generated), _unit(truth), data_range=1.0))

    scale = CANONICAL_FACE_SIZE / size
    with FaceLandmarkDetector(video=True, max_faces=1, min_confidence=detector_confidence) as detector:
        upscaled = (
            cv2.resize(frame, (CANONICAL_FACE_SIZE, CANONICAL_FACE_SIZE), interpolation=cv2.INTER_CUBIC)
            if scale != 1
            else frame
            for frame in generated
        )
        points, found = detector.detect_sequence(upscaled)
    outcome.frames_with_face = int(found.sum())
    outcome.redetected = LandmarkSums()
    outcome.redetected.add(np.nan_to_num(points), truth_landmarks, found)
    return outcome
