"""Enumerate the raw clips of a dataset and read their labels from the dataset's own naming.

Three layouts are understood (see docs/data.md):

* ``mead``: ``<speaker>/video/<view>/<emotion>/level_<n>/<clip>.mp4`` with the speech in
  ``<speaker>/audio/<emotion>/level_<n>/<clip>.m4a`` (the video's own track is used when that file is
  missing).
* ``crema_d``: ``VideoFlash/<actor>_<sentence>_<EMO>_<LVL>.flv`` with the speech preferably from
  ``AudioWAV/<same name>.wav`` (a few of the original flv files carry no audio track).
* ``folder``: any ``*.mp4 / *.mov / *.mkv / *.flv`` below the root, with its own audio track or a
  same-named ``.wav`` beside it (the ``.wav`` wins when both exist). Labels come from an optional CSV
  with columns ``path,speaker,emotion,level``; otherwise the clip is unlabelled and its speaker is
  the name of its parent folder.

Enumeration never raises for one bad item: a name that cannot be parsed gives a ``SourceItem`` whose
``error`` says why, so the batch records it and carries on. Problems with the root itself (missing
folder, no clip at all in the dataset's layout, malformed labels CSV) raise ``InputError``; the
"no clips" error of every dataset comes from ``no_clips_error``, which names the root, shows one
example path of the expected layout and, where it can tell, says that the root looks one level too
deep or too shallow.
"""

import csv
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from eapc_lightning.constants import CREMA_D_EMOTIONS, CREMA_D_LEVELS, EMOTIONS
from eapc_lightning.errors import InputError

DATASETS = ("mead", "crema_d", "folder")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".flv")
LEVELS = (1, 2, 3)
# CREMA-D's twelve sentence codes (CREMA-D README, "Sentences").
CREMA_D_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
_CREMA_D_NAME = re.compile(
    r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$"
)
_MEAD_LEVEL = re.compile(r"^level_(?P<level>\d+)$")
DATASET_NAMES = {"mead": "MEAD", "crema_d": "CREMA-D", "folder": "video"}
# one example path per layout, shown when a root holds no clips
LAYOUT_EXAMPLES = {
    "mead": "<root>/M003/video/front/angry/level_1/001.mp4 (speech in <root>/M003/audio/angry/level_1/001.m4a)",
    "crema_d": "<root>/VideoFlash/1001_DFA_ANG_XX.flv (speech in <root>/AudioWAV/1001_DFA_ANG_XX.wav)",
    "folder": "<root>/<any subfolders>/<clip>.mp4 (or .mov, .mkv, .flv; speech in its own audio track "
    "or a same-named .wav beside it)",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SourceItem:
    """One raw clip to prepare: where its media are, its labels, or why it cannot be used."""

    clip_id: str
    dataset: str
    video: Path
    audio: Path  # an audio file, or the video itself when the speech is its own audio track
    speaker: str | None = None
    emotion: str | None = None  # a name from EMOTIONS, or None when unlabelled
    level: int | None = None
    view: str | None = None
    extra: dict = field(default_factory=dict, compare=False)  # dataset-specific fields kept in meta
    error: str | None = None  # set when the item's name or labels could not be understood


@dataclass(frozen=True)
class CremaDName:
    actor: str
    sentence: str
    emotion: str  # a name from EMOTIONS
    level: int
    level_code: str


def parse_crema_d_name(name: str) -> CremaDName:
    """Parse ``<actor>_<sentence>_<EMO>_<LVL>`` (a file name with or without extension).

    Raises ValueError with a readable reason when the name does not follow CREMA-D's scheme.
    """
    stem = Path(name).stem if Path(name).suffix.lower() in {".flv", ".wav", ".mp3", ".mp4"} else name
    match = _CREMA_D_NAME.match(stem)
    if match is None:
        raise ValueError(f"malformed CREMA-D name '{stem}' (expected <actor>_<sentence>_<EMO>_<LVL>)")
    fields = match.groupdict()
    if fields["sentence"] not in CREMA_D_SENTENCES:
        raise ValueError(f"unknown CREMA-D sentence code '{fields['sentence']}' in '{stem}'")
    if fields["emotion"] not in CREMA_D_EMOTIONS:
        raise ValueError(f"unknown CREMA-D emotion code '{fields['emotion']}' in '{stem}'")
    if fields["level"] not in CREMA_D_LEVELS:
        raise ValueError(f"unknown CREMA-D intensity code '{fields['level']}' in '{stem}'")
    return CremaDName(
        actor=fields["actor"],
        sentence=fields["sentence"],
        emotion=CREMA_D_EMOTIONS[fields["emotion"]],
        level=CREMA_D_LEVELS[fields["level"]],
        level_code=fields["level"],
    )


def safe_id(text: str) -> str:
    """A filesystem-safe identifier: path separators become ``__``, other odd characters ``_``."""
    text = text.replace("\\", "/").strip("/").replace("/", "__")
    return _UNSAFE.sub("_", text).strip("._") or "clip"


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")


def _require_dir(root: Path, what: str) -> None:
    if not root.is_dir():
        raise InputError(root, f"{what} folder not found")


def _first_match(root: Path, patterns: tuple[str, ...]) -> Path | None:
    for pattern in patterns:
        for match in sorted(root.glob(pattern)):
            if match.is_dir():
                return match
    return None


def _layout_hint(dataset: str, root: Path) -> str | None:
    """Where the dataset's layout really starts, when ``root`` is one or two levels off."""
    if dataset == "mead":
        if (root / "video").is_dir() or (root / "audio").is_dir():
            return (
                f"{root} looks like one speaker's folder: pass the folder holding the speakers, {root.parent}"
            )
        # a root below <speaker>/video/ (view, emotion or level folder): the layout's root is above it
        above = next((parent for parent in (root, *root.parents[:3]) if parent.name == "video"), None)
        if above is not None and len(above.parents) >= 2:
            return f"{root} lies inside one speaker's folder: pass {above.parent.parent}"
        deeper = _first_match(root, ("*/*/video", "*/*/*/video"))
        if deeper is not None:
            return f"the speaker folders seem to be deeper: pass {deeper.parent.parent}"
    elif dataset == "crema_d":
        if root.name in ("VideoFlash", "AudioWAV"):
            return f"{root} is one of CREMA-D's subfolders: pass its parent {root.parent}"
        deeper = _first_match(root, ("*/VideoFlash", "*/*/VideoFlash"))
        if deeper is not None:
            return f"VideoFlash seems to be deeper: pass {deeper.parent}"
    return None


def no_clips_error(dataset: str, root: str | Path) -> InputError:
    """The error for a root holding no clip of ``dataset``: what was expected there, and a hint."""
    root = Path(root)
    reason = (
        f"no {DATASET_NAMES[dataset]} clips found under this root; "
        f"the {dataset} layout looks like {LAYOUT_EXAMPLES[dataset]}"
    )
    hint = _layout_hint(dataset, root)
    return InputError(root, reason if hint is None else f"{reason}; {hint}")


def mead_items(root: str | Path) -> list[SourceItem]:
    """All videos under ``root/<speaker>/video/``, labelled from their MEAD path."""
    root = Path(root)
    _require_dir(root, "dataset root")
    items = []
    videos = sorted(p for p in root.glob("*/video/**/*") if _is_video(p))
    for video in videos:
        parts = video.relative_to(root).parts
        fallback_id = safe_id(str(video.relative_to(root).with_suffix("")))
        if len(parts) != 6:
            items.append(
                SourceItem(
                    clip_id=fallback_id,
                    dataset="mead",
                    video=video,
                    audio=video,
                    speaker=parts[0],
                    error="not in MEAD layout <speaker>/video/<view>/<emotion>/level_<n>/<clip>.mp4",
                )
            )
            continue
        speaker, _, view, emotion, level_dir, file_name = parts
        clip = Path(file_name).stem
        audio = root / speaker / "audio" / emotion / level_dir / f"{clip}.m4a"
        level_match = _MEAD_LEVEL.match(level_dir)
        error = None
        level = int(level_match["level"]) if level_match else None
        if emotion not in EMOTIONS:
            error = f"unknown emotion folder '{emotion}' (expected one of {', '.join(EMOTIONS)})"
        elif level not in LEVELS:
            error = f"unknown level folder '{level_dir}' (expected level_1, level_2 or level_3)"
        items.append(
            SourceItem(
                clip_id=safe_id(f"{speaker}_{view}_{emotion}_{level_dir}_{clip}"),
                dataset="mead",
                video=video,
                audio=audio if audio.is_file() else video,
                speaker=speaker,
                emotion=emotion if error is None else None,
                level=level if error is None else None,
                view=view,
                extra={"view": view, "emotion_folder": emotion},
                error=error,
            )
        )
    return items


def crema_d_items(root: str | Path) -> list[SourceItem]:
    """All clips in ``root/VideoFlash``, labelled from their CREMA-D names, audio from ``AudioWAV``."""
    root = Path(root)
    _require_dir(root, "dataset root")
    video_dir = root / "VideoFlash"
    if not video_dir.is_dir():
        raise no_clips_error("crema_d", root)
    items = []
    for video in sorted(p for p in video_dir.iterdir() if _is_video(p)):
        wav = root / "AudioWAV" / f"{video.stem}.wav"
        audio = wav if wav.is_file() else video
        try:
            name = parse_crema_d_name(video.stem)
        except ValueError as error:
            items.append(
                SourceItem(
                    clip_id=safe_id(video.stem), dataset="crema_d", video=video, audio=audio, error=str(error)
                )
            )
            continue
        items.append(
            SourceItem(
                clip_id=safe_id(video.stem),
                dataset="crema_d",
                video=video,
                audio=audio,
                speaker=name.actor,
                emotion=name.emotion,
                level=name.level,
                extra={"sentence": name.sentence, "level_code": name.level_code},
            )
        )
    return items


@dataclass(frozen=True)
class FolderLabel:
    speaker: str | None
    emotion: str | None
    level: int | None
    error: str | None = None


def read_labels_csv(path: str | Path, root: str | Path) -> dict[Path, FolderLabel]:
    """Labels of a folder dataset: CSV columns ``path,speaker,emotion,level`` (path relative to root).

    Empty emotion or level cells mean unlabelled. An invalid cell labels that row with an error
    instead of failing the whole file; a file without the required columns raises InputError.
    """
    path, root = Path(path), Path(root)
    if not path.is_file():
        raise InputError(path, "labels CSV not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip() for name in reader.fieldnames or []}
        missing = {"path", "speaker", "emotion", "level"} - columns
        if missing:
            raise InputError(path, f"labels CSV lacks column(s) {', '.join(sorted(missing))}")
        labels = {}
        for line, row in enumerate(reader, start=2):
            row = {key.strip(): (value or "").strip() for key, value in row.items() if key}
            media = Path(row["path"])
            media = (media if media.is_absolute() else root / media).resolve()
            labels[media] = _folder_label(row, f"{path.name} line {line}")
    return labels


def _folder_label(row: dict[str, str], where: str) -> FolderLabel:
    emotion = row["emotion"].lower() or None
    level_text = row["level"]
    error = None
    if emotion is not None and emotion not in EMOTIONS:
        crema_name = CREMA_D_EMOTIONS.get(emotion.upper())
        if crema_name is None:
            error = f"{where}: unknown emotion '{row['emotion']}' (expected one of {', '.join(EMOTIONS)})"
        emotion = crema_name
    level = None
    if level_text:
        try:
            level = int(level_text)
        except ValueError:
            level = None
        if level not in LEVELS:
            error = error or f"{where}: level '{level_text}' is not 1, 2 or 3"
            level = None
    return FolderLabel(speaker=row["speaker"] or None, emotion=emotion, level=level, error=error)


def folder_items(root: str | Path, labels_csv: str | Path | None = None) -> list[SourceItem]:
    """All videos below ``root``; labels from ``labels_csv`` when given, else unlabelled."""
    root = Path(root)
    _require_dir(root, "dataset root")
    labels = read_labels_csv(labels_csv, root) if labels_csv is not None else {}
    videos = sorted(p for p in root.rglob("*") if _is_video(p))
    seen: set[str] = set()
    items = []
    for video in videos:
        relative = video.relative_to(root)
        clip_id = safe_id(str(relative.with_suffix("")))
        if clip_id in seen:  # a.mp4 beside a.mov, or names that sanitise alike
            clip_id = f"{clip_id}-{hashlib.sha1(str(relative).encode()).hexdigest()[:8]}"
        seen.add(clip_id)
        wav = video.with_suffix(".wav")
        label = labels.pop(video.resolve(), None)
        extra = {"relative_path": str(relative)}
        if labels_csv is not None and label is None:
            extra["unlabelled_reason"] = "not listed in the labels CSV"
        items.append(
            SourceItem(
                clip_id=clip_id,
                dataset="folder",
                video=video,
                audio=wav if wav.is_file() else video,
                speaker=(label.speaker if label and label.speaker else video.parent.name),
                emotion=label.emotion if label else None,
                level=label.level if label else None,
                extra=extra,
                error=label.error if label else None,
            )
        )
    resolved_root = root.resolve()
    for missing in sorted(labels):  # CSV rows that name no video: report them, they are not prepared
        items.append(
            SourceItem(
                clip_id=safe_id(
                    str(missing.relative_to(resolved_root))
                    if missing.is_relative_to(resolved_root)
                    else missing.name
                ),
                dataset="folder",
                video=missing,
                audio=missing,
                error="listed in the labels CSV but no such video file",
            )
        )
    return items


def enumerate_items(
    dataset: str, root: str | Path, *, labels_csv: str | Path | None = None
) -> list[SourceItem]:
    """Every item of ``dataset`` under ``root``, sorted by path (the order shards split).

    Raises InputError (from ``no_clips_error``) when the root holds no clip in the dataset's layout.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset '{dataset}' (expected one of {', '.join(DATASETS)})")
    if labels_csv is not None and dataset != "folder":
        raise ValueError("a labels CSV applies to the folder dataset only")
    if dataset == "mead":
        items = mead_items(root)
    elif dataset == "crema_d":
        items = crema_d_items(root)
    else:
        items = folder_items(root, labels_csv)
    if not items:
        raise no_clips_error(dataset, root)
    return items


def filter_items(
    items: Iterable[SourceItem],
    *,
    speakers: Iterable[str] | None = None,
    emotions: Iterable[str] | None = None,
    views: Iterable[str] | None = None,
) -> list[SourceItem]:
    """Keep items whose speaker / emotion / view is listed (None keeps all).

    The emotion filter matches the parsed emotion, or the folder name of an item whose emotion folder
    was not understood, so an emotion filter never hides an error about a folder it names. Items without a
    view (CREMA-D, folders) pass the view filter.
    """
    speaker_set = set(speakers) if speakers else None
    emotion_set = set(emotions) if emotions else None
    view_set = set(views) if views else None
    kept = []
    for item in items:
        if speaker_set is not None and item.speaker not in speaker_set:
            continue
        if emotion_set is not None:
            emotion = item.emotion or item.extra.get("emotion_folder")
            if emotion not in emotion_set:
                continue
        if view_set is not None and item.view is not None and item.view not in view_set:
            continue
        kept.append(item)
    return kept
