"""``LandmarkDataModule``: windows of a prepared cache for the audio-to-landmark stage.

Configured from YAML (``data_modules/*.yaml``, LightningCLI ``data: class_path/init_args``). It indexes
the cache (eapc_lightning.data.index), splits it by speaker (eapc_lightning.data.splits), computes the
feature statistics on the training split (eapc_lightning.data.feature_stats) and serves windows
(eapc_lightning.data.landmark_windows; the sample's keys are listed there).

- train: windows every ``stride`` frames, shuffled per epoch from ``seed``, reference frame drawn from the
  same clip (``reference: random``) or frame 0 (``reference: first``).
- val / test / predict: windows every ``eval_stride`` frames (default: ``window``, so they do not
  overlap), in clip order, reference frame 0 of the clip; fully deterministic.

The statistics that standardised the features are exposed as :attr:`feature_stats` and travel in
checkpoints through :meth:`state_dict` / :meth:`load_state_dict` (Lightning stores a datamodule's state in
its checkpoints); statistics loaded from a checkpoint take precedence over recomputing them.
"""

import logging

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from eapc_lightning.audio.features import AudioFeatureConfig
from eapc_lightning.data.feature_stats import FeatureStats, train_feature_stats
from eapc_lightning.data.index import ClipRecord, list_clips
from eapc_lightning.data.landmark_windows import REFERENCE_MODES, EpochShuffleSampler, LandmarkWindowDataset
from eapc_lightning.data.splits import SPLIT_NAMES, split_by_speaker
from eapc_lightning.errors import InputError

log = logging.getLogger(__name__)


class LandmarkDataModule(LightningDataModule):
    """Speaker-disjoint splits of a clip cache, served as T-frame windows (see the module docstring).

    Args:
        cache_dir: folder written by ``eapc prepare`` (clips under ``cache_dir/clips``).
        window: frames per sample (T).
        stride: frames between training window starts.
        eval_stride: frames between val/test window starts; ``None`` means ``window`` (no overlap).
        batch_size: samples per batch, all splits.
        num_workers: DataLoader worker processes.
        seed: seeds the speaker split, the training order and the random reference frames.
        val_fraction / test_fraction: share of speakers held out (rules in eapc_lightning.data.splits).
        val_speakers / test_speakers: explicit speaker lists; each overrides its fraction.
        reference: training reference frame, ``"random"`` (any frame of the clip) or ``"first"``.
        face_shape_jitter: strength of the random face-shape change of each training window
            (``eapc_lightning.data.face_shape``; 0 = off, 1 = roughly the spread of adult faces).
        standardize: standardise mfcc and llf with training-split statistics (else leave them raw).
        utterance_norm_frames: above 0, standardise each clip by its own running statistics with the
            training split's as a prior worth this many frames (per-utterance normalisation,
            ``FeatureStats.standardize``); 0 = the training split's statistics alone. The setting travels
            with the statistics into the model, so inference normalises the same way.
        std_floor: lower bound on the standard deviations used for standardising.
        clip_cache_size: clips kept in memory per worker (least recently used are dropped).
        pin_memory / persistent_workers / drop_last: passed to the DataLoaders (drop_last: training only).
    """

    def __init__(
        self,
        cache_dir: str = "data/cache/synthetic",
        window: int = 25,
        stride: int = 5,
        eval_stride: int | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        val_speakers: list[str] | None = None,
        test_speakers: list[str] | None = None,
        reference: str = "random",
        face_shape_jitter: float = 0.0,
        standardize: bool = True,
        utterance_norm_frames: float = 0.0,
        std_floor: float = 1e-5,
        clip_cache_size: int = 64,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        drop_last: bool = False,
    ):
        super().__init__()
        if reference not in REFERENCE_MODES:
            raise ValueError(f"reference must be one of {REFERENCE_MODES}, got {reference!r}")
        if window < 1 or stride < 1 or (eval_stride is not None and eval_stride < 1):
            raise ValueError(
                f"window, stride and eval_stride must be positive ({window}, {stride}, {eval_stride})"
            )
        if face_shape_jitter < 0:
            raise ValueError(f"face_shape_jitter must be non-negative, got {face_shape_jitter}")
        if utterance_norm_frames < 0 or (utterance_norm_frames > 0 and not standardize):
            raise ValueError(
                "utterance_norm_frames must be non-negative and needs standardize: true "
                f"(got {utterance_norm_frames}, standardize={standardize})"
            )
        if std_floor <= 0:
            raise ValueError(f"std_floor must be positive, got {std_floor}")
        self.save_hyperparameters()
        self.cache_dir = cache_dir
        self.window = window
        self.stride = stride
        self.eval_stride = window if eval_stride is None else eval_stride
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.val_speakers = val_speakers
        self.test_speakers = test_speakers
        self.reference = reference
        self.face_shape_jitter = face_shape_jitter
        self.standardize = standardize
        self.utterance_norm_frames = utterance_norm_frames
        self.std_floor = std_floor
        self.clip_cache_size = clip_cache_size
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.drop_last = drop_last
        self._splits: dict[str, list[ClipRecord]] | None = None
        self._stats: FeatureStats | None = None
        self._datasets: dict[str, LandmarkWindowDataset] = {}
        self._train_sampler: EpochShuffleSampler | None = None

    # ----------------------------------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        """Index, split, compute statistics and build the datasets (once; later calls reuse them)."""
        if self._splits is None:
            records = list_clips(self.cache_dir)
            self._splits = split_by_speaker(
                records,
                seed=self.seed,
                val_fraction=self.val_fraction,
                test_fraction=self.test_fraction,
                val_speakers=self.val_speakers,
                test_speakers=self.test_speakers,
            )
            counts = ", ".join(
                f"{name} {len(self._splits[name])} clips / {len({r.speaker for r in self._splits[name]})} speakers"
                for name in SPLIT_NAMES
            )
            log.info("%s: %s", self.cache_dir, counts)
        if self._stats is None:
            if self.standardize:
                raw = train_feature_stats(self.cache_dir, self._splits["train"])
                self._stats = raw.floored(self.std_floor).with_utterance_frames(self.utterance_norm_frames)
            else:
                self._stats = FeatureStats.identity()
        if not self._datasets:
            self._build_datasets()

    def _build_datasets(self) -> None:
        assert self._splits is not None and self._stats is not None
        for name in SPLIT_NAMES:
            training = name == "train"
            dataset = LandmarkWindowDataset(
                self._splits[name],
                window=self.window,
                stride=self.stride if training else self.eval_stride,
                reference=self.reference if training else "first",
                face_shape_jitter=self.face_shape_jitter if training else 0.0,
                stats=self._stats,
                seed=self.seed,
                clip_cache_size=self.clip_cache_size,
            )
            if dataset.skipped_clips:
                log.warning(
                    "%s split: %d of %d clips are shorter than the %d-frame window and give no sample",
                    name,
                    dataset.skipped_clips,
                    len(dataset.records),
                    self.window,
                )
            self._datasets[name] = dataset

    # ----------------------------------------------------------------------------------- accessors
    @property
    def splits(self) -> dict[str, list[ClipRecord]]:
        """Clip records of each split (keys train / val / test), sorted by clip id."""
        self._require_setup()
        return self._splits

    def test_clips(self) -> list[ClipRecord]:
        """The test split's clips, for renderers (load their arrays with eapc_lightning.data.cache.load_clip)."""
        return self.splits["test"]

    def dataset(self, split: str) -> LandmarkWindowDataset:
        """The window dataset of ``train``, ``val`` or ``test``."""
        self._require_setup()
        return self._datasets[split]

    def full_clip(self, record: ClipRecord) -> dict:
        """A whole clip of any split as one sample (standardised like the windows, reference = frame 0)."""
        self._require_setup()
        for dataset in self._datasets.values():
            for clip, candidate in enumerate(dataset.records):
                if candidate.clip_id == record.clip_id:
                    return dataset.full_clip(clip)
        raise KeyError(f"clip {record.clip_id!r} is not in this datamodule's splits")

    @property
    def audio_features(self) -> AudioFeatureConfig:
        """The audio feature settings every clip of the cache was prepared with (InputError if they differ)."""
        if self._splits is None:
            raise RuntimeError("the clips are not indexed yet: call setup() first")
        records = [record for name in SPLIT_NAMES for record in self._splits[name]]
        first = records[0]
        for record in records[1:]:
            if record.audio_features != first.audio_features:
                raise InputError(
                    record.path,
                    f"prepared with other audio feature settings than {first.path.name}: "
                    "prepare the whole cache with one set of settings",
                )
        return first.audio_features

    @property
    def feature_stats(self) -> dict[str, torch.Tensor]:
        """{"mfcc_mean", "mfcc_std"}: (12,) and {"llf_mean", "llf_std"}: (25,) float32 tensors, and
        ``utterance_frames`` (0-d): the per-utterance prior weight, 0 when off.

        The values that standardised the served features (``x_std = (x - mean) / std``); zeros and ones
        when ``standardize`` is off. Standard deviations are already floored.
        """
        if self._stats is None:
            raise RuntimeError(
                "feature statistics are not known yet: call setup() or load_state_dict() first"
            )
        return self._stats.as_tensors()

    # ------------------------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        self._train_sampler = EpochShuffleSampler(len(dataset), self.seed)
        return self._loader(dataset, sampler=self._train_sampler, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"))

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"))

    def _loader(self, dataset: LandmarkWindowDataset, sampler=None, drop_last: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            drop_last=drop_last,
        )

    # --------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Feature statistics and the speakers of each split, stored by Lightning in every checkpoint."""
        if self._stats is None:
            return {}
        state: dict = {"feature_stats": self.feature_stats}
        if self._splits is not None:
            state["split_speakers"] = {
                name: sorted({record.speaker for record in self._splits[name]}) for name in SPLIT_NAMES
            }
        return state

    def adopt_feature_stats(self, stats: FeatureStats) -> None:
        """Standardise with ``stats`` from now on (they replace any computed ones), e.g. a model's own."""
        self._stats = stats
        for dataset in self._datasets.values():
            dataset.stats = stats

    def load_state_dict(self, state_dict: dict) -> None:
        """Adopt a checkpoint's feature statistics (they replace any computed ones)."""
        if "feature_stats" not in state_dict:
            return
        self.adopt_feature_stats(FeatureStats.from_mapping(state_dict["feature_stats"]))
        saved = state_dict.get("split_speakers")
        if saved is not None and self._splits is not None:
            current = {name: sorted({r.speaker for r in self._splits[name]}) for name in SPLIT_NAMES}
            if current != saved:
                log.warning(
                    "the checkpoint was trained on a different speaker split (%s) than this data (%s)",
                    saved,
                    current,
                )

    def _require_setup(self) -> None:
        if self._splits is None or not self._datasets:
            raise RuntimeError("LandmarkDataModule.setup() has not been called")
