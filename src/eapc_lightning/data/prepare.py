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
sources with their size and mtime, the settings hash and the clip files written, each with its size and
a cheap checksum (``file_fingerprint``: SHA-1 of the size, the first 64 KiB and the last 64 KiB);
``summary*.json`` records every item as ok / skipped / failed with reasons and warnings. A re-run
skips items whose sources and settings are unchanged and whose clip files still have the recorded size
and checksum (read from the manifest, or, when a run was killed before its manifest was written, from
the clips' own metadata, which a truncated file cannot give); it redoes stale or damaged ones, removing
clip files they no longer produce. Every file is written atomically; temporary files left by a killed
run of the same shard are removed at start. A failing item never stops the batch.

Before any work the run checks its arguments: a root holding no clip in the dataset's layout, filters
that select nothing, or a cache folder that cannot be written stop it with a PrepareUsageError.
Worker processes end with the prepare process, even when it is killed with SIGKILL (``_end_with_parent``).
"""

import concurrent.futures
import contextlib
import ctypes
import dataclasses
import glob
import hashlib
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from eapc_lightning.audio import AudioFeatureConfig, extract_features, load_audio
from eapc_lightning.constants import VIDEO_FPS
from eapc_lightning.data.cache import encode_faces, save_clip
from eapc_lightning.data.index import read_clip_meta
from eapc_lightning.data.sources import DATASETS, SourceItem, enumerate_items, filter_items
from eapc_lightning.data.video import iter_frames, probe_video
from eapc_lightning.errors import InputError
from eapc_lightning.fileio import atomic_write_json
from eapc_lightning.landmarks.align import apply_transform, clip_alignment, warp_face
from eapc_lightning.landmarks.gaps import GAP_POLICIES, NoUsableFaceError, fill_gaps

log = logging.getLogger(__name__)

PIPELINE_VERSION = 2  # bump when the pipeline's output changes for the same settings
DEFAULT_MAX_GAP = 12  # frames (0.48 s at 25 fps) filled by interpolation
MANIFEST_FLUSH_SECONDS = 2.0
FINGERPRINT_BYTES = 64 * 1024  # read from each end of a clip file for its checksum
PARENT_POLL_SECONDS = 0.5  # how often a worker checks that the prepare process is still there
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
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
            "audio_features": settings.audio.to_dict(),
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
    """A clip file's metadata, or None when the file cannot be read (missing, truncated, not a clip)."""
    try:
        return read_clip_meta(path)
    except InputError:
        return None


def file_fingerprint(path: str | Path) -> dict:
    """Size and checksum of a clip file, as the manifest records them: ``{"size": bytes, "sha1": hex}``.

    The checksum is the SHA-1 of the size (in decimal), the first 64 KiB and the last 64 KiB of the file
    (the whole file when it is smaller), so checking a large cache reads at most 128 KiB per clip. It
    catches truncation (the size, and the zip directory at the end of every ``.npz``) and rewrites of
    either end of the file; damage confined to the middle of a large file goes unnoticed.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest = hashlib.sha1(str(size).encode())
        digest.update(handle.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            handle.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(handle.read(FINGERPRINT_BYTES))
    return {"size": size, "sha1": digest.hexdigest()}


def _files_intact(names: list[str], files: dict, clips_dir: Path) -> bool:
    """Whether every clip file still has the size (checked first, from a stat) and checksum recorded."""
    for name in names:
        recorded = files.get(name)
        path = clips_dir / f"{name}.npz"
        try:
            if recorded is None or path.stat().st_size != recorded.get("size"):
                return False
            if file_fingerprint(path)["sha1"] != recorded.get("sha1"):
                return False
        except OSError:
            return False
    return True


def _is_current(entry: dict, stats: dict, settings_hash: str) -> bool:
    """Whether a manifest entry or clip meta was made from these sources with these settings."""
    return entry.get("settings_hash") == settings_hash and all(
        entry.get(key) == stats[key] for key in _STAT_KEYS
    )


def _up_to_date(item: SourceItem, entry: dict | None, clips_dir: Path, settings_hash: str) -> dict | None:
    """The manifest entry for ``item`` when its clips are current and intact, else None."""
    stats = source_stats(item)
    if stats["video_size"] is None:
        return None
    if entry is not None and _is_current(entry, stats, settings_hash):
        files = entry.get("files")
        if files is not None:  # the clip files must be the ones this entry recorded
            return entry if _files_intact(entry["clips"], files, clips_dir) else None
        # an entry without file records (an older manifest): the clips' own metadata decide below
    # a killed run may have written clips but not yet its manifest: trust the clips' own metadata,
    # which only a whole file yields
    for first in (f"{item.clip_id}.npz", f"{item.clip_id}_seg0.npz"):
        meta = _read_meta(clips_dir / first) if (clips_dir / first).is_file() else None
        if meta is None or meta.get("item") != item.clip_id or not _is_current(meta, stats, settings_hash):
            continue
        metas = [_read_meta(clips_dir / f"{name}.npz") for name in meta["item_clips"]]
        if all(
            m is not None and m.get("item") == item.clip_id and _is_current(m, stats, settings_hash)
            for m in metas
        ):
            return _manifest_entry(item, settings_hash, metas, clips_dir)
    return None


def _manifest_entry(item: SourceItem, settings_hash: str, metas: list[dict], clips_dir: Path) -> dict:
    """An item's manifest entry, from the metadata of the clips it produced (sources as they were read)
    and the size and checksum of each clip file as it is now (``file_fingerprint``)."""
    names = [meta["clip_id"] for meta in metas]
    return {
        "dataset": item.dataset,
        "speaker": item.speaker,
        "emotion": item.emotion,
        "level": item.level,
        "settings_hash": settings_hash,
        "clips": names,
        "files": {name: file_fingerprint(clips_dir / f"{name}.npz") for name in names},
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


def _end_with_parent(lifeline) -> None:
    """Make this worker process exit as soon as the prepare process is gone, however that ended.

    Workers are forked from the forkserver, not from the prepare process, and hold the other ends of
    the pool's queues and of the forkserver's liveness pipe: after a SIGKILL of the prepare process
    nothing would ever tell them to stop, and the forkserver and the resource tracker, which wait for
    those pipes to close, would stay too. Two guards: on Linux the kernel kills the worker when its
    parent (the forkserver) dies (parent-death signal), and a watchdog thread ends the worker when
    ``lifeline``, the reading end of a pipe whose only writer is the prepare process, reaches end of
    file, or when the worker's parent changes (checked every PARENT_POLL_SECONDS). With the workers
    gone, the forkserver and the resource tracker see their pipes close and exit on their own.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    parent = os.getppid()

    def watch() -> None:
        while True:
            try:
                gone = lifeline.poll(PARENT_POLL_SECONDS)  # nobody writes: readable means end of file
            except (OSError, EOFError):
                gone = True
            if gone or os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="prepare-parent-watchdog", daemon=True).start()


def _init_worker(settings: PrepareSettings, clips_dir: str, settings_hash: str, lifeline=None) -> None:
    if lifeline is not None:
        _end_with_parent(lifeline)
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
    # the workers watch the reading end; this process holds the only writing end until the pool is done
    lifeline, keep_alive = context.Pipe(duplex=False)
    try:
        with _main_script_not_rerun():
            _pool_loop(queue, workers, context, (*initargs, lifeline), on_result)
    finally:
        keep_alive.close()
        lifeline.close()


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
    if limit is not None and limit < 1:
        raise PrepareUsageError(f"--limit must be at least 1 (--limit {limit} selects no items)")
    if crop_size < 16:
        raise PrepareUsageError("--crop-size must be at least 16")
    if max_gap < 0:
        raise PrepareUsageError("--max-gap must not be negative")
    if gap_policy not in GAP_POLICIES:
        raise PrepareUsageError(f"--gap-policy must be one of {', '.join(GAP_POLICIES)}")


def _filters_text(speakers, emotions, views) -> str:
    named = [
        f"--{flag} {','.join(values)}"
        for flag, values in (("speakers", speakers), ("emotions", emotions), ("views", views))
        if values
    ]
    return " ".join(named)


def _found_text(items: list[SourceItem]) -> str:
    """What the filters could have selected: the speakers, emotions and views found."""
    parts = []
    for name, values in (
        ("speakers", {item.speaker for item in items}),
        ("emotions", {item.emotion or item.extra.get("emotion_folder") for item in items}),
        ("views", {item.view for item in items}),
    ):
        values = sorted(value for value in values if value is not None)
        if values:
            shown = ", ".join(values[:10]) + (f" and {len(values) - 10} more" if len(values) > 10 else "")
            parts.append(f"{name} {shown}")
    return "; ".join(parts)


def _select(dataset, root, *, limit, speakers, emotions, views, labels_csv) -> list[SourceItem]:
    """Every shard's items, filtered, sorted and cut to ``limit``; PrepareUsageError when none is left."""
    try:
        found = enumerate_items(dataset, root, labels_csv=labels_csv)
    except (InputError, ValueError) as error:
        raise PrepareUsageError(str(error)) from error
    items = filter_items(found, speakers=speakers, emotions=emotions, views=views)
    if not items:
        raise PrepareUsageError(
            f"{root}: {len(found)} clip(s) found, but none matches "
            f"{_filters_text(speakers, emotions, views)} (found {_found_text(found)})"
        )
    items.sort(key=lambda item: (item.clip_id, str(item.video)))
    if limit is not None:
        items = items[:limit]
    return items


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
    """The items one shard prepares: filtered, sorted by clip id, cut to ``limit``, then every K-th.

    Raises PrepareUsageError when the root holds no clips in the dataset's layout or the filters leave
    none; a shard may still be empty when there are fewer items than shards.
    """
    items = _select(
        dataset, root, limit=limit, speakers=speakers, emotions=emotions, views=views, labels_csv=labels_csv
    )
    return items[shard_index::num_shards]


def check_writable(out: str | Path) -> None:
    """Create the cache folder ``out`` (with ``clips/``) and prove a file can be written there.

    Raises PrepareUsageError with a one-line reason naming the path (a file in the way, no permission,
    a read-only file system) instead of letting the first clip write fail.
    """
    out = Path(out)
    blocking = next((path for path in (out, *out.parents) if path.exists() and not path.is_dir()), None)
    if blocking is not None:
        raise PrepareUsageError(
            f"--out {out}: cannot create the cache folder there, {blocking} is a file, not a folder"
        )
    try:
        (out / "clips").mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".eapc-write-check-", dir=out / "clips")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        where = error.filename or out
        raise PrepareUsageError(
            f"--out {out}: the cache folder cannot be written ({where}: {error.strerror or error})"
        ) from error


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
    selected = _select(
        dataset, root, limit=limit, speakers=speakers, emotions=emotions, views=views, labels_csv=labels_csv
    )
    items = selected[shard_index::num_shards]
    out = Path(out)
    check_writable(out)
    clips_dir = out / "clips"
    suffix = shard_suffix(num_shards, shard_index)
    manifest_path, summary_path = out / f"manifest{suffix}.json", out / f"summary{suffix}.json"
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
                entries[item.clip_id] = _manifest_entry(item, settings_hash, metas, clips_dir)
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
        "selected_items": len(selected),  # over all shards, after the filters and the limit
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
