"""Which items a run prepares: the dataset's items, filtered, sorted by clip id, cut, split into shards."""

from collections.abc import Iterable
from pathlib import Path

from eapc_lightning.errors import InputError
from eapc_lightning.prepare.errors import NothingSelectedError, PrepareUsageError
from eapc_lightning.prepare.sources import SourceItem, enumerate_items, filter_items

SHOWN_VALUES = 10  # values of one label listed when the filters select nothing


def _available(items: list[SourceItem]) -> str:
    """What the filters could have selected: the speakers, emotions and views found."""
    parts = []
    for name, values in (
        ("speakers", {item.speaker for item in items}),
        ("emotions", {item.emotion or item.extra.get("emotion_folder") for item in items}),
        ("views", {item.view for item in items}),
    ):
        values = sorted(value for value in values if value is not None)
        if values:
            more = len(values) - SHOWN_VALUES
            shown = ", ".join(values[:SHOWN_VALUES]) + (f" and {more} more" if more > 0 else "")
            parts.append(f"{name} {shown}")
    return "; ".join(parts)


def select_all_shards(
    dataset: str,
    root: str | Path,
    *,
    limit: int | None = None,
    speakers: Iterable[str] | None = None,
    emotions: Iterable[str] | None = None,
    views: Iterable[str] | None = ("front",),
    labels_csv: str | Path | None = None,
) -> list[SourceItem]:
    """Every shard's items, filtered, sorted by clip id and cut to ``limit``.

    Raises PrepareUsageError when the root holds no clips in the dataset's layout (or its labels CSV is
    malformed), NothingSelectedError when the filters leave none.
    """
    try:
        found = enumerate_items(dataset, root, labels_csv=labels_csv)
    except (InputError, ValueError) as error:
        raise PrepareUsageError(str(error)) from error
    items = filter_items(found, speakers=speakers, emotions=emotions, views=views)
    if not items:
        filters = {
            name: list(values)
            for name, values in (("speakers", speakers), ("emotions", emotions), ("views", views))
            if values
        }
        raise NothingSelectedError(root, len(found), filters, _available(found))
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
    items = select_all_shards(
        dataset, root, limit=limit, speakers=speakers, emotions=emotions, views=views, labels_csv=labels_csv
    )
    return items[shard_index::num_shards]
