"""Frames without a detected face (docs/data.md, 'What prepare does with each clip', step 4).

A run of missing frames of at most ``max_gap`` frames is filled: inside a clip by linear interpolation
between the detections on both sides, at the clip's start or end by repeating the nearest detection.
A longer run either splits the clip into the detected stretches on both sides (``policy="split"``;
pieces of a split clip shorter than ``min_segment_frames`` are dropped with a recorded reason) or drops the clip
(``policy="drop"``). A clip without any detection fails with the reason "no face detected".
"""

from dataclasses import dataclass, field

import numpy as np

GAP_POLICIES = ("split", "drop")


class NoUsableFaceError(ValueError):
    """No stretch of the clip has a face; the message is the reason to record."""


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, stop)`` of a clip, with their gap-filled landmarks."""

    start: int
    stop: int
    landmarks: np.ndarray  # (stop - start, 68, 2) float32, no NaN
    detected: np.ndarray  # (stop - start,) bool, False where filled

    @property
    def num_frames(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class GapReport:
    segments: list[Segment]
    notes: list[str] = field(default_factory=list)  # what was trimmed, split or dropped, and why


def missing_runs(found: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of every run of consecutive False values in ``found``."""
    found = np.asarray(found, bool)
    padded = np.concatenate([[True], found, [True]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def interpolate_missing(points: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Fill frames where ``found`` is False: linear between detections, nearest value at the ends.

    ``points`` is (T, ...) with at least one found frame; returns a float32 copy without NaN.
    """
    points = np.asarray(points, np.float32)
    found = np.asarray(found, bool)
    known = np.flatnonzero(found)
    if known.size == 0:
        raise NoUsableFaceError("no face detected")
    flat = points.reshape(len(points), -1)
    frames = np.arange(len(points))
    filled = np.empty_like(flat)
    for column in range(flat.shape[1]):  # np.interp holds the end values constant outside [first, last]
        filled[:, column] = np.interp(frames, known, flat[known, column])
    return filled.reshape(points.shape)


def fill_gaps(
    points: np.ndarray,
    found: np.ndarray,
    *,
    max_gap: int,
    policy: str = "split",
    min_segment_frames: int = 1,
) -> GapReport:
    """Gap-filled segments of a clip with per-frame landmarks ``points`` (T, 68, 2) and ``found`` (T,).

    Raises NoUsableFaceError (message = reason) when no face is found at all, when ``policy="drop"``
    meets a gap longer than ``max_gap``, or when splitting leaves no piece of ``min_segment_frames``.
    A clip without long gaps is kept whole whatever its length.
    """
    if policy not in GAP_POLICIES:
        raise ValueError(f"gap policy must be one of {GAP_POLICIES}, got {policy!r}")
    found = np.asarray(found, bool)
    total = len(found)
    if total == 0 or not found.any():
        raise NoUsableFaceError("no face detected")
    long_runs = [(a, b) for a, b in missing_runs(found) if b - a > max_gap]
    notes = []
    if long_runs and policy == "drop":
        a, b = max(long_runs, key=lambda run: run[1] - run[0])
        raise NoUsableFaceError(
            f"face missing for {b - a} consecutive frames ({a}-{b - 1}), max_gap is {max_gap}"
        )
    bounds, cursor = [], 0
    for a, b in long_runs:
        if a > cursor:
            bounds.append((cursor, a))
        notes.append(f"no face in frames {a}-{b - 1} ({b - a} frames > max_gap {max_gap}): cut out")
        cursor = b
    if cursor < total:
        bounds.append((cursor, total))
    segments = []
    for start, stop in bounds:
        if long_runs and stop - start < min_segment_frames:
            notes.append(f"segment {start}-{stop - 1} dropped: {stop - start} frames < {min_segment_frames}")
            continue
        part = found[start:stop]
        segments.append(
            Segment(
                start=start,
                stop=stop,
                landmarks=interpolate_missing(points[start:stop], part),
                detected=part.copy(),
            )
        )
    if not segments:
        raise NoUsableFaceError(
            f"no stretch of at least {min_segment_frames} frames with a face (gaps longer than {max_gap} frames)"
        )
    return GapReport(segments=segments, notes=notes)
