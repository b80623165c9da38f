"""A cache's bookkeeping: the manifests, clip fingerprints, what is up to date, and leftover files.

``manifest.json`` (or ``manifest.shard-<i>-of-<K>.json`` per shard) lists, per item, the sources with
their size and mtime, the settings hash and the clip files written, each with its size and a cheap
checksum (``file_fingerprint``: SHA-1 of the size, the first 64 KiB and the last 64 KiB). An item is up
to date when its sources and settings are unchanged and its clip files still have the recorded size and
checksum (read from the manifest, or, when a run was killed before its manifest was written, from the
clips' own metadata, which a truncated file cannot give). Clip files an item no longer produces and
temporary files left by a killed run of the same shard are removed here too.
"""

import glob
import hashlib
import json
import logging
import os
import re
from pathlib import Path

from eapc_lightning.data.index import read_clip_meta
from eapc_lightning.errors import InputError
from eapc_lightning.fileio import atomic_write_json
from eapc_lightning.prepare.item import SOURCE_STAT_KEYS, source_stats
from eapc_lightning.prepare.settings import PIPELINE_VERSION
from eapc_lightning.prepare.sources import SourceItem

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 64 * 1024  # read from each end of a clip file for its checksum
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp$")
_SEGMENT_SUFFIX = re.compile(r"_seg\d+$")


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


def write_manifest(path: Path, header: dict, entries: dict[str, dict]) -> None:
    """Write one shard's manifest: the pipeline version, ``header`` (dataset, root, shard, settings) and
    the entries by item id."""
    atomic_write_json(path, {"version": PIPELINE_VERSION, **header, "entries": dict(sorted(entries.items()))})


def cached_clip_paths(out: str | Path) -> list[Path]:
    """Clip files of every item listed in the cache's manifests, sorted."""
    clips_dir = Path(out) / "clips"
    names = {name for entry in load_manifest(out).values() for name in entry["clips"]}
    return sorted(clips_dir / f"{name}.npz" for name in names)


def readable_meta(path: Path) -> dict | None:
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
        entry.get(key) == stats[key] for key in SOURCE_STAT_KEYS
    )


def up_to_date(item: SourceItem, entry: dict | None, clips_dir: Path, settings_hash: str) -> dict | None:
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
        meta = readable_meta(clips_dir / first) if (clips_dir / first).is_file() else None
        if meta is None or meta.get("item") != item.clip_id or not _is_current(meta, stats, settings_hash):
            continue
        metas = [readable_meta(clips_dir / f"{name}.npz") for name in meta["item_clips"]]
        if all(
            m is not None and m.get("item") == item.clip_id and _is_current(m, stats, settings_hash)
            for m in metas
        ):
            return manifest_entry(item, settings_hash, metas, clips_dir)
    return None


def manifest_entry(item: SourceItem, settings_hash: str, metas: list[dict], clips_dir: Path) -> dict:
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
        **{key: metas[0][key] for key in SOURCE_STAT_KEYS},
    }


def remove_stale_clips(clips_dir: Path, item_id: str, keep: set[str]) -> None:
    """Delete clips an earlier run made from this item that this run did not make again."""
    candidates = [clips_dir / f"{item_id}.npz", *clips_dir.glob(f"{glob.escape(item_id)}_seg*.npz")]
    for path in candidates:
        if path.stem in keep or not path.is_file():
            continue
        meta = readable_meta(path)
        if meta is None or meta.get("item") == item_id:  # unreadable leftovers or this item's own
            path.unlink(missing_ok=True)


def remove_own_temp_files(out: Path, own_ids: set[str], own_files: set[str]) -> int:
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
