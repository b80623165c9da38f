"""The prepared-clip cache: one ``.npz`` file per clip plus a manifest.

Layout of a cache folder::

    CACHE/clips/<clip_id>.npz     arrays below, written atomically (temp file + rename)
    CACHE/manifest*.json          index of clips (one file per prepare shard), see eapc_lightning.prepare.manifest
    CACHE/summary*.json           ok / skipped / failed items with reasons

Arrays of a clip with T frames at 25 fps (see ``CLIP_ARRAYS``):

=================  ==================  ===============================================================
key                shape / dtype       meaning
=================  ==================  ===============================================================
mfcc               (T, 28, 12) f32     MFCC window per frame (eapc_lightning.audio.features)
llf                (T, 25) f32         low-level audio features per frame (raw, not standardised)
landmarks          (T, 68, 2) f32      iBUG-68 points in the canonical 256x256 aligned face frame
landmarks_raw      (T, 68, 2) f32      the same points in source-image pixels (x, y)
detected           (T,) bool           False where the face was missing and the points interpolated
align_matrix       (2, 3) f32          similarity transform source pixels -> canonical frame
faces_jpeg         (N,) uint8          aligned face crops, JPEG bytes of all frames concatenated
faces_offsets      (T + 1,) i64        frame t is faces_jpeg[offsets[t]:offsets[t + 1]]
meta               () str              JSON: clip_id, dataset, speaker, emotion, level, source paths, ...
=================  ==================  ===============================================================

``emotion`` in meta is a name from eapc_lightning.constants.EMOTIONS or null (unlabelled);
``level`` is 1-3 or null.

A clip file is an uncompressed ``.npz`` whose bytes depend on its arrays and meta only (members in a
fixed order with a fixed timestamp), so preparing the same clip twice gives the same file.
"""

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from eapc_lightning.data.index import read_clip_meta
from eapc_lightning.fileio import atomic_write_bytes

CLIP_ARRAYS = (
    "mfcc",
    "llf",
    "landmarks",
    "landmarks_raw",
    "detected",
    "align_matrix",
    "faces_jpeg",
    "faces_offsets",
)


_MEMBER_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip member can carry


def encode_faces(frames: np.ndarray, quality: int = 92) -> tuple[np.ndarray, np.ndarray]:
    """JPEG-encode (T, H, W, 3) RGB uint8 frames into one byte buffer plus offsets."""
    chunks = []
    for frame in frames:
        ok, encoded = cv2.imencode(
            ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise ValueError("JPEG encoding failed")
        chunks.append(encoded.reshape(-1))
    offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(chunk) for chunk in chunks])
    buffer = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint8)
    return buffer.astype(np.uint8), offsets


def decode_faces(faces_jpeg: np.ndarray, faces_offsets: np.ndarray, indices) -> np.ndarray:
    """Decode the aligned face crops of the given frame indices into (len(indices), H, W, 3) RGB uint8."""
    frames = []
    for index in indices:
        chunk = faces_jpeg[faces_offsets[index] : faces_offsets[index + 1]]
        frames.append(cv2.cvtColor(cv2.imdecode(chunk, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return np.stack(frames)


@dataclass
class CachedClip:
    """A clip read back from the cache; ``arrays`` holds the keys of CLIP_ARRAYS that were loaded."""

    path: Path
    meta: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.meta["num_frames"])

    def faces(self, indices) -> np.ndarray:
        return decode_faces(self.arrays["faces_jpeg"], self.arrays["faces_offsets"], indices)


def save_clip(path: str | Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Atomically write one clip (all keys of CLIP_ARRAYS) and its JSON metadata."""
    missing = [key for key in CLIP_ARRAYS if key not in arrays]
    if missing:
        raise KeyError(f"clip arrays missing {missing}")
    members = {"meta": np.array(json.dumps(meta, sort_keys=True))}
    members.update((key, arrays[key]) for key in CLIP_ARRAYS)
    atomic_write_bytes(path, npz_bytes(members))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed ``.npz`` archive of ``arrays`` (readable with ``np.load``), reproducible byte for byte.

    ``np.savez`` stamps every member with the current time; here members carry a fixed date, so the
    bytes depend on the arrays and their order only.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_MEMBER_DATE)
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    return buffer.getvalue()


def load_clip(path: str | Path, keys: tuple[str, ...] = CLIP_ARRAYS) -> CachedClip:
    """Read the metadata (``read_clip_meta``: InputError naming an unreadable file) and the requested
    arrays of one cached clip."""
    path = Path(path)
    meta = read_clip_meta(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in keys}
    return CachedClip(path=path, meta=meta, arrays=arrays)
