"""One test clip through the whole pipeline, scored under an evaluation protocol (``protocol.py``).

Per clip: the cached raw MFCC/LLF features -> ``A2LModule.predict_clip`` with frame 0's aligned landmarks
as the reference -> vid2vid frames with frame 0's face crop as the reference image. Frame 0 conditions
both stages and is never scored. Rows, each a :class:`~eapc_lightning.evaluation.scores.Scores`:

- ``predicted``: the a2l landmarks against the clip's cached landmarks (MediaPipe's, from the source
  video), so only under a MediaPipe protocol; ``held_still``: frame 0's landmarks repeated (what a model
  that ignores the audio scores). The inner-lip gap of both is compared with the true one
  (``eapc_lightning.metrics.mouth_opening``).
- ``pipeline``: the generated frames (with several vid2vid models, one row per model, each
  a :class:`VideoModel` with its own key, all from the same a2l landmarks); ``output_path``: the true frames encoded as the generator's mp4 is
  (H.264) at the generator's size, the floor that detector and codec noise set; ``copy_reference``: frame
  0's face repeated (doing nothing). Each is measured by the protocol exactly as the true frames at the
  generator's size are, and scored against them: landmarks (M-LD, M-LVD, F-LD, F-LVD) and PSNR / SSIM.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np

from eapc_lightning.data.cache import load_clip
from eapc_lightning.evaluation.measure import FrameMeasurer, Measured, matched_indices, through_output_path
from eapc_lightning.evaluation.protocol import REFERENCE_FRAMES, EvaluationProtocol
from eapc_lightning.evaluation.scores import Scores
from eapc_lightning.landmarks.align import align_frames
from eapc_lightning.metrics.image import per_frame_psnr_ssim
from eapc_lightning.metrics.mouth_opening import MouthOpening, inner_lip_gap, mouth_opening_stats, pearson

LANDMARK_ROWS = ("predicted", "held_still")
VIDEO_ROWS = ("pipeline", "output_path", "copy_reference")
PIPELINE_ROW = "pipeline"  # the key of a single vid2vid model's row


@dataclass(frozen=True)
class VideoModel:
    """One landmark-to-video model scored as its own row of Table 1."""

    key: str  # the row's key: per_clip.csv columns <key>_<metric>; "pipeline" for a single model
    module: object  # a Vid2VidModule (its frame_stream generates the frames)
    name: str = ""  # the row's method name in the tables ("" = the default name of ``key``)
    source: str = ""  # the row's source column ("" = the table's)


def video_models(vid2vid) -> list[VideoModel]:
    """The rows of ``vid2vid``: None -> none, a module -> the ``pipeline`` row, a list of VideoModel as is."""
    if vid2vid is None:
        return []
    if isinstance(vid2vid, (list, tuple)):
        keys = [model.key for model in vid2vid]
        clash = {key for key in keys if key in LANDMARK_ROWS + VIDEO_ROWS[1:] or keys.count(key) > 1}
        if clash:
            raise ValueError(f"vid2vid row keys must be unique and not a reference row's: {sorted(clash)}")
        return list(vid2vid)
    return [VideoModel(PIPELINE_ROW, vid2vid)]


@dataclass
class ClipOutcome:
    record: object  # the ClipRecord (clip_id, speaker, emotion, level)
    num_frames: int
    scores: dict[str, Scores] = field(default_factory=dict)
    faces_found: dict[str, tuple[int, int]] = field(default_factory=dict)  # row -> (found, scored)
    mouth: MouthOpening | None = None  # predicted vs true inner-lip gap
    held_mouth: MouthOpening | None = None  # held-still reference vs true inner-lip gap
    level_mouth_r: float | None = None  # Pearson r of the audio's RMS level (dB) and the true inner-lip gap
    fid_frames: dict[str, tuple] = field(default_factory=dict)  # row -> (its frames, true frames) for FID
    generated: np.ndarray | None = None  # (T, S, S, 3) uint8, for the figure
    truth: np.ndarray | None = None


def _aligned(protocol: EvaluationProtocol, side: np.ndarray, truth: np.ndarray, found: np.ndarray):
    """Both sequences as the protocol scores them: per-frame similarity onto the true clip's mean shape,
    or as measured (``region_centroid`` centres inside the scoring)."""
    if protocol.alignment != "per_frame_similarity" or not found.any():
        return side, truth
    target = np.nanmean(truth[found], axis=0)
    points = protocol.alignment_points
    return align_frames(side, target, points), align_frames(truth, target, points)


def score_landmarks(
    protocol: EvaluationProtocol, side: np.ndarray, truth: np.ndarray, found: np.ndarray, scores: Scores
) -> None:
    """Add the landmark terms of two equally long (T, 68, 2) sequences (scored frames only)."""
    side, truth = _aligned(protocol, side, truth, found)
    found = found & np.isfinite(side).all(axis=(1, 2)) & np.isfinite(truth).all(axis=(1, 2))
    scores.add_landmarks(side, truth, found, region_centroid=protocol.alignment == "region_centroid")


def _scored_pairs(protocol: EvaluationProtocol, generated: int, truth: int) -> tuple[np.ndarray, np.ndarray]:
    side, true = matched_indices(generated, truth, protocol.time_matching)
    return side[REFERENCE_FRAMES:], true[REFERENCE_FRAMES:]


def _evenly(indices: np.ndarray, count: int) -> np.ndarray:
    if count == 0 or len(indices) <= count:
        return indices
    return indices[np.linspace(0, len(indices), count, endpoint=False).astype(int)]


def score_video_row(
    protocol: EvaluationProtocol,
    frames: np.ndarray,
    measured: Measured,
    truth: np.ndarray,
    truth_measured: Measured,
    outcome: ClipOutcome,
    row: str,
) -> None:
    """Landmark and image terms of one row's frames against the true frames; FID frames kept."""
    side_index, true_index = _scored_pairs(protocol, len(frames), len(truth))
    found = measured.found[side_index] & truth_measured.found[true_index]
    scores = outcome.scores.setdefault(row, Scores())
    score_landmarks(protocol, measured.points[side_index], truth_measured.points[true_index], found, scores)
    outcome.faces_found[row] = (int(measured.found[side_index].sum()), len(side_index))
    if protocol.image_crop == "template":
        pairs = found  # EAT's crops exist only where its detector found the face on both sides
        side_images, true_images = measured.crops[side_index][pairs], truth_measured.crops[true_index][pairs]
    else:
        side_images, true_images = frames[side_index], truth[true_index]
    if len(side_images):
        psnr, ssim = per_frame_psnr_ssim(side_images, true_images, protocol.image_metrics)
        scores.add_terms("PSNR", psnr)
        scores.add_terms("SSIM", ssim)
    chosen = _evenly(np.arange(len(side_images)), protocol.fid_frames_per_clip)
    outcome.fid_frames[row] = (side_images[chosen], true_images[chosen])


def predict_cached_clip(a2l_module, arrays) -> np.ndarray:
    """The a2l landmarks (T, 68, 2) of a cached clip, in the canonical 256 frame of its ``landmarks``: its
    raw ``mfcc`` / ``llf`` arrays through ``predict_clip``, frame 0's landmarks as the reference. What
    ``eapc evaluate`` scores and what vid2vid is fine-tuned on (``evaluation.predicted_landmarks``)."""
    reference = arrays["landmarks"][0].astype(np.float32)
    return a2l_module.predict_clip(arrays["mfcc"], arrays["llf"], reference).numpy()


def evaluate_clip(
    record,
    a2l_module,
    vid2vid_module,
    protocol: EvaluationProtocol,
    measurer: FrameMeasurer | None = None,
) -> ClipOutcome:
    """Run and score one cached clip (``record`` from the DataModule's clip lists); ``vid2vid_module``: a
    module, a list of :class:`VideoModel` (one row each, frames of one size) or None (landmarks only)."""
    models = video_models(vid2vid_module)
    keys = ("mfcc", "llf", "landmarks", "faces_jpeg", "faces_offsets")
    clip = load_clip(record.path, keys if models else keys[:3])
    arrays = clip.arrays
    cached = arrays["landmarks"].astype(np.float32)
    predicted = predict_cached_clip(a2l_module, arrays)
    cached = cached[: len(predicted)]
    outcome = ClipOutcome(record=record, num_frames=len(predicted))
    if protocol.detector == "mediapipe":  # the cache's landmarks are MediaPipe's: a like-for-like truth
        side_index, true_index = _scored_pairs(protocol, len(predicted), len(cached))
        truth = cached[true_index]
        every = np.ones(len(side_index), bool)
        held = np.repeat(cached[:1], len(side_index), axis=0)
        for row, side in (("predicted", predicted[side_index]), ("held_still", held)):
            outcome.scores[row] = Scores()
            score_landmarks(protocol, side, truth, every, outcome.scores[row])
        outcome.mouth = mouth_opening_stats(predicted[side_index], truth)
        outcome.held_mouth = mouth_opening_stats(held, truth)
        level = 20 * np.log10(np.maximum(arrays["llf"][true_index, 0], 1e-6))  # LLF 0 is the frame's RMS
        outcome.level_mouth_r = pearson(level, inner_lip_gap(truth))
    if not models:
        return outcome

    measurer = measurer or FrameMeasurer(protocol)
    faces = clip.faces(range(len(predicted)))
    generated = {
        model.key: np.stack(list(model.module.frame_stream(faces[0], cached[0])(predicted)))
        for model in models
    }
    sizes = {key: frames.shape[1] for key, frames in generated.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"the vid2vid models make frames of different sizes {sizes}: one table needs one size"
        )
    size = sizes[models[0].key]
    truth = np.stack([cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA) for face in faces])
    truth_measured = measurer.measure(truth)
    copied_once = measurer.measure(truth[:1])
    copied = Measured(
        np.repeat(copied_once.points, len(truth), axis=0),
        np.repeat(copied_once.found, len(truth)),
        None if copied_once.crops is None else np.repeat(copied_once.crops, len(truth), axis=0),
    )
    encoded = through_output_path(truth)
    rows = (
        *((key, frames, measurer.measure(frames)) for key, frames in generated.items()),
        ("output_path", encoded, measurer.measure(encoded)),
        ("copy_reference", np.repeat(truth[:1], len(truth), axis=0), copied),
    )
    for row, frames, measured in rows:
        score_video_row(protocol, frames, measured, truth, truth_measured, outcome, row)
    outcome.generated, outcome.truth = generated[models[0].key], truth
    return outcome
