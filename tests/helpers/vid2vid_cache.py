"""Tiny prepared caches for the landmark-to-video tests (clips written with eapc_lightning.data.cache.save_clip).

``synthetic_face_clip``: a drawn face whose jaw and lips open and close and whose head drifts, with the
landmarks that drew it (realism does not matter for shape, DDP and optimiser tests).
``real_face_clip``: the first frames of a real MEAD front-view crop, detected, aligned and cropped with
the project's landmark pipeline.
"""

from pathlib import Path

import cv2
import numpy as np

from eapc_lightning.audio.features import AudioFeatureConfig
from eapc_lightning.constants import CANONICAL_FACE_SIZE, INNER_LIP, JAW, MOUTH, OUTER_LIP
from eapc_lightning.data.cache import encode_faces, save_clip
from eapc_lightning.landmarks.align import apply_transform, clip_alignment, warp_face
from eapc_lightning.synth.face import ASTRONAUT_LANDMARKS

# Generator widths small enough for CPU tests of shapes, optimiser steps and DDP.
TINY_GENERATOR = {
    "base_channels": 8,
    "max_channels": 16,
    "num_downsamples": 2,
    "num_adaptive_blocks": 2,
    "spade_hidden_channels": 8,
    "weight_mlp_hidden": 16,
    "attention_channels": 8,
    "flow_base_channels": 8,
    "flow_num_downsamples": 2,
    "flow_residual_blocks": 1,
}


def canonical_template() -> np.ndarray:
    """A real 68-point face shape in the canonical 256 frame."""
    points = ASTRONAUT_LANDMARKS.astype(np.float64)
    return apply_transform(clip_alignment(points[None]), points).astype(np.float32)


def synthetic_face_clip(num_frames: int, crop_size: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Landmarks (T, 68, 2) in the 256 frame and faces (T, crop, crop, 3) uint8 drawn from them."""
    rng = np.random.default_rng(seed)
    template = canonical_template()
    skin = rng.integers(120, 220, size=3)
    background = rng.integers(20, 100, size=3)
    landmarks, faces = [], []
    for t in range(num_frames):
        opening = 8.0 * (1 + np.sin(2 * np.pi * t / 6 + seed))  # pixels in the 256 frame
        points = template.copy()
        lower = [i for i in MOUTH if points[i, 1] > points[list(MOUTH), 1].mean()]
        points[lower, 1] += opening
        points[list(JAW[4:13]), 1] += opening * 0.6
        points += np.array([2.0 * np.sin(t / 3), 1.5 * np.cos(t / 4)], dtype=np.float32)
        canvas = np.empty((CANONICAL_FACE_SIZE, CANONICAL_FACE_SIZE, 3), np.uint8)
        canvas[:] = background
        outline = np.concatenate([points[list(JAW)], points[[26, 24, 19, 17]] - [0, 40]]).astype(np.int32)
        cv2.fillPoly(canvas, [outline], tuple(int(c) for c in skin))
        cv2.fillPoly(canvas, [points[list(OUTER_LIP)].astype(np.int32)], (170, 40, 50))
        cv2.fillPoly(canvas, [points[list(INNER_LIP)].astype(np.int32)], (30, 10, 10))
        for eye in (range(36, 42), range(42, 48)):
            cv2.fillPoly(canvas, [points[list(eye)].astype(np.int32)], (250, 250, 250))
        landmarks.append(points)
        faces.append(cv2.resize(canvas, (crop_size, crop_size), interpolation=cv2.INTER_AREA))
    return {"landmarks": np.stack(landmarks).astype(np.float32), "faces": np.stack(faces)}


def real_face_clip(video: Path, num_frames: int, crop_size: int = 64) -> dict[str, np.ndarray]:
    """The first ``num_frames`` frames of a real face video, aligned into the canonical frame."""
    from eapc_lightning.landmarks.detect import FaceLandmarkDetector
    from eapc_lightning.prepare.video import read_video

    frames = read_video(video, max_frames=num_frames)
    points, found = FaceLandmarkDetector(video=True).detect_sequence(frames)
    if not found.all():
        raise RuntimeError(f"{video}: face not found in every frame")
    matrix = clip_alignment(points)
    aligned = apply_transform(matrix, points).astype(np.float32)
    faces = np.stack([warp_face(frame, matrix, crop_size) for frame in frames])
    return {"landmarks": aligned, "faces": faces}


def write_clip(cache_dir: Path, clip_id: str, speaker: str, clip: dict[str, np.ndarray]) -> Path:
    """Save one clip with placeholder audio features (the video stage never reads them)."""
    num_frames = len(clip["landmarks"])
    faces_jpeg, faces_offsets = encode_faces(clip["faces"])
    arrays = {
        "mfcc": np.zeros((num_frames, 28, 12), np.float32),
        "llf": np.zeros((num_frames, 25), np.float32),
        "landmarks": clip["landmarks"],
        "landmarks_raw": clip["landmarks"],
        "detected": np.ones(num_frames, bool),
        "align_matrix": np.eye(2, 3, dtype=np.float32),
        "faces_jpeg": faces_jpeg,
        "faces_offsets": faces_offsets,
    }
    meta = {"clip_id": clip_id, "dataset": "test", "speaker": speaker, "emotion": None, "level": None}
    meta["audio_features"] = AudioFeatureConfig().to_dict()  # the settings the zero placeholders stand for
    meta["num_frames"] = num_frames
    path = cache_dir / "clips" / f"{clip_id}.npz"
    save_clip(path, arrays, meta)
    return path


def write_synthetic_cache(
    cache_dir: Path, speakers: tuple[str, ...] = ("a", "b", "c"), num_frames: int = 12, crop_size: int = 64
) -> Path:
    """One synthetic clip per speaker (so a speaker split gives train, val and test clips)."""
    for index, speaker in enumerate(speakers):
        write_clip(
            cache_dir, f"{speaker}_clip", speaker, synthetic_face_clip(num_frames, crop_size, seed=index)
        )
    return cache_dir
