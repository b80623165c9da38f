"""``eapc prepare``: raw media -> the clip cache (format in eapc_lightning.data.cache).

Per item (one raw clip):

1. labels from the dataset's naming (eapc_lightning.data.sources); an unparseable name fails the item;
2. audio decoded to 16 kHz mono; no audio track -> "no audio", peak below ``silence_peak`` -> "silent audio";
3. video decoded at 25 fps by timestamp (eapc_lightning.data.video); T = video frames, or the audio's
   length when the audio is more than one frame shorter (recorded as a warning);
4. MediaPipe landmarks (a fresh tracking detector per clip, so a clip's result never depends on which
   clips the same process prepared before); gaps filled or the clip split / dropped
   (eapc_lightning.landmarks.gaps);
5. one similarity per segment into the canonical face frame, aligned crops at ``crop_size`` (JPEG);
6. MFCC windows and LLFs for the T frames; every segment written with ``save_clip``.

Bookkeeping: ``manifest.json`` (or ``manifest.shard-<i>-of-<K>.json`` per shard) lists, per item, the
sources with their size and mtime, the settings hash and the clip files written; ``summary*.json``
records every item as ok / skipped / failed with reasons and warnings. A re-run skips items whose
sources and settings are unchanged (read from the manifest, or from the clips' own metadata when a
run was killed before its manifest was written) and redoes stale ones, removing clip files they no
longer produce. Every file is written atomically; temporary files left by a killed run of the same
shard are removed at start. A failing item never stops the batch.
"""

import concurrent.futures
import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import multiprocessing
import re
import sys
import time
from collections.abc import Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from eapc_lightning.audio import AudioFeatureConfig, extract_features, load_audio
from eapc_lightning.constants import VIDEO_FPS
from eapc_lightning.data.cache import atomic_write_json, encode_faces, save_clip
from eapc_lightning.data.sources import DATASETS, SourceItem, enumerate_items, filter_items
from eapc_lightning.data.video import iter_frames, probe_video
from eapc_lightning.errors import InputError
from eapc_lightning.landmarks.align import apply_transform, clip_alignment, warp_face
from eapc_lightning.landmarks.gaps import GAP_POLICIES, NoUsableFaceError, fill_gaps

log = logging.getLogger(__name__)

PIPELINE_VERSION = 1  # bump when the pipeline's output changes for the same settings
DEFAULT_MAX_GAP = 12  # frames (0.48 s at 25 fps) filled by interpolation
MANIFEST_FLUSH_SECONDS = 2.0
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp$")
_SEGMENT_SUFFIX = re.compile(r"_seg\d+$")


class PrepareUsageError(ValueError):
    """Invalid arguments to prepare (the only errors that stop a run)."""


@dataclass(frozen=True)
class PrepareSettings:
    """Every knob of the pipeline; the fields that change the output are hashed into ``digest()``."""

    crop_size: int = 256
    jpeg_quality: int = 92
    max_gap: int = DEFAULT_MAX_GAP
    gap_policy: str = "split"
    min_segment_frames: int = 25  # pieces of a split clip shorter than one training window are dropped
    min_detection_confidence: float = 0.5
    silence_peak: float = 1e-3  # peak amplitude (full scale 1.0) below which audio counts as silent
    fps: int = VIDEO_FPS
    audio: AudioFeatureConfig = field(default_factory=AudioFeatureConfig)
    frame_memory_mb: int = 1024  # above this a clip's frames are decoded twice instead of kept

    def digest(self) -> str:
        try:
            detector = metadata.version("mediapipe")
        except metadata.PackageNotFoundError:
            detector = "unknown"
        hashed = {
            "pipeline": PIPELINE_VERSION,
            "audio": self.audio.digest(),
            "mediapipe": detector,
            "fps": self.fps,
            "crop_size": self.crop_size,
            "jpeg_quality": self.jpeg_quality,
            "max_gap": self.max_gap,
            "gap_policy": self.gap_policy,
            "min_segment_frames": self.min_segment_frames,
            "min_detection_confidence": self.min_detection_confidence,
        }
        return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------- one item


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
            "warnings": list(record["warnings"]),
            **{key: record[key] for key in _STAT_KEYS},
            **{f"label_{key}": value for key, value in item.extra.items()},
        }
        save_clip(clips_dir / f"{name}.npz", arrays, meta)
        record["clips"].append(name)
        record["frames"] += segment.num_frames


_STAT_KEYS = (
    "source_video",
    "source_audio",
    "video_size",
    "video_mtime_ns",
    "audio_size",
    "audio_mtime_ns",
)


# ---------------------------------------------------------------------------------------- the cache


def shard_suffix(num_shards: int, shard_index: int) -> str:
    return "" if num_shards == 1 else f".shard-{shard_index}-of-{num_shards}"


def load_manifest(out: str | Path) -> dict[str, dict]:
    """All manifest entries of a cache, merged over ``manifest*.json`` (newer files win on overlap)."""
    entries: dict[str, dict] = {}
    files = sorted(Path(out).glob("manifest*.json"), key=lambda path: path.stat().st_mtime_ns)
    for path in files:
        try:
            entries.update(json.loads(path.read_text())["entries"])
        except (OSError, ValueError, KeyError) as error:
            log.warning("ignoring unreadable manifest %s: %s", path, error)
    return entries


def cached_clip_paths(out: str | Path) -> list[Path]:
    """Clip files of every item listed in the cache's manifests, sorted."""
    clips_dir = Path(out) / "clips"
    names = {name for entry in load_manifest(out).values() for name in entry["clips"]}
    return sorted(clips_dir / f"{name}.npz" for name in names)


def _read_meta(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return json.loads(str(archive["meta"]))
    except (OSError, ValueError, KeyError):
        return None


def _is_current(entry: dict, stats: dict, settings_hash: str) -> bool:
    return entry.get("settings_hash") == settings_hash and all(
        entry.get(key) == stats[key] for key in _STAT_KEYS
    )


def _up_to_date(item: SourceItem, entry: dict | None, clips_dir: Path, settings_hash: str) -> dict | None:
    """The manifest entry for ``item`` when its clips are current, else None."""
    stats = source_stats(item)
    if stats["video_size"] is None:
        return None
    if entry is not None and _is_current(entry, stats, settings_hash):
        if all((clips_dir / f"{name}.npz").is_file() for name in entry["clips"]):
            return entry
    # a killed run may have written clips but not yet its manifest: trust the clips' own metadata
    for first in (f"{item.clip_id}.npz", f"{item.clip_id}_seg0.npz"):
        meta = _read_meta(clips_dir / first) if (clips_dir / first).is_file() else None
        if meta is None or meta.get("item") != item.clip_id or not _is_current(meta, stats, settings_hash):
            continue
        metas = [_read_meta(clips_dir / f"{name}.npz") for name in meta["item_clips"]]
        if all(
            m is not None and m.get("item") == item.clip_id and _is_current(m, stats, settings_hash)
            for m in metas
        ):
            return _manifest_entry(item, settings_hash, metas)
    return None


def _manifest_entry(item: SourceItem, settings_hash: str, metas: list[dict]) -> dict:
    """An item's manifest entry, from the metadata of the clips it produced (sources as they were read)."""
    return {
        "dataset": item.dataset,
        "speaker": item.speaker,
        "emotion": item.emotion,
        "level": item.level,
        "settings_hash": settings_hash,
        "clips": [meta["clip_id"] for meta in metas],
        "num_frames": [int(meta["num_frames"]) for meta in metas],
        "warnings": list(metas[0].get("warnings", [])),
        **{key: metas[0][key] for key in _STAT_KEYS},
    }


def _remove_stale_clips(clips_dir: Path, item_id: str, keep: set[str]) -> None:
    """Delete clips an earlier run made from this item that this run did not make again."""
    candidates = [clips_dir / f"{item_id}.npz", *clips_dir.glob(f"{glob.escape(item_id)}_seg*.npz")]
    for path in candidates:
        if path.stem in keep or not path.is_file():
            continue
        meta = _read_meta(path)
        if meta is None or meta.get("item") == item_id:  # unreadable leftovers or this item's own
            path.unlink(missing_ok=True)


def _remove_own_temp_files(out: Path, own_ids: set[str], own_files: set[str]) -> int:
    """Delete temporary files a killed run of this shard left behind (never another shard's)."""
    removed = 0
    for folder in (out, out / "clips"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _TEMP_NAME.match(path.name)
            if match is None:
                continue
            target = match["target"]
            stem = target[: -len(".npz")] if target.endswith(".npz") else None
            mine = target in own_files or (
                stem is not None and (stem in own_ids or _SEGMENT_SUFFIX.sub("", stem) in own_ids)
            )
            if mine:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


# ---------------------------------------------------------------------------------------- workers

_WORKER_STATE: dict = {}


def _init_worker(settings: PrepareSettings, clips_dir: str, settings_hash: str) -> None:
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _WORKER_STATE.update(settings=settings, clips_dir=clips_dir, settings_hash=settings_hash)


def _worker_prepare(item: SourceItem) -> dict:
    state = _WORKER_STATE
    return prepare_item(item, state["settings"], state["clips_dir"], state["settings_hash"])


@contextlib.contextmanager
def _main_script_not_rerun():
    """Keep worker processes from running the parent's main script.

    multiprocessing starts each non-forked worker by re-running the parent's ``__main__`` file unless
    it was started with ``python -m``; a console script without a ``__main__`` guard would then start
    prepare again inside every worker. The workers need only this module, so while the pool runs the
    main module is presented to multiprocessing without its file.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    path = getattr(main, "__file__", None)
    hide = main is not None and spec is None and path is not None
    if hide:
        del main.__file__
    try:
        yield
    finally:
        if hide:
            main.__file__ = path


def _run_pool(items: list[SourceItem], workers: int, initargs: tuple, on_result) -> None:
    """Prepare ``items`` in a process pool; an item whose worker dies twice is recorded as failed."""
    queue = list(items)
    # Workers fork from a forkserver: a fresh process (forking this one could copy the state of its
    # threads, e.g. torch's OpenMP pool, and hang) that has imported the libraries and compiled
    # librosa's JIT code once (prepare_warmup).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["eapc_lightning.data.prepare_warmup"])
    with _main_script_not_rerun():
        _pool_loop(queue, workers, context, initargs, on_result)


def _pool_loop(queue: list[SourceItem], workers: int, context, initargs: tuple, on_result) -> None:
    attempts: dict[str, int] = {}
    while queue:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker, initargs=initargs
        ) as pool:
            running: dict[concurrent.futures.Future, SourceItem] = {}
            broken = False
            while (queue or running) and not broken:
                while queue and len(running) < 2 * workers:
                    item = queue.pop(0)
                    running[pool.submit(_worker_prepare, item)] = item
                done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    item = running.pop(future)
                    try:
                        on_result(future.result())
                    except BrokenProcessPool:
                        broken = True
                        attempts[item.clip_id] = attempts.get(item.clip_id, 0) + 1
                        if attempts[item.clip_id] >= 2:
                            reason = f"{item.video}: the worker process died while preparing this item"
                            on_result(new_record(item, "failed", reason))
                        else:
                            queue.insert(0, item)
            if broken:  # items still in flight go back to the queue for a fresh pool
                queue[:0] = [item for item in running.values() if item not in queue]


# ---------------------------------------------------------------------------------------- the run


def _check_usage(
    dataset, root, workers, num_shards, shard_index, limit, crop_size, max_gap, gap_policy
) -> None:
    if dataset not in DATASETS:
        raise PrepareUsageError(f"unknown dataset '{dataset}' (expected one of {', '.join(DATASETS)})")
    if not Path(root).is_dir():
        raise PrepareUsageError(f"dataset root {root} is not a folder")
    if workers < 1:
        raise PrepareUsageError("--workers must be at least 1")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise PrepareUsageError(f"--shard-index must be in [0, {num_shards}) and --num-shards at least 1")
    if limit is not None and limit < 0:
        raise PrepareUsageError("--limit must not be negative")
    if crop_size < 16:
        raise PrepareUsageError("--crop-size must be at least 16")
    if max_gap < 0:
        raise PrepareUsageError("--max-gap must not be negative")
    if gap_policy not in GAP_POLICIES:
        raise PrepareUsageError(f"--gap-policy must be one of {', '.join(GAP_POLICIES)}")


def select_items(
    dataset: str,
    root: str | Path,
    *,
    num_shards: int = 1,
    shard_index: int = 0,
    limit: int | None = None,
    speakers: Iterable[str] | None = None,
    emotions: Iterable[str] | None = None,
    views: Iterable[str] | None = ("front",),
    labels_csv: str | Path | None = None,
) -> list[SourceItem]:
    """The items one shard prepares: filtered, sorted by clip id, cut to ``limit``, then every K-th."""
    try:
        items = enumerate_items(dataset, root, labels_csv=labels_csv)
    except (InputError, ValueError) as error:
        raise PrepareUsageError(str(error)) from error
    items = filter_items(items, speakers=speakers, emotions=emotions, views=views)
    items.sort(key=lambda item: (item.clip_id, str(item.video)))
    if limit is not None:
        items = items[:limit]
    return items[shard_index::num_shards]


def prepare_dataset(
    dataset: str,
    root: str | Path,
    out: str | Path,
    *,
    workers: int = 1,
    num_shards: int = 1,
    shard_index: int = 0,
    limit: int | None = None,
    speakers: Iterable[str] | None = None,
    emotions: Iterable[str] | None = None,
    views: Iterable[str] | None = ("front",),
    crop_size: int = 256,
    max_gap: int = DEFAULT_MAX_GAP,
    labels_csv: str | Path | None = None,
    gap_policy: str = "split",
    settings: PrepareSettings | None = None,
    progress: bool = False,
) -> dict:
    """Prepare one shard of a dataset into the cache at ``out``; returns the summary (also written).

    ``settings`` overrides every pipeline knob at once; otherwise ``crop_size``, ``max_gap`` and
    ``gap_policy`` adjust the defaults. Raises PrepareUsageError for invalid arguments only.
    """
    if settings is None:
        settings = PrepareSettings(crop_size=crop_size, max_gap=max_gap, gap_policy=gap_policy)
    _check_usage(
        dataset,
        root,
        workers,
        num_shards,
        shard_index,
        limit,
        settings.crop_size,
        settings.max_gap,
        settings.gap_policy,
    )
    started = time.monotonic()
    out = Path(out)
    clips_dir = out / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    suffix = shard_suffix(num_shards, shard_index)
    manifest_path, summary_path = out / f"manifest{suffix}.json", out / f"summary{suffix}.json"
    items = select_items(
        dataset,
        root,
        num_shards=num_shards,
        shard_index=shard_index,
        limit=limit,
        speakers=speakers,
        emotions=emotions,
        views=views,
        labels_csv=labels_csv,
    )
    settings_hash = settings.digest()
    _remove_own_temp_files(out, {item.clip_id for item in items}, {manifest_path.name, summary_path.name})

    previous = load_manifest(out)
    entries: dict[str, dict] = {}
    records: dict[str, dict] = {}
    todo: list[SourceItem] = []
    seen: set[str] = set()
    for item in items:
        if item.clip_id in seen:
            reason = f"{item.video}: clip id '{item.clip_id}' is already used by another item"
            records[f"{item.clip_id}#{item.video}"] = new_record(item, "failed", reason)
            continue
        seen.add(item.clip_id)
        current = _up_to_date(item, previous.get(item.clip_id), clips_dir, settings_hash)
        if current is not None:
            entries[item.clip_id] = current
            record = new_record(item, "skipped", "up to date")
            record.update(
                warnings=list(current.get("warnings", [])),
                clips=list(current["clips"]),
                frames=sum(current["num_frames"]),
            )
            records[item.clip_id] = record
        else:
            todo.append(item)
    by_id = {item.clip_id: item for item in todo}

    def write_manifest() -> None:
        atomic_write_json(
            manifest_path,
            {
                "version": PIPELINE_VERSION,
                "dataset": dataset,
                "root": str(Path(root).resolve()),
                "shard": {"index": shard_index, "count": num_shards},
                "settings_hash": settings_hash,
                "settings": _settings_json(settings),
                "entries": dict(sorted(entries.items())),
            },
        )

    last_flush = [time.monotonic()]

    def on_result(record: dict) -> None:
        item = by_id[record["item"]]
        _remove_stale_clips(clips_dir, item.clip_id, keep=set(record["clips"]))
        if record["status"] == "ok":
            metas = [_read_meta(clips_dir / f"{name}.npz") for name in record["clips"]]
            if all(meta is not None for meta in metas):
                entries[item.clip_id] = _manifest_entry(item, settings_hash, metas)
            else:
                record.update(
                    status="failed", reason=f"{item.video}: a written clip file cannot be read back"
                )
        records[item.clip_id] = record
        if progress_bar is not None:
            progress_bar.advance(record)
        if time.monotonic() - last_flush[0] > MANIFEST_FLUSH_SECONDS:
            write_manifest()
            last_flush[0] = time.monotonic()

    progress_bar = _Progress(len(todo), len(items) - len(todo)) if progress and todo else None
    try:
        if workers == 1 or len(todo) <= 1:
            for item in todo:
                on_result(prepare_item(item, settings, clips_dir, settings_hash))
        else:
            _run_pool(todo, min(workers, len(todo)), (settings, str(clips_dir), settings_hash), on_result)
    finally:
        if progress_bar is not None:
            progress_bar.stop()
        write_manifest()

    ordered = [records[key] for key in sorted(records)]
    counts = {status: sum(r["status"] == status for r in ordered) for status in ("ok", "skipped", "failed")}
    summary = {
        "dataset": dataset,
        "root": str(Path(root).resolve()),
        "out": str(out.resolve()),
        "shard": {"index": shard_index, "count": num_shards},
        "settings_hash": settings_hash,
        "counts": counts,
        "frames_prepared": sum(r["frames"] for r in ordered if r["status"] == "ok"),
        "seconds": round(time.monotonic() - started, 3),
        "manifest": manifest_path.name,
        "items": ordered,
    }
    atomic_write_json(summary_path, summary)
    summary["summary_path"] = str(summary_path)
    return summary


def _settings_json(settings: PrepareSettings) -> dict:
    values = dataclasses.asdict(settings)
    values["audio_digest"] = settings.audio.digest()
    return values


class _Progress:
    """A rich progress bar counting prepared items, with ok / failed tallies."""

    def __init__(self, total: int, skipped: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.ok = self.failed = 0
        self.skipped = skipped
        self._progress = Progress(
            TextColumn("[bold]prepare[/bold] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self._task = self._progress.add_task(self._describe(), total=total)
        self._progress.start()

    def _describe(self) -> str:
        return f"ok {self.ok} · failed {self.failed} · up to date {self.skipped}"

    def advance(self, record: dict) -> None:
        self.ok += record["status"] == "ok"
        self.failed += record["status"] == "failed"
        self._progress.update(self._task, advance=1, description=self._describe())

    def stop(self) -> None:
        self._progress.stop()
