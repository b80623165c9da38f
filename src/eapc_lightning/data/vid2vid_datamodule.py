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
    mesh_flows           (L, K, 2, S, S) float32: backward flow in pixels moving reference k onto target
                         t's landmarks over the landmark mesh (eapc_lightning.landmarks.mesh_warp.LandmarkMesh)
    mouth_masks          (L, 1, S, S) float32: 1 inside target t's inner lips, where no flow exists
    frame_indices        (L,) int64   frame numbers of the targets in the clip
    clip_id              str

Training samples (``samples_per_clip`` per clip and epoch) take ``sequence_length`` frames from a random
start, a random step of 1..``max_frame_step`` frames apart (1: consecutive), and K references drawn at
random from the clip's other frames (few-shot vid2vid samples references from the same video). With
``augment`` the faces and landmarks of a sample get one random crop, flip and colour jitter
(eapc_lightning.data.vid2vid_augment, few-shot vid2vid's recipe by default) before the label maps, mesh
flows and mouth masks are made. The LightningModule's curriculum uses a prefix of the
sequence (a single frame first, then longer ones). Validation and test are deterministic: the first K
frames of a clip are the references and the following frames, never used as references, are cut into
consecutive windows of ``eval_sequence_length`` (at most ``eval_windows_per_clip`` of them), so the
metrics are on held-out frames.

Clips are split by speaker (eapc_lightning.data.splits). Clips too short for a sample are skipped with
a warning naming them.

Fine-tuning on the audio-to-landmark model's output (paper section 3.1): with ``predicted_landmarks`` (an
a2l checkpoint) the TRAINING targets' landmarks, and so their label maps, mesh flows and mouth masks, are
that model's predictions for the clip (eapc_lightning.evaluation.predicted_landmarks, computed once per
checkpoint into the cache folder), while the target images stay the real frames and the references keep
their real landmarks: at inference the reference is a photo with detected landmarks and the targets are
a2l predictions. Validation and test always draw the targets from the clips' own landmarks, so
``val/*`` / ``test/*`` of a fine-tuned model and of the model it started from measure the same thing;
both are scored on a2l landmarks by ``eapc evaluate`` (Table 1). A training clip without predictions
(its prediction failed) is left out with a warning.
"""

import dataclasses
import logging
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader, Dataset

from eapc_lightning.constants import CANONICAL_FACE_SIZE
from eapc_lightning.data.cache import CachedClip, load_clip
from eapc_lightning.data.index import ClipRecord, list_clips
from eapc_lightning.data.splits import split_by_speaker
from eapc_lightning.data.vid2vid_augment import FEW_SHOT_VID2VID_FACE as ORIGINAL
from eapc_lightning.data.vid2vid_augment import FaceAugmentation
from eapc_lightning.landmarks.draw import draw_label_maps
from eapc_lightning.landmarks.mesh_warp import LandmarkMesh, mouth_interior_mask, opencv_pixels

log = logging.getLogger(__name__)

CLIP_KEYS = ("landmarks", "faces_jpeg", "faces_offsets")


class ClipReader:
    """Loads clips' landmarks and JPEG crops, keeping the last ``capacity`` clips in memory (per process).

    ``target_landmarks`` maps clip files (``str(record.path)``) to ``.npy`` files of (T, 68, 2) landmarks in
    the canonical 256 frame (a2l predictions) that :meth:`target_frames` returns in place of the clip's own.
    """

    def __init__(
        self,
        image_size: int,
        label_thickness: int,
        capacity: int = 64,
        target_landmarks: dict[str, Path] | None = None,
    ):
        self.image_size = image_size
        self.label_thickness = label_thickness
        self.capacity = capacity
        self.target_landmarks = dict(target_landmarks or {})
        self._clips: OrderedDict[str, CachedClip] = OrderedDict()
        self._predictions: OrderedDict[str, np.ndarray] = OrderedDict()

    def clip(self, path: Path) -> CachedClip:
        key = str(path)
        if key in self._clips:
            self._clips.move_to_end(key)
        else:
            self._clips[key] = load_clip(path, CLIP_KEYS)
            if len(self._clips) > self.capacity:
                self._clips.popitem(last=False)
        return self._clips[key]

    def frames(self, path: Path, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 faces (N, S, S, 3) and their landmarks (N, 68, 2) in the canonical 256 frame."""
        clip = self.clip(path)
        faces = clip.faces(indices)
        if faces.shape[1:3] != (self.image_size, self.image_size):
            faces = np.stack(
                [
                    cv2.resize(face, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
                    for face in faces
                ]
            )
        return faces, clip.arrays["landmarks"][indices].astype(np.float32)

    def target_frames(self, path: Path, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`frames` for a sample's targets: the real faces, with the ``target_landmarks`` of the clip
        (when the reader has them) in place of its own landmarks."""
        faces, landmarks = self.frames(path, indices)
        source = self.target_landmarks.get(str(path))
        if source is None:
            return faces, landmarks
        key = str(source)
        if key in self._predictions:
            self._predictions.move_to_end(key)
        else:
            self._predictions[key] = np.load(source)
            if len(self._predictions) > self.capacity:
                self._predictions.popitem(last=False)
        return faces, self._predictions[key][indices].astype(np.float32)

    def tensors(self, faces: np.ndarray, landmarks: np.ndarray) -> dict[str, torch.Tensor]:
        """Images (N,3,S,S) in [-1,1], label maps (N,1,S,S) and landmarks (N,68,2) in S pixels."""
        labels = draw_label_maps(landmarks, self.image_size, thickness=self.label_thickness)
        return {
            "images": torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float() / 127.5 - 1,
            "labels": torch.from_numpy(labels).unsqueeze(1),
            "landmarks": torch.from_numpy(landmarks * (self.image_size / CANONICAL_FACE_SIZE)),
        }


class Vid2VidTrainDataset(Dataset):
    """``samples_per_clip`` random (references, sequence) samples per clip; randomness from torch's RNG.

    The targets are ``start + step * i``: ``step`` uniform in 1..``max_frame_step`` (capped so the sequence
    fits the clip; few-shot vid2vid's random ``t_step``), ``start`` uniform over the starts that keep the
    last target inside the clip. ``augmentation`` (eapc_lightning.data.vid2vid_augment), when given, is
    drawn once per sample and applied to its references and targets alike.
    """

    def __init__(
        self,
        records: list[ClipRecord],
        reader: ClipReader,
        *,
        num_references: int,
        sequence_length: int,
        samples_per_clip: int,
        max_frame_step: int = 1,
        augmentation: FaceAugmentation | None = None,
    ):
        if max_frame_step < 1:
            raise ValueError(f"max_frame_step must be >= 1, got {max_frame_step}")
        self.records = records
        self.reader = reader
        self.num_references = num_references
        self.sequence_length = sequence_length
        self.samples_per_clip = samples_per_clip
        self.max_frame_step = max_frame_step
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.records) * self.samples_per_clip

    def target_frames(self, num_frames: int) -> np.ndarray:
        """Frame numbers of one random target sequence of a ``num_frames`` clip."""
        gaps = self.sequence_length - 1
        largest = min(self.max_frame_step, (num_frames - 1) // gaps) if gaps else 1
        step = int(torch.randint(1, max(largest, 1) + 1, ()))
        start = int(torch.randint(0, num_frames - gaps * step, ()))
        return start + step * np.arange(self.sequence_length)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index // self.samples_per_clip]
        targets = self.target_frames(record.num_frames)
        others = np.setdiff1d(np.arange(record.num_frames), targets)
        references = others[torch.randperm(len(others))[: self.num_references].numpy()]
        return make_sample(self.reader, record, references, targets, self.augmentation)


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


def mesh_flows(reference_landmarks: torch.Tensor, landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """(L, K, 2, S, S) mesh flows from each of the K references to each of the L targets; landmarks in
    pixels of the S x S image, detector convention (x = OpenCV pixel + 0.5)."""
    meshes = [LandmarkMesh(opencv_pixels(points.numpy()), size) for points in reference_landmarks]
    flows = [[mesh.flow(opencv_pixels(points.numpy())) for mesh in meshes] for points in landmarks]
    return torch.from_numpy(np.asarray(flows, np.float32))


def mouth_masks(landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """(L, 1, S, S) inner-lip interiors of the targets (landmarks in S pixels, detector convention)."""
    masks = [mouth_interior_mask(opencv_pixels(points.numpy()), size) for points in landmarks]
    return torch.from_numpy(np.stack(masks)).unsqueeze(1)


def make_sample(
    reader: ClipReader,
    record: ClipRecord,
    references: np.ndarray,
    targets: np.ndarray,
    augmentation: FaceAugmentation | None = None,
) -> dict:
    """One sample dict (module docstring). ``augmentation`` is drawn once (torch's RNG) and applied to the
    faces and canonical-frame landmarks of the references and targets before label maps, mesh flows and
    mouth masks are made from them."""
    reference_frames = reader.frames(record.path, references)
    target_frames = reader.target_frames(record.path, targets)
    if augmentation is not None:
        params = augmentation.draw()
        reference_frames, target_frames = params(*reference_frames), params(*target_frames)
    reference = reader.tensors(*reference_frames)
    target = reader.tensors(*target_frames)
    size = reader.image_size
    return {
        "reference_images": reference["images"],
        "reference_labels": reference["labels"],
        "reference_landmarks": reference["landmarks"],
        "images": target["images"],
        "labels": target["labels"],
        "landmarks": target["landmarks"],
        "mesh_flows": mesh_flows(reference["landmarks"], target["landmarks"], size),
        "mouth_masks": mouth_masks(target["landmarks"], size),
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
        predicted_landmarks: str | None = None,
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
        augment: bool = False,
        augment_crop_scale: tuple[float, float] = ORIGINAL.crop_scale_range,
        augment_shift: float = ORIGINAL.shift_fraction,
        augment_rotation: float = ORIGINAL.rotation_degrees,
        augment_flip: float = ORIGINAL.flip_probability,
        augment_hue: float = ORIGINAL.hue_degrees,
        augment_saturation: tuple[float, float] = ORIGINAL.saturation_range,
        augment_value: tuple[float, float] = ORIGINAL.value_range,
        augment_colour_offset: float = ORIGINAL.colour_offset,
        max_frame_step: int = 1,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict[str, list[ClipRecord]] = {}
        self.target_landmarks: dict[str, Path] | None = None  # training clips' predictions (setup("fit"))
        self.augmentation = self._augmentation()  # checks the ranges now rather than in a worker

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self._usable_splits()
        if (
            self.hparams.get("predicted_landmarks")
            and stage in (None, "fit")
            and self.target_landmarks is None
        ):
            self._use_predicted_landmarks()

    def prepare_data(self) -> None:
        """With ``predicted_landmarks``, before a fit: the training clips' predictions, computed on one
        process per node (``setup`` on every process then finds them written)."""
        if not self.hparams.get("predicted_landmarks"):
            return
        if self.trainer is not None and self.trainer.state.fn != TrainerFn.FITTING:
            return
        from eapc_lightning.evaluation.predicted_landmarks import ensure_predicted_landmarks

        h = self.hparams
        ensure_predicted_landmarks(h.cache_dir, h.predicted_landmarks, self._usable_splits()["train"])

    def _use_predicted_landmarks(self) -> None:
        """Point the training targets at the a2l predictions; clips without any are left out."""
        # the one import of this package from a higher row (docs/architecture.md): the a2l model's
        # predictions are this option's input
        from eapc_lightning.evaluation.predicted_landmarks import ensure_predicted_landmarks

        h = self.hparams
        found = ensure_predicted_landmarks(h.cache_dir, h.predicted_landmarks, self.splits["train"])
        kept, targets = [], {}
        for record in self.splits["train"]:
            source = found.files.get(record.clip_id)
            if source is None:
                log.warning(
                    "%s: clip %s has no predicted landmarks; left out of training",
                    record.path,
                    record.clip_id,
                )
                continue
            frames = len(np.load(source, mmap_mode="r"))
            if frames < record.num_frames:  # predictions cover the frames with audio features only
                record = dataclasses.replace(record, num_frames=frames)
            if frames < h.sequence_length + 1:
                log.warning(
                    "%s: clip %s has predicted landmarks for %d frames, fewer than the %d a train sample needs; "
                    "skipped",
                    record.path,
                    record.clip_id,
                    frames,
                    h.sequence_length + 1,
                )
                continue
            kept.append(record)
            targets[str(record.path)] = source
        if not kept:
            raise ValueError(
                f"{h.cache_dir}: no training clip has usable predicted landmarks of {h.predicted_landmarks}"
            )
        log.info("training targets: landmarks predicted by %s (%s)", h.predicted_landmarks, found.folder)
        self.splits["train"] = kept
        self.target_landmarks = targets

    def _usable_splits(self) -> dict[str, list[ClipRecord]]:
        """The speaker split of the cache, clips too short for a sample of their split left out (warned)."""
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
            "train": h.sequence_length + h.num_references,  # the references are other frames
            "val": h.num_references + h.eval_sequence_length,
            "test": h.num_references + h.eval_sequence_length,
        }
        usable_splits = {}
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
            usable_splits[name] = usable
        if not usable_splits["train"]:
            raise ValueError(f"{h.cache_dir}: no training clip with at least {needed['train']} frames")
        return usable_splits

    def _reader(self) -> ClipReader:
        h = self.hparams
        # the predictions cover training clips only, so val / test targets keep their own landmarks
        return ClipReader(h.image_size, h.label_thickness, h.clip_cache_size, self.target_landmarks)

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

    def _augmentation(self) -> FaceAugmentation | None:
        """The training augmentation of the ``augment*`` arguments (None when ``augment`` is off)."""
        h = self.hparams
        if h.max_frame_step < 1:
            raise ValueError(f"max_frame_step must be >= 1, got {h.max_frame_step}")
        if not h.augment:
            return None
        return FaceAugmentation(
            crop_scale_range=tuple(h.augment_crop_scale),
            shift_fraction=h.augment_shift,
            rotation_degrees=h.augment_rotation,
            flip_probability=h.augment_flip,
            hue_degrees=h.augment_hue,
            saturation_range=tuple(h.augment_saturation),
            value_range=tuple(h.augment_value),
            colour_offset=h.augment_colour_offset,
        )

    def train_dataloader(self) -> DataLoader:
        """Random samples with the augmentation and frame steps; validation and test use neither."""
        h = self.hparams
        dataset = Vid2VidTrainDataset(
            self.splits["train"],
            self._reader(),
            num_references=h.num_references,
            sequence_length=h.sequence_length,
            samples_per_clip=h.samples_per_clip,
            max_frame_step=h.max_frame_step,
            augmentation=self.augmentation,
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
