"""Speaker-disjoint, seeded train / val / test splits.

Speakers, not clips, are assigned to splits, so no identity is seen in training and evaluated on
(the paper, section 4.3, gives only file counts, 5,953 / 1,489 for CREMA-D and 533 / 134 for MEAD,
not how it split them).

How speakers are assigned:

1. The speaker names are sorted and permuted with ``numpy.random.default_rng(seed)``; the result
   depends only on the set of speakers and the seed, never on the order files were listed in.
2. Test speakers are taken first from that permutation: ``round(test_fraction * n_speakers)`` of them,
   or the explicit ``test_speakers`` list when given.
3. Validation speakers are carved out of the rest (the would-be training speakers):
   ``round(val_fraction * n_speakers)`` of them, or the explicit ``val_speakers`` list. Because test is
   drawn first, changing the validation fraction never changes the test set.
4. Everything left is training. A non-zero fraction always yields at least one speaker, as long as one
   speaker is left for training; training may never be empty.

Fractions count speakers, so file counts follow only approximately (within about one speaker's clips).
"""

import math
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

import numpy as np

SPLIT_NAMES = ("train", "val", "test")


class HasSpeaker(Protocol):
    speaker: str
    clip_id: str


RecordT = TypeVar("RecordT", bound=HasSpeaker)


def assign_speakers(
    speakers: Iterable[str],
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    val_speakers: Sequence[str] | None = None,
    test_speakers: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """Split a set of speaker names into sorted train / val / test lists (rules in the module docstring)."""
    everyone = sorted(set(speakers))
    if not everyone:
        raise ValueError("no speakers to split")
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {fraction}")
    in_effect = (0.0 if val_speakers is not None else val_fraction) + (
        0.0 if test_speakers is not None else test_fraction
    )
    if in_effect >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}")
    _check_known("test_speakers", test_speakers, everyone)
    _check_known("val_speakers", val_speakers, everyone)
    if test_speakers is not None and val_speakers is not None:
        both = sorted(set(test_speakers) & set(val_speakers))
        if both:
            raise ValueError(f"speakers {both} are listed in both val_speakers and test_speakers")

    rng = np.random.default_rng(seed)
    order = [everyone[i] for i in rng.permutation(len(everyone))]
    assigned: dict[str, list[str]] = {}
    remaining = list(order)
    for split, fraction, explicit in (
        ("test", test_fraction, test_speakers),
        ("val", val_fraction, val_speakers),
    ):
        if explicit is not None:
            chosen = set(explicit)
        else:
            reserved = set(val_speakers or ()) if split == "test" else set()
            candidates = [speaker for speaker in remaining if speaker not in reserved]
            wanted = _speaker_count(fraction, len(everyone))
            room = len(candidates) - 1  # keep at least one speaker for training
            chosen = set(candidates[: max(0, min(wanted, room))])
        assigned[split] = sorted(chosen)
        remaining = [speaker for speaker in remaining if speaker not in chosen]
    if not remaining:
        raise ValueError("the split leaves no speaker for training; lower the fractions or shorten the lists")
    assigned["train"] = sorted(remaining)
    return {name: assigned[name] for name in SPLIT_NAMES}


def split_by_speaker(
    records: Iterable[RecordT],
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    val_speakers: Sequence[str] | None = None,
    test_speakers: Sequence[str] | None = None,
) -> dict[str, list[RecordT]]:
    """Group clip records into speaker-disjoint ``train`` / ``val`` / ``test`` lists, each sorted by clip id."""
    records = list(records)
    speakers = assign_speakers(
        (record.speaker for record in records),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        val_speakers=val_speakers,
        test_speakers=test_speakers,
    )
    split_of = {speaker: name for name, members in speakers.items() for speaker in members}
    result: dict[str, list[RecordT]] = {name: [] for name in SPLIT_NAMES}
    for record in records:
        result[split_of[record.speaker]].append(record)
    return {name: sorted(members, key=lambda record: record.clip_id) for name, members in result.items()}


def _speaker_count(fraction: float, num_speakers: int) -> int:
    if fraction == 0.0:
        return 0
    return max(1, math.floor(fraction * num_speakers + 0.5))


def _check_known(name: str, listed: Sequence[str] | None, everyone: list[str]) -> None:
    if listed is None:
        return
    if isinstance(listed, str):
        raise ValueError(f"{name} must be a list of speaker names, got the string {listed!r}")
    unknown = sorted(set(listed) - set(everyone))
    if unknown:
        raise ValueError(f"{name} {unknown} are not in the data (speakers: {everyone})")
