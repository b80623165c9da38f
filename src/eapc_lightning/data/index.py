"""Index of a prepared cache: one :class:`ClipRecord` per ``CACHE/clips/<clip_id>.npz``.

The index is built from the ``meta`` JSON stored inside each clip file (``np.load`` on an ``.npz`` reads
only the members asked for, so the arrays stay on disk). It does not read the manifest, so it works on
any folder of clips, including one that ``eapc prepare`` is still filling. Records are memoised in
memory per file, keyed by the file's size and modification time, so re-indexing a large cache is cheap
and a re-prepared clip is read again.
"""

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eapc_lightning.audio.features import AudioFeatureConfig
from eapc_lightning.constants import EMOTION_TO_INDEX
from eapc_lightning.errors import InputError

CLIPS_FOLDER = "clips"
UNLABELLED_EMOTION = -1
UNKNOWN_LEVEL = 0


@dataclass(frozen=True)
class ClipRecord:
    """What the data stages need to know about one cached clip without loading its arrays.

    ``emotion`` is an index into eapc_lightning.constants.EMOTIONS, or -1 when the clip is unlabelled;
    ``level`` is the intensity 1-3, or 0 when unknown.
    """

    path: Path
    clip_id: str
    dataset: str
    speaker: str
    emotion: int
    level: int
    num_frames: int
    audio_features: AudioFeatureConfig  # the settings its mfcc / llf arrays were computed with


_records_by_file: dict[tuple[str, int, int], ClipRecord] = {}


def clips_folder(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / CLIPS_FOLDER


def read_record(path: str | Path) -> ClipRecord:
    """Read the metadata of one clip file into a record (memoised on path, size and mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    record = _records_by_file.get(key)
    if record is None:
        record = _record_from_meta(path, read_clip_meta(path))
        _records_by_file[key] = record
    return record


def require_clips(cache_dir: str | Path) -> list[Path]:
    """The clip files of a cache folder, sorted; InputError naming the folder when it holds none."""
    folder = clips_folder(cache_dir)
    paths = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not paths:
        raise InputError(
            folder,
            f"no prepared clips (*.npz) found; run `eapc prepare --dataset ... --out {Path(cache_dir)}` first",
        )
    return paths


def list_clips(cache_dir: str | Path) -> list[ClipRecord]:
    """All clips of a cache folder, sorted by clip id (so the result never depends on listing order)."""
    paths = require_clips(cache_dir)
    records = sorted((read_record(path) for path in paths), key=lambda record: record.clip_id)
    seen: dict[str, Path] = {}
    for record in records:
        if record.clip_id in seen:
            raise InputError(record.path, f"clip id {record.clip_id!r} also used by {seen[record.clip_id]}")
        seen[record.clip_id] = record.path
    return records


def read_clip_meta(path: Path) -> dict:
    """A cached clip's metadata; InputError naming the file when it is missing, truncated or not a clip."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return json.loads(str(archive["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(path, f"not a readable cached clip ({type(error).__name__}: {error})") from error


def _record_from_meta(path: Path, meta: dict) -> ClipRecord:
    missing = [key for key in ("clip_id", "speaker", "num_frames", "audio_features") if meta.get(key) is None]
    if missing:
        raise InputError(path, f"clip metadata lacks {missing}; prepare the cache again with `eapc prepare`")
    try:
        audio_features = AudioFeatureConfig.from_dict(meta["audio_features"])
    except (ValueError, TypeError) as error:
        raise InputError(path, str(error)) from None
    emotion_name = meta.get("emotion")
    if emotion_name is None:
        emotion = UNLABELLED_EMOTION
    elif emotion_name in EMOTION_TO_INDEX:
        emotion = EMOTION_TO_INDEX[emotion_name]
    else:
        raise InputError(path, f"unknown emotion {emotion_name!r} in clip metadata")
    level = meta.get("level")
    if level is not None and int(level) not in (1, 2, 3):
        raise InputError(path, f"emotion level {level!r} is not 1, 2 or 3")
    return ClipRecord(
        path=path,
        clip_id=str(meta["clip_id"]),
        dataset=str(meta.get("dataset") or ""),
        speaker=str(meta["speaker"]),
        emotion=emotion,
        level=UNKNOWN_LEVEL if level is None else int(level),
        num_frames=int(meta["num_frames"]),
        audio_features=audio_features,
    )
