"""``prepare_dataset``: one shard of a dataset, raw media -> the clip cache (format in eapc_lightning.data.cache).

Before any work the run checks its arguments (eapc_lightning.prepare.checks): a parameter out of range,
a root holding no clip in the dataset's layout, filters that select nothing, or a cache folder that
cannot be written stop it with a PrepareUsageError (eapc_lightning.prepare.errors). It then selects the
shard's items (eapc_lightning.prepare.selection), skips those whose clips are up to date and removes the
temporary files a killed run of the same shard left (eapc_lightning.prepare.manifest), and prepares the
rest (eapc_lightning.prepare.item), in worker processes when asked (eapc_lightning.prepare.pool). The
manifest is rewritten every MANIFEST_FLUSH_SECONDS and at the end; ``summary*.json`` records every item
as ok / skipped / failed with reasons and warnings. Every file is written atomically. A failing item
never stops the batch.
"""

import functools
import time
from collections.abc import Iterable
from pathlib import Path

from eapc_lightning.fileio import atomic_write_json
from eapc_lightning.prepare.checks import check_arguments, check_writable
from eapc_lightning.prepare.item import new_record, prepare_item
from eapc_lightning.prepare.manifest import (
    load_manifest,
    manifest_entry,
    readable_meta,
    remove_own_temp_files,
    remove_stale_clips,
    shard_suffix,
    up_to_date,
    write_manifest,
)
from eapc_lightning.prepare.pool import run_pool
from eapc_lightning.prepare.progress import ItemProgress
from eapc_lightning.prepare.selection import select_all_shards
from eapc_lightning.prepare.settings import DEFAULT_MAX_GAP, PrepareSettings
from eapc_lightning.prepare.sources import SourceItem

MANIFEST_FLUSH_SECONDS = 2.0
STATUSES = ("ok", "skipped", "failed")


class ShardRun:
    """One shard's bookkeeping: the record of every item, the manifest entries, and the files they go to.

    ``plan`` sorts the shard's items into those to prepare and those already done; ``record`` takes each
    prepared item's record as it comes (from this process or a worker); ``write_manifest`` and
    ``write_summary`` write the shard's two files.
    """

    def __init__(
        self,
        dataset: str,
        root: str | Path,
        out: Path,
        *,
        shard_index: int,
        num_shards: int,
        settings: PrepareSettings,
    ):
        self.dataset = dataset
        self.root = Path(root).resolve()
        self.out = out
        self.clips_dir = out / "clips"
        self.shard = {"index": shard_index, "count": num_shards}
        self.settings = settings
        self.settings_hash = settings.digest()
        suffix = shard_suffix(num_shards, shard_index)
        self.manifest_path = out / f"manifest{suffix}.json"
        self.summary_path = out / f"summary{suffix}.json"
        self.entries: dict[str, dict] = {}  # manifest entries by item id
        self.records: dict[str, dict] = {}  # summary records by item id
        self.progress: ItemProgress | None = None
        self._todo: dict[str, SourceItem] = {}
        self._last_flush = time.monotonic()

    def plan(self, items: list[SourceItem]) -> list[SourceItem]:
        """The items to prepare; records the others (up to date, or a clip id already taken).

        Removes the temporary files a killed run of this shard left first.
        """
        own_files = {self.manifest_path.name, self.summary_path.name}
        remove_own_temp_files(self.out, {item.clip_id for item in items}, own_files)
        previous = load_manifest(self.out)
        todo: list[SourceItem] = []
        seen: set[str] = set()
        for item in items:
            if item.clip_id in seen:
                reason = f"{item.video}: clip id '{item.clip_id}' is already used by another item"
                self.records[f"{item.clip_id}#{item.video}"] = new_record(item, "failed", reason)
                continue
            seen.add(item.clip_id)
            current = up_to_date(item, previous.get(item.clip_id), self.clips_dir, self.settings_hash)
            if current is None:
                todo.append(item)
                self._todo[item.clip_id] = item
                continue
            self.entries[item.clip_id] = current
            record = new_record(item, "skipped", "up to date")
            record.update(
                warnings=list(current.get("warnings", [])),
                clips=list(current["clips"]),
                frames=sum(current["num_frames"]),
            )
            self.records[item.clip_id] = record
        self._last_flush = time.monotonic()
        return todo

    def record(self, record: dict) -> None:
        """Take a prepared item's record: drop its stale clips, list its new ones, flush now and then."""
        item = self._todo[record["item"]]
        remove_stale_clips(self.clips_dir, item.clip_id, keep=set(record["clips"]))
        if record["status"] == "ok":
            metas = [readable_meta(self.clips_dir / f"{name}.npz") for name in record["clips"]]
            if all(meta is not None for meta in metas):
                self.entries[item.clip_id] = manifest_entry(item, self.settings_hash, metas, self.clips_dir)
            else:
                record.update(
                    status="failed", reason=f"{item.video}: a written clip file cannot be read back"
                )
        self.records[item.clip_id] = record
        if self.progress is not None:
            self.progress.advance(record)
        if time.monotonic() - self._last_flush > MANIFEST_FLUSH_SECONDS:
            self.write_manifest()
            self._last_flush = time.monotonic()

    def write_manifest(self) -> None:
        header = {
            "dataset": self.dataset,
            "root": str(self.root),
            "shard": self.shard,
            "settings_hash": self.settings_hash,
            "settings": self.settings.to_json(),
        }
        write_manifest(self.manifest_path, header, self.entries)

    def write_summary(self, selected_items: int, seconds: float) -> dict:
        """Write ``summary*.json`` and return it, with ``summary_path`` added."""
        ordered = [self.records[key] for key in sorted(self.records)]
        summary = {
            "dataset": self.dataset,
            "root": str(self.root),
            "out": str(self.out.resolve()),
            "shard": self.shard,
            "selected_items": selected_items,  # over all shards, after the filters and the limit
            "settings_hash": self.settings_hash,
            "counts": {status: sum(r["status"] == status for r in ordered) for status in STATUSES},
            "frames_prepared": sum(r["frames"] for r in ordered if r["status"] == "ok"),
            "seconds": round(seconds, 3),
            "manifest": self.manifest_path.name,
            "items": ordered,
        }
        atomic_write_json(self.summary_path, summary)
        summary["summary_path"] = str(self.summary_path)
        return summary


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
    ``gap_policy`` adjust the defaults. Raises PrepareUsageError (or one of its kinds in
    eapc_lightning.prepare.errors) for invalid arguments only.
    """
    if settings is None:
        settings = PrepareSettings(crop_size=crop_size, max_gap=max_gap, gap_policy=gap_policy)
    check_arguments(
        dataset,
        root,
        workers=workers,
        num_shards=num_shards,
        shard_index=shard_index,
        limit=limit,
        settings=settings,
    )
    started = time.monotonic()
    selected = select_all_shards(
        dataset, root, limit=limit, speakers=speakers, emotions=emotions, views=views, labels_csv=labels_csv
    )
    items = selected[shard_index::num_shards]
    out = Path(out)
    check_writable(out)
    run = ShardRun(dataset, root, out, shard_index=shard_index, num_shards=num_shards, settings=settings)
    todo = run.plan(items)
    if progress and todo:
        run.progress = ItemProgress(len(todo), len(items) - len(todo))
    try:
        if workers == 1 or len(todo) <= 1:
            for item in todo:
                run.record(prepare_item(item, settings, run.clips_dir, run.settings_hash))
        else:
            job = functools.partial(
                prepare_item, settings=settings, clips_dir=str(run.clips_dir), settings_hash=run.settings_hash
            )
            run_pool(todo, min(workers, len(todo)), job, run.record)
    finally:
        if run.progress is not None:
            run.progress.stop()
        run.write_manifest()
    return run.write_summary(len(selected), time.monotonic() - started)
