"""Sliding windows of T frames over cached clips: the samples of the audio-to-landmark stage.

A clip of ``n`` frames gives windows starting at ``0, stride, 2 * stride, ...`` while a whole window
fits, i.e. ``floor((n - T) / stride) + 1`` windows; a clip shorter than T gives none. One sample (the
inputs and target of the Dual-LSTM, paper section 3.4, with T = 25 there) is a dict:

==============  ==============  ==========================================================================
key             shape / dtype   meaning
==============  ==============  ==========================================================================
mfcc            (T, 28, 12) f32 MFCC windows, standardised per coefficient (training statistics, or the
                                utterance's own from frame 0 on: ``FeatureStats.utterance_frames``)
llf             (T, 25) f32     low-level features, standardised alike
landmarks       (T, 68, 2) f32  ground-truth aligned landmarks (canonical 256x256 frame pixels)
reference       (68, 2) f32     aligned landmarks of one frame of the same clip (the identity)
reference_index () long         which frame of the clip ``reference`` is
emotion         () long         index into EMOTIONS, -1 when unlabelled
level           () long         intensity 1-3, 0 when unknown
speaker         str             speaker id
clip_id         str             clip id
start           () long         index of the window's first frame in the clip
==============  ==============  ==========================================================================

Reference frames: ``"first"`` always takes frame 0 of the clip (deterministic evaluation); ``"random"``
draws a frame of the clip uniformly, from a generator seeded by (seed, epoch, window index), so the draw
is reproducible, differs from epoch to epoch, and is the same whichever worker loads the sample. The
epoch reaches the dataset through the keys of :class:`EpochShuffleSampler`, which yields
``(window_index, epoch)`` pairs; a plain integer key means epoch 0.

Face shapes: with ``face_shape_jitter`` > 0 each window's reference and target landmarks are moved by one
random :class:`~eapc_lightning.data.face_shape.FaceShapeChange` (a new identity), drawn from a generator
seeded by (seed, epoch, window index, 1); the datamodule sets it for training windows only.

Clip arrays (mfcc, llf, landmarks only; never the face crops) are loaded lazily and kept in a small
least-recently-used cache, one per worker process, with the features standardised once per clip (a
window is a slice of its whole clip's standardised features); setting ``stats`` empties the cache.
"""

from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from eapc_lightning.data.cache import load_clip
from eapc_lightning.data.face_shape import FaceShapeChange, apply_shape_change, draw_shape_change
from eapc_lightning.data.feature_stats import FeatureStats
from eapc_lightning.data.index import ClipRecord
from eapc_lightning.errors import InputError

WINDOW_ARRAYS = ("mfcc", "llf", "landmarks")
REFERENCE_MODES = ("random", "first")


def window_starts(num_frames: int, window: int, stride: int) -> range:
    """First-frame indices of the full windows of a clip: ``floor((n - T) / stride) + 1`` of them, or none."""
    return range(0, max(num_frames - window + 1, 0), stride)


class LandmarkWindowDataset(Dataset):
    """Windows of ``window`` frames every ``stride`` frames over the given clips (see the module docstring)."""

    def __init__(
        self,
        records: Sequence[ClipRecord],
        *,
        window: int,
        stride: int,
        reference: str,
        stats: FeatureStats,
        seed: int = 0,
        clip_cache_size: int = 64,
        face_shape_jitter: float = 0.0,
    ):
        if window < 1 or stride < 1:
            raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}")
        if reference not in REFERENCE_MODES:
            raise ValueError(f"reference must be one of {REFERENCE_MODES}, got {reference!r}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.records = list(records)
        self.window = window
        self.stride = stride
        self.reference = reference
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self.stats = stats
        self.seed = seed
        self.clip_cache_size = max(1, clip_cache_size)
        self.face_shape_jitter = face_shape_jitter
        pairs = [
            (clip, start)
            for clip, record in enumerate(self.records)
            for start in window_starts(record.num_frames, window, stride)
        ]
        self.windows = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        self.skipped_clips = sum(record.num_frames < window for record in self.records)

    @property
    def stats(self) -> FeatureStats:
        return self._stats

    @stats.setter
    def stats(self, stats: FeatureStats) -> None:
        self._stats = stats
        self._cache.clear()  # its features were standardised with the previous statistics

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = (key, 0) if np.isscalar(key) else (int(key[0]), int(key[1]))
        clip, start = (int(value) for value in self.windows[index])
        record = self.records[clip]
        arrays = self.clip_arrays(clip)
        stop = start + self.window
        reference_index = self._reference_index(record.num_frames, index, epoch)
        change = None
        if self.face_shape_jitter > 0:  # its own stream: the reference draw does not depend on it
            change = draw_shape_change(
                np.random.default_rng((self.seed, epoch, index, 1)), self.face_shape_jitter
            )
        return self._sample(record, arrays, start, stop, reference_index, change)

    def full_clip(self, clip: int) -> dict:
        """The whole clip as one sample (T = its frame count), reference frame 0: for rendering test clips."""
        record = self.records[clip]
        return self._sample(record, self.clip_arrays(clip), 0, record.num_frames, 0)

    def clip_arrays(self, clip: int) -> dict[str, np.ndarray]:
        """Standardised mfcc and llf and the landmarks of one clip, from this process's LRU cache."""
        arrays = self._cache.get(clip)
        if arrays is not None:
            self._cache.move_to_end(clip)
            return arrays
        record = self.records[clip]
        arrays = load_clip(record.path, WINDOW_ARRAYS).arrays
        for key in WINDOW_ARRAYS:
            if arrays[key].shape[0] != record.num_frames:
                raise InputError(
                    record.path, f"{key} has {arrays[key].shape[0]} frames, metadata says {record.num_frames}"
                )
        # per-utterance statistics run from the clip's first frame, as in streaming inference
        mfcc, llf, _ = self.stats.standardize(arrays["mfcc"], arrays["llf"])
        arrays = {"mfcc": mfcc, "llf": llf, "landmarks": arrays["landmarks"]}
        self._cache[clip] = arrays
        if len(self._cache) > self.clip_cache_size:
            self._cache.popitem(last=False)
        return arrays

    def _reference_index(self, num_frames: int, index: int, epoch: int) -> int:
        if self.reference == "first":
            return 0
        return int(np.random.default_rng((self.seed, epoch, index)).integers(num_frames))

    def _sample(
        self,
        record: ClipRecord,
        arrays: dict,
        start: int,
        stop: int,
        reference_index: int,
        change: FaceShapeChange | None = None,
    ) -> dict:
        landmarks = np.array(arrays["landmarks"][start:stop], dtype=np.float32)
        reference = np.array(arrays["landmarks"][reference_index], dtype=np.float32)
        if change is not None:  # the reference anchors the change for both
            landmarks, reference = (
                apply_shape_change(landmarks, reference, change),
                apply_shape_change(reference, reference, change),
            )
        return {
            "mfcc": torch.from_numpy(arrays["mfcc"][start:stop].copy()),
            "llf": torch.from_numpy(arrays["llf"][start:stop].copy()),
            "landmarks": torch.from_numpy(landmarks),
            "reference": torch.from_numpy(reference),
            "reference_index": torch.tensor(reference_index, dtype=torch.long),
            "emotion": torch.tensor(record.emotion, dtype=torch.long),
            "level": torch.tensor(record.level, dtype=torch.long),
            "speaker": record.speaker,
            "clip_id": record.clip_id,
            "start": torch.tensor(start, dtype=torch.long),
        }

    def __getstate__(self) -> dict:
        # Worker processes start with an empty cache rather than a copy of the parent's arrays.
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        return state


class EpochShuffleSampler(Sampler[tuple[int, int]]):
    """A fresh permutation of ``range(num_items)`` per epoch, seeded by (seed, epoch); yields (index, epoch).

    Lightning calls ``set_epoch`` before every training epoch (also through its distributed wrapper), so
    the order of epoch ``e`` depends only on the seed and ``e``: a run resumed from a checkpoint sees the
    same batches as an uninterrupted one.
    """

    def __init__(self, num_items: int, seed: int):
        self.num_items = num_items
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items

    def __iter__(self) -> Iterator[tuple[int, int]]:
        state = int(np.random.SeedSequence((self.seed, self.epoch)).generate_state(1)[0])
        generator = torch.Generator().manual_seed(state)
        epoch = self.epoch
        return iter([(int(i), epoch) for i in torch.randperm(self.num_items, generator=generator)])
