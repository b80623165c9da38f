"""Data for the landmark-to-video stage: reference frames + a target sequence, with label maps.

Each sample comes from one cached clip (``eapc prepare`` output, see eapc_lightning.data.cache): its
aligned face crops (JPEG) and aligned landmarks in the canonical 256 frame. Images are resized to
``image_size`` and scaled to [-1, 1]; landmarks are scaled from the 256 frame to ``image_size`` pixels
and drawn as label maps (eapc_lightning.landmarks.draw). A sample is a dict::

    reference_images     (K, 3, S, S) float32 in [-1, 1]
    reference_labels     (K, 1, S, S) float32 in {0, 1}
    reference_landmarks  (K, 68, 2)   float32, pixels of the S x S image
    images               (L, 3, S, S) the target sequence
    labels               (L, 1, S, S)
    landmarks            (L, 68, 2)
    frame_indices        (L,) int64   frame numbers of the targets in the clip
    clip_id              str

Training samples (``samples_per_clip`` per clip and epoch) take ``sequence_length`` consecutive frames
from a random start and K references drawn at random from the clip's other frames (few-shot vid2vid
samples references from the same video). The LightningModule's curriculum uses a prefix of the
sequence (a single frame first, then longer ones). Validation and test are deterministic: the first K
frames of a clip are the references and the following frames, never used as references, are cut into
consecutive windows of ``eval_sequence_length`` (at most ``eval_windows_per_clip`` of them), so the
metrics are on held-out frames.

Clips are split by speaker (eapc_lightning.data.splits). Clips too short for a sample are skipped with
a warning naming them.
"""

import logging
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from eapc_lightning.constants import CANONICAL_FACE_SIZE
from eapc_lightning.data.cache import CachedClip, load_clip
from eapc_lightning.data.index import ClipRecord, list_clips
from eapc_lightning.data.splits import split_by_speaker
from eapc_lightning.landmarks.draw import draw_label_maps

log = logging.getLogger(__name__)

CLIP_KEYS = ("landmarks", "faces_jpeg", "faces_offsets")


class ClipReader:
    """Loads clips' landmarks and JPEG crops, keeping the last ``capacity`` clips in memory (per process)."""

    def __init__(self, image_size: int, label_thickness: int, capacity: int = 64):
        self.image_size = image_size
        self.label_thickness = label_thickness
        self.capacity = capacity
        self._clips: OrderedDict[str, CachedClip] = OrderedDict()

    def clip(self, path: Path) -> CachedClip:
        key = str(path)
        if key in self._clips:
            self._clips.move_to_end(key)
        else:
            self._clips[key] = load_clip(path, CLIP_KEYS)
            if len(self._clips) > self.capacity:
                self._clips.popitem(last=False)
        return self._clips[key]

    def frames(self, path: Path, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """Images (N,3,S,S) in [-1,1], label maps (N,1,S,S) and landmarks (N,68,2) in S pixels."""
        clip = self.clip(path)
        faces = clip.faces(indices)
        if faces.shape[1:3] != (self.image_size, self.image_size):
            faces = np.stack(
                [
                    cv2.resize(face, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
                    for face in faces
                ]
            )
        landmarks = clip.arrays["landmarks"][indices].astype(np.float32)
        labels = draw_label_maps(landmarks, self.image_size, thickness=self.label_thickness)
        images = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 127.5 - 1
        return {
            "images": images,
            "labels": torch.from_numpy(labels).unsqueeze(1),
            "landmarks": torch.from_numpy(landmarks * (self.image_size / CANONICAL_FACE_SIZE)),
        }


class Vid2VidTrainDataset(Dataset):
    """``samples_per_clip`` random (references, sequence) samples per clip; randomness from torch's RNG."""

    def __init__(
        self,
        records: list[ClipRecord],
        reader: ClipReader,
        *,
        num_references: int,
        sequence_length: int,
        samples_per_clip: int,
    ):
        self.records = records
        self.reader = reader
        self.num_references = num_references
        self.sequence_length = sequence_length
        self.samples_per_clip = samples_per_clip

    def __len__(self) -> int:
        return len(self.records) * self.samples_per_clip

    def __getitem__(self, index: int) -> dict:
        record = self.records[index // self.samples_per_clip]
        start = int(torch.randint(0, record.num_frames - self.sequence_length + 1, ()))
        targets = np.arange(start, start + self.sequence_length)
        others = np.setdiff1d(np.arange(record.num_frames), targets)
        references = others[torch.randperm(len(others))[: self.num_references].numpy()]
        return make_sample(self.reader, record, references, targets)


class Vid2VidEvalDataset(Dataset):
    """Deterministic samples: first K frames as references, then consecutive windows of held-out frames."""

    def __init__(
        self,
        records: list[ClipRecord],
        reader: ClipReader,
        *,
        num_references: int,
        sequence_length: int,
        windows_per_clip: int,
    ):
        self.reader = reader
        self.num_references = num_references
        self.items: list[tuple[ClipRecord, int]] = []
        self.sequence_length = sequence_length
        for record in records:
            windows = (record.num_frames - num_references) // sequence_length
            for window in range(min(windows, windows_per_clip)):
                self.items.append((record, num_references + window * sequence_length))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        record, start = self.items[index]
        return make_sample(
            self.reader,
            record,
            np.arange(self.num_references),
            np.arange(start, start + self.sequence_length),
        )


def make_sample(reader: ClipReader, record: ClipRecord, references: np.ndarray, targets: np.ndarray) -> dict:
    reference = reader.frames(record.path, references)
    target = reader.frames(record.path, targets)
    return {
        "reference_images": reference["images"],
        "reference_labels": reference["labels"],
        "reference_landmarks": reference["landmarks"],
        "images": target["images"],
        "labels": target["labels"],
        "landmarks": target["landmarks"],
        "frame_indices": torch.from_numpy(targets.astype(np.int64)),
        "clip_id": record.clip_id,
    }


class Vid2VidDataModule(LightningDataModule):
    """Speaker-split cached clips -> (references, target sequence) batches; see the module docstring."""

    def __init__(
        self,
        cache_dir: str = "data/cache/synthetic",
        image_size: int = 64,
        num_references: int = 1,
        sequence_length: int = 4,
        eval_sequence_length: int = 8,
        eval_windows_per_clip: int = 2,
        samples_per_clip: int = 4,
        label_thickness: int = 1,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        val_speakers: list[str] | None = None,
        test_speakers: list[str] | None = None,
        clip_cache_size: int = 64,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict[str, list[ClipRecord]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        h = self.hparams
        splits = split_by_speaker(
            list_clips(h.cache_dir),
            seed=h.seed,
            val_fraction=h.val_fraction,
            test_fraction=h.test_fraction,
            val_speakers=h.val_speakers,
            test_speakers=h.test_speakers,
        )
        needed = {
            "train": h.sequence_length + 1,
            "val": h.num_references + h.eval_sequence_length,
            "test": h.num_references + h.eval_sequence_length,
        }
        for name, records in splits.items():
            usable = [record for record in records if record.num_frames >= needed[name]]
            for record in records:
                if record.num_frames < needed[name]:
                    log.warning(
                        "%s: clip %s has %d frames, fewer than the %d a %s sample needs; skipped",
                        record.path,
                        record.clip_id,
                        record.num_frames,
                        needed[name],
                        name,
                    )
            self.splits[name] = usable
        if not self.splits["train"]:
            raise ValueError(f"{h.cache_dir}: no training clip with at least {needed['train']} frames")

    def _reader(self) -> ClipReader:
        return ClipReader(self.hparams.image_size, self.hparams.label_thickness, self.hparams.clip_cache_size)

    def _loader(self, dataset: Dataset, *, train: bool) -> DataLoader:
        h = self.hparams
        workers = h.num_workers
        return DataLoader(
            dataset,
            batch_size=h.batch_size if train else (h.eval_batch_size or h.batch_size),
            shuffle=train,
            num_workers=workers,
            pin_memory=h.pin_memory,
            persistent_workers=h.persistent_workers and workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        h = self.hparams
        dataset = Vid2VidTrainDataset(
            self.splits["train"],
            self._reader(),
            num_references=h.num_references,
            sequence_length=h.sequence_length,
            samples_per_clip=h.samples_per_clip,
        )
        return self._loader(dataset, train=True)

    def _eval_dataset(self, split: str) -> Vid2VidEvalDataset:
        h = self.hparams
        return Vid2VidEvalDataset(
            self.splits[split],
            self._reader(),
            num_references=h.num_references,
            sequence_length=h.eval_sequence_length,
            windows_per_clip=h.eval_windows_per_clip,
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._eval_dataset("val"), train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._eval_dataset("test"), train=False)
