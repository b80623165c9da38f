"""Audio-to-landmark predictions for a cache's clips, computed once per a2l checkpoint.

The paper fine-tunes vid2vid "with the landmark output from the Dual-LSTM module" (section 3.1); the
fine-tuning run reads these (``Vid2VidDataModule(predicted_landmarks=CKPT)``). Layout::

    <cache_dir>/predicted_landmarks/<sha256[:16]>/<clip_id>.npy        (T, 68, 2) float32
    <cache_dir>/predicted_landmarks/<sha256[:16]>/predictions.json     checkpoint, its sha256, clips, failures

The folder is named by the SHA-256 of the checkpoint file's bytes, so a retrained model written to the
same path gets a new folder and a copy of a checkpoint re-uses its predictions. A clip's landmarks are
the ones ``eapc evaluate`` scores (:func:`~eapc_lightning.evaluation.clip_eval.predict_cached_clip`: the
clip's raw MFCC / LLF features, frame 0's cached landmarks as the reference), in the canonical 256 frame
of the cache's ``landmarks``. A clip whose ``.npy`` is there and not older than its clip file is re-used;
the others are predicted on the CPU and written atomically (temporary file, then rename), so processes
that share the cache may run this at the same time. A clip that fails is logged with its file, recorded
under ``failed`` in the json and left out; the others go on, and the next call tries it again.
"""

import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eapc_lightning.data.cache import load_clip
from eapc_lightning.errors import InputError
from eapc_lightning.evaluation.clip_eval import predict_cached_clip
from eapc_lightning.fileio import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

PREDICTIONS_FOLDER = "predicted_landmarks"
INDEX_FILENAME = "predictions.json"
DIGEST_CHARACTERS = 16
_CHUNK = 1 << 20


@dataclass
class PredictedLandmarks:
    """Where one checkpoint's predictions are and what one call did."""

    folder: Path
    files: dict[str, Path]  # clip id -> its .npy, for every clip asked for that has one
    computed: list[str] = field(default_factory=list)  # clip ids predicted by this call (the rest re-used)
    failures: dict[str, str] = field(default_factory=dict)  # clip id -> error, of this call

    def load(self, clip_id: str) -> np.ndarray:
        return np.load(self.files[clip_id])


def checkpoint_digest(checkpoint: str | Path) -> str:
    """SHA-256 (hex) of the checkpoint file's bytes; InputError when there is no such file."""
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(path, "audio-to-landmark checkpoint not found (predicted_landmarks)")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def predictions_folder(cache_dir: str | Path, checkpoint: str | Path) -> Path:
    """``<cache_dir>/predicted_landmarks/<sha256[:16]>`` of this checkpoint."""
    return Path(cache_dir) / PREDICTIONS_FOLDER / checkpoint_digest(checkpoint)[:DIGEST_CHARACTERS]


def load_a2l(checkpoint: str | Path):
    """The A2LModule of a checkpoint on the CPU, in eval mode; InputError naming the file when it is not one."""
    from eapc_lightning.inference.checkpoints import CHECKPOINT_LOAD_ERRORS
    from eapc_lightning.lit.a2l import A2LModule

    try:
        module = A2LModule.load_from_checkpoint(checkpoint, map_location="cpu")
    except CHECKPOINT_LOAD_ERRORS as error:
        raise InputError(
            checkpoint, f"not an audio-to-landmark checkpoint ({type(error).__name__}: {error})"
        ) from None
    return module.eval()


def _fresh(prediction: Path, clip_path: Path) -> bool:
    """The prediction exists and was written after its clip file last changed."""
    try:
        return prediction.stat().st_mtime_ns >= Path(clip_path).stat().st_mtime_ns
    except FileNotFoundError:
        return False


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _check_audio_features(a2l, record, checkpoint: Path) -> None:
    if a2l.audio_features is not None and a2l.audio_features != record.audio_features:
        raise InputError(
            checkpoint,
            f"trained on audio features computed with other settings ({a2l.audio_features.digest()}) than "
            f"{record.path} ({record.audio_features.digest()}): its predictions for this cache would be "
            "meaningless; use an a2l model trained on this cache",
        )


def _write_index(folder: Path, checkpoint: Path, digest: str, cache_dir: Path, failures: dict) -> None:
    """The json beside the predictions (rewritten only when it changes)."""
    index_path = folder / INDEX_FILENAME
    try:
        earlier = json.loads(index_path.read_text())
    except (OSError, ValueError):
        earlier = {}
    clips = sorted(path.stem for path in folder.glob("*.npy"))
    failed = {k: v for k, v in (earlier.get("failed") or {}).items() if k not in clips} | failures
    index = {
        "checkpoint": str(checkpoint),
        "sha256": digest,
        "cache_dir": str(cache_dir),
        "clips": clips,
        "failed": {k: failed[k] for k in sorted(failed) if k not in clips},
    }
    if index != earlier:
        atomic_write_json(index_path, index)


def ensure_predicted_landmarks(cache_dir: str | Path, checkpoint: str | Path, records) -> PredictedLandmarks:
    """The predictions of ``checkpoint`` for ``records`` (cache clip records), computing the missing ones.

    InputError when the checkpoint is missing, is not an a2l checkpoint, or was trained on audio features
    computed with other settings than a clip's (whole-run errors, not one clip's).
    """
    checkpoint, cache_dir = Path(checkpoint), Path(cache_dir)
    digest = checkpoint_digest(checkpoint)
    folder = cache_dir / PREDICTIONS_FOLDER / digest[:DIGEST_CHARACTERS]
    result = PredictedLandmarks(folder, {})
    pending = []
    for record in records:
        target = folder / f"{record.clip_id}.npy"
        if _fresh(target, record.path):
            result.files[record.clip_id] = target
        else:
            pending.append((record, target))
    if pending:
        log.info("predicting the landmarks of %d clips with %s into %s", len(pending), checkpoint, folder)
        a2l = load_a2l(checkpoint)
        for record, target in pending:
            _check_audio_features(a2l, record, checkpoint)
            try:
                arrays = load_clip(record.path, ("mfcc", "llf", "landmarks")).arrays
                landmarks = np.asarray(predict_cached_clip(a2l, arrays), np.float32)
                if landmarks.ndim != 3 or not len(landmarks) or not np.isfinite(landmarks).all():
                    raise ValueError(
                        f"the a2l model gave landmarks of shape {landmarks.shape}, not all finite"
                    )
                atomic_write_bytes(target, _npy_bytes(landmarks))
            except Exception as error:  # one bad clip is logged and left out; the others go on
                reason = f"{type(error).__name__}: {error}"
                log.warning(
                    "%s: no predicted landmarks for clip %s (%s); skipped",
                    record.path,
                    record.clip_id,
                    reason,
                )
                result.failures[record.clip_id] = reason
                continue
            result.files[record.clip_id] = target
            result.computed.append(record.clip_id)
    if pending or not (folder / INDEX_FILENAME).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _write_index(folder, checkpoint, digest, cache_dir, result.failures)
    return result
