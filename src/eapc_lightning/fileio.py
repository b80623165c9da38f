"""Writing files so that a reader, or a run killed half-way, never sees a partial one.

The bottom floor of the package: of the project it imports only :mod:`eapc_lightning.errors`. Every file the project writes
outside a video stream goes through :func:`atomic_write_bytes` (temporary file in the destination
folder, fsync, rename); PNG pictures through :func:`write_png`, which raises naming the file when the
picture cannot be encoded. Inputs are checked by :func:`require_nonempty_file`.
"""

import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from eapc_lightning.errors import InputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(payload)
            temp.flush()
            os.fsync(temp.fileno())
        # mkstemp creates 0600 files; give the final file the permissions a plain open() would, so a
        # cache on a shared disk stays readable by the other users of a cluster
        os.chmod(temp_name, 0o666 & ~_current_umask())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj) -> None:
    """``obj`` as indented, key-sorted JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def encode_png(image_rgb: np.ndarray, path: str | Path = "<memory>") -> bytes:
    """PNG bytes of an (H, W, 3) RGB uint8 picture; ValueError naming ``path`` when it cannot be encoded."""
    picture = np.asarray(image_rgb)
    if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8 or picture.size == 0:
        raise ValueError(
            f"{path}: a PNG needs an (H, W, 3) uint8 picture, got {picture.shape} {picture.dtype}"
        )
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed")
    return encoded.tobytes()


def write_png(path: str | Path, image_rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) RGB uint8 picture as PNG, atomically; returns the path."""
    atomic_write_bytes(path, encode_png(image_rgb, path))
    return Path(path)


def require_nonempty_file(path: str | Path) -> Path:
    """``path`` as a Path; InputError naming it when it is not a file or holds no bytes."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    return path
