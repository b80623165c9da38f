"""The checks a prepare run makes before any work: its arguments, and that the cache folder is writable."""

import os
import tempfile
from pathlib import Path

from eapc_lightning.landmarks.gaps import GAP_POLICIES
from eapc_lightning.prepare.errors import ArgumentError, CacheFolderError, PrepareUsageError
from eapc_lightning.prepare.settings import MIN_CROP_SIZE, PrepareSettings
from eapc_lightning.prepare.sources import DATASETS


def check_arguments(
    dataset: str,
    root: str | Path,
    *,
    workers: int,
    num_shards: int,
    shard_index: int,
    limit: int | None,
    settings: PrepareSettings,
) -> None:
    """ArgumentError naming the first parameter out of range; PrepareUsageError when ``root`` is no folder."""
    if dataset not in DATASETS:
        raise ArgumentError("dataset", dataset, f"one of {', '.join(DATASETS)}")
    if not Path(root).is_dir():
        raise PrepareUsageError(f"dataset root {root} is not a folder")
    if workers < 1:
        raise ArgumentError("workers", workers, "at least 1")
    if num_shards < 1:
        raise ArgumentError("num_shards", num_shards, "at least 1")
    if not 0 <= shard_index < num_shards:
        raise ArgumentError("shard_index", shard_index, f"in [0, {num_shards})")
    if limit is not None and limit < 1:
        raise ArgumentError("limit", limit, "at least 1")
    if settings.crop_size < MIN_CROP_SIZE:
        raise ArgumentError("crop_size", settings.crop_size, f"at least {MIN_CROP_SIZE}")
    if settings.max_gap < 0:
        raise ArgumentError("max_gap", settings.max_gap, "at least 0")
    if settings.gap_policy not in GAP_POLICIES:
        raise ArgumentError("gap_policy", settings.gap_policy, f"one of {', '.join(GAP_POLICIES)}")


def check_writable(out: str | Path) -> None:
    """Create the cache folder ``out`` (with ``clips/``) and prove a file can be written there.

    Raises CacheFolderError with a one-line reason naming the path (a file in the way, no permission,
    a read-only file system) instead of letting the first clip write fail.
    """
    out = Path(out)
    blocking = next((path for path in (out, *out.parents) if path.exists() and not path.is_dir()), None)
    if blocking is not None:
        raise CacheFolderError(
            out, f"cannot create the cache folder there, {blocking} is a file, not a folder"
        )
    try:
        (out / "clips").mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".eapc-write-check-", dir=out / "clips")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        where = error.filename or out
        raise CacheFolderError(
            out, f"the cache folder cannot be written ({where}: {error.strerror or error})"
        ) from error
