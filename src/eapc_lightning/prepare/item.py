"""Preparing one raw clip (an item): its media in, its cached clip file(s) and summary record out.

Per item:

1. labels from the dataset's naming (eapc_lightning.prepare.sources); an unparseable name fails the item;
2. audio decoded to 16 kHz mono; no audio track -> "no audio", peak below ``silence_peak`` -> "silent audio";
3. video decoded at 25 fps by timestamp (eapc_lightning.prepare.video); T = video frames, or the audio's
   length when the audio is more than one frame shorter (recorded as a warning);
4. MediaPipe landmarks (a fresh tracking detector per clip, so a clip's result never depends on which
   clips the same process prepared before); gaps filled or the clip split / dropped
   (eapc_lightning.landmarks.gaps);
5. one similarity per segment into the canonical face frame, aligned crops at ``crop_size`` (JPEG);
6. MFCC windows and LLFs for the T frames; every segment written with ``save_clip``.

``prepare_item`` never raises for bad input: every failure becomes the item's record (status failed,
with the reason naming the file).
"""

import logging
import time
from pathlib import Path

import numpy as np

from eapc_lightning.audio import extract_features, load_audio
from eapc_lightning.data.cache import encode_faces, save_clip
from eapc_lightning.errors import InputError
from eapc_lightning.landmarks.align import apply_transform, clip_alignment, warp_face
from eapc_lightning.landmarks.gaps import NoUsableFaceError, fill_gaps
from eapc_lightning.prepare.settings import PrepareSettings
from eapc_lightning.prepare.sources import SourceItem
from eapc_lightning.prepare.video import iter_frames, probe_video

log = logging.getLogger(__name__)

# the source facts a clip's meta, its item's record and its manifest entry all carry
SOURCE_STAT_KEYS = (
    "source_video",
    "source_audio",
    "video_size",
    "video_mtime_ns",
    "audio_size",
    "audio_mtime_ns",
)


def source_stats(item: SourceItem) -> dict:
    """Paths, sizes and mtimes of an item's sources (what decides whether its clips are stale)."""
    stats = {"source_video": str(item.video.resolve()), "source_audio": str(item.audio.resolve())}
    for key, path in (("video", item.video), ("audio", item.audio)):
        try:
            stat = path.stat()
            stats[f"{key}_size"], stats[f"{key}_mtime_ns"] = stat.st_size, stat.st_mtime_ns
        except OSError:
            stats[f"{key}_size"], stats[f"{key}_mtime_ns"] = None, None
    return stats


def _load_speech(item: SourceItem, settings: PrepareSettings) -> np.ndarray:
    try:
        samples = load_audio(item.audio, settings.audio.sample_rate)
    except InputError as error:
        if error.reason in ("no audio stream", "audio stream holds no samples"):
            raise InputError(
                item.audio, "no audio (the file has no audio track and no separate audio file was found)"
            ) from error
        raise
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak < settings.silence_peak:
        raise InputError(item.audio, f"silent audio (peak {peak:.2g} below {settings.silence_peak:g})")
    return samples


def _detect(item: SourceItem, settings: PrepareSettings, limit: int):
    """Landmarks of the first ``limit`` frames; returns points, found, kept frames (or None), total, multi."""
    from eapc_lightning.landmarks.detect import FaceLandmarkDetector

    budget = settings.frame_memory_mb * 2**20
    points, found, frames = [], [], []
    kept_bytes, total, multi_face = 0, 0, 0
    with FaceLandmarkDetector(video=True, min_confidence=settings.min_detection_confidence) as detector:
        for frame in iter_frames(item.video, settings.fps):
            total += 1
            if total > limit:
                continue  # frames past the audio are only counted
            landmarks = detector(frame)
            multi_face += detector.last_face_count > 1
            found.append(landmarks is not None)
            points.append(landmarks if landmarks is not None else np.full((68, 2), np.nan, np.float32))
            if frames is not None:
                kept_bytes += frame.nbytes
                if kept_bytes <= budget:
                    frames.append(frame)
                else:
                    frames = None
    return np.stack(points).astype(np.float32), np.asarray(found), frames, total, multi_face


def _aligned_crops(item, settings, frames, segments_with_matrix) -> list[np.ndarray]:
    """Aligned face crops of each segment, from kept frames or from a second decoding pass."""
    crops: list[list[np.ndarray]] = [[] for _ in segments_with_matrix]
    last_stop = max(segment.stop for segment, _ in segments_with_matrix)
    source = frames if frames is not None else iter_frames(item.video, settings.fps, last_stop)
    for index, frame in enumerate(source):
        for slot, (segment, matrix) in enumerate(segments_with_matrix):
            if segment.start <= index < segment.stop:
                crops[slot].append(warp_face(frame, matrix, settings.crop_size))
        if index + 1 >= last_stop:
            break
    return [np.stack(parts) for parts in crops]


def new_record(item: SourceItem, status: str, reason: str | None = None) -> dict:
    """An item's line in the summary: status (ok / skipped / failed), reason, labels, sources, output."""
    record = {
        "item": item.clip_id,
        "status": status,
        "reason": reason,
        "warnings": [],
        "clips": [],
        "frames": 0,
        "speaker": item.speaker,
        "emotion": item.emotion,
        "level": item.level,
        "seconds": 0.0,
    }
    record.update(source_stats(item))
    return record


def prepare_item(
    item: SourceItem, settings: PrepareSettings, clips_dir: str | Path, settings_hash: str
) -> dict:
    """Prepare one item; returns its summary record (status ok or failed). Never raises for bad input."""
    record = new_record(item, "failed")
    started = time.perf_counter()
    try:
        if item.error is not None:
            raise InputError(item.video, item.error)
        _prepare(item, settings, Path(clips_dir), settings_hash, record)
        record["status"] = "ok"
    except InputError as error:
        record["reason"] = str(error)
    except NoUsableFaceError as error:
        record["reason"] = f"{item.video}: {error}"
    except Exception as error:  # an unexpected failure of one item must not stop the batch
        log.exception("unexpected error preparing %s", item.video)
        record["reason"] = f"{item.video}: unexpected {type(error).__name__}: {error}"
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def _prepare(
    item: SourceItem, settings: PrepareSettings, clips_dir: Path, settings_hash: str, record: dict
) -> None:
    probe_video(item.video)  # fails fast on empty / non-video / truncated files
    samples = _load_speech(item, settings)
    audio_frames = len(samples) // settings.audio.samples_per_frame
    points, found, frames, video_frames, multi_face = _detect(item, settings, limit=audio_frames + 1)
    num_frames = video_frames
    if audio_frames < video_frames - 1:
        num_frames = audio_frames
        record["warnings"].append(
            f"audio ({audio_frames} frames) shorter than video ({video_frames} frames): truncated to the audio"
        )
    if num_frames < 1:
        raise InputError(item.audio, "audio shorter than one video frame")
    if multi_face:
        record["warnings"].append(f"{multi_face} frames show more than one face: the largest was used")
    report = fill_gaps(
        points[:num_frames],
        found[:num_frames],
        max_gap=settings.max_gap,
        policy=settings.gap_policy,
        min_segment_frames=settings.min_segment_frames,
    )
    record["warnings"].extend(report.notes)
    if frames is not None:
        frames = frames[:num_frames]
    features = extract_features(samples, num_frames, settings.audio)
    with_matrix = [(segment, clip_alignment(segment.landmarks)) for segment in report.segments]
    crops = _aligned_crops(item, settings, frames, with_matrix)
    names = (
        [item.clip_id]
        if len(with_matrix) == 1
        else [f"{item.clip_id}_seg{k}" for k in range(len(with_matrix))]
    )
    for name, (segment, matrix), faces in zip(names, with_matrix, crops):
        faces_jpeg, faces_offsets = encode_faces(faces, settings.jpeg_quality)
        window = slice(segment.start, segment.stop)
        arrays = {
            "mfcc": features["mfcc"][window],
            "llf": features["llf"][window],
            "landmarks": apply_transform(matrix, segment.landmarks),
            "landmarks_raw": segment.landmarks.astype(np.float32),
            "detected": segment.detected.astype(bool),
            "align_matrix": matrix.astype(np.float32),
            "faces_jpeg": faces_jpeg,
            "faces_offsets": faces_offsets,
        }
        meta = {
            "clip_id": name,
            "item": item.clip_id,
            "item_clips": names,
            "dataset": item.dataset,
            "speaker": item.speaker,
            "emotion": item.emotion,
            "level": item.level,
            "view": item.view,
            "num_frames": segment.num_frames,
            "frame_range": [segment.start, segment.stop],
            "fps": settings.fps,
            "crop_size": settings.crop_size,
            "settings_hash": settings_hash,
            "audio_features": settings.audio.to_dict(),
            "warnings": list(record["warnings"]),
            **{key: record[key] for key in SOURCE_STAT_KEYS},
            **{f"label_{key}": value for key, value in item.extra.items()},
        }
        save_clip(clips_dir / f"{name}.npz", arrays, meta)
        record["clips"].append(name)
        record["frames"] += segment.num_frames
