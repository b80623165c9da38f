"""Callbacks that show what a model produces: pictures and videos in the run folder, and on W&B.

- :class:`LandmarkRenders` (audio-to-landmark): at the end of test, mp4s of test clips with their sound,
  predicted landmarks beside true ones (the paper's Fig. 3), plus a still grid.
- :class:`Vid2VidRenders` (landmark-to-video): per validation / test epoch a grid of reference | label |
  generated | real, and at the end of test a video of held-out test frames (reference | generated | real).

Files are written atomically on global rank 0 only, into ``dirpath`` or, when that is unset, the
trainer's ``default_root_dir`` (the run's output folder when started by ``eapc``).
"""

import logging
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from torchvision.utils import make_grid

from eapc_lightning.constants import AUDIO_SAMPLE_RATE, VIDEO_FPS
from eapc_lightning.data.cache import load_clip
from eapc_lightning.fileio import write_png
from eapc_lightning.lit.run_records import output_folder
from eapc_lightning.lit.vid2vid import to_unit

log = logging.getLogger(__name__)


def _clip_audio(meta: dict, num_frames: int, sample_rate: int) -> np.ndarray | None:
    """The clip's sound (its ``frame_range`` of ``source_audio``), or None when there is none to read."""
    source = meta.get("source_audio")
    if not source:
        return None
    from eapc_lightning.audio import load_audio
    from eapc_lightning.errors import InputError

    try:
        samples = load_audio(source, sample_rate=sample_rate)
    except InputError as error:
        log.warning("LandmarkRenders: no sound for clip %s (%s)", meta.get("clip_id"), error)
        return None
    start_frame = int((meta.get("frame_range") or [0])[0])
    per_frame = sample_rate // VIDEO_FPS
    return samples[start_frame * per_frame : (start_frame + num_frames) * per_frame]


class LandmarkRenders(Callback):
    """At the end of test, renders test clips as mp4s with sound: predicted landmarks left, true right.

    Uses the datamodule's ``test_clips()`` (clip records with a ``path`` into the cache) and the module's
    ``predict_clip(mfcc, llf, reference, emotion=None, intensity=None) -> (T, 68, 2)`` on the whole clip
    with raw features, reference = the clip's first frame (as the test windows use). Files go to
    ``<output>/renders/<clip_id>.mp4`` and ``<clip_id>.png`` (the first frames as a still grid).

    Args:
        num_clips: how many test clips to render (the first ones in clip-id order); 0 turns it off.
        max_frames: cut longer clips to this many frames (``None`` keeps the whole clip).
        size: pixels of each of the two square panels.
        face_background: draw the true landmarks over the clip's aligned face crops when they are stored.
        use_audio: mux the clip's source sound when it can be read.
        log_to_wandb: log each mp4 as a W&B video when a WandbLogger is configured.
    """

    def __init__(
        self,
        num_clips: int = 2,
        max_frames: int | None = 250,
        size: int = 256,
        face_background: bool = True,
        use_audio: bool = True,
        log_to_wandb: bool = True,
        dirpath: str | None = None,
    ):
        self.num_clips = num_clips
        self.max_frames = max_frames
        self.size = size
        self.face_background = face_background
        self.use_audio = use_audio
        self.log_to_wandb = log_to_wandb
        self.dirpath = dirpath

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.num_clips <= 0 or not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        if (
            datamodule is None
            or not hasattr(datamodule, "test_clips")
            or not hasattr(pl_module, "predict_clip")
        ):
            log.warning(
                "LandmarkRenders: needs a datamodule with test_clips() and a module with predict_clip()"
            )
            return
        folder = output_folder(self.dirpath, trainer) / "renders"
        written = []
        for record in datamodule.test_clips()[: self.num_clips]:
            try:
                written.append(self.render_clip(pl_module, record.path, folder))
            except Exception as error:  # a render must never fail the test run
                log.warning(
                    "LandmarkRenders: clip %s not rendered: %s", getattr(record, "clip_id", "?"), error
                )
        if self.log_to_wandb:
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger) and written:
                    logger.log_video(
                        key="test/renders",
                        videos=[str(path) for path in written],
                        caption=[path.stem for path in written],
                        format=["mp4"] * len(written),
                    )

    def render_clip(self, pl_module: LightningModule, clip_path: str | Path, folder: Path) -> Path:
        """Predict one cached clip from its raw features and write ``folder/<clip_id>.mp4`` (+ ``.png``)."""

        from eapc_lightning.render import comparison_frames, sequence_grid, write_video

        clip = load_clip(clip_path)
        frames = clip.num_frames if self.max_frames is None else min(clip.num_frames, self.max_frames)
        true = clip.arrays["landmarks"][:frames]
        emotion = clip.meta.get("emotion")
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            predicted = pl_module.predict_clip(
                torch.from_numpy(clip.arrays["mfcc"][:frames]),
                torch.from_numpy(clip.arrays["llf"][:frames]),
                torch.from_numpy(clip.arrays["landmarks"][0]),
            )
        pl_module.train(was_training)
        predicted = predicted.detach().cpu().numpy() if isinstance(predicted, torch.Tensor) else predicted
        faces = None
        if self.face_background and clip.arrays["faces_jpeg"].size:
            faces = clip.faces(range(frames))
        audio = _clip_audio(clip.meta, frames, AUDIO_SAMPLE_RATE) if self.use_audio else None
        clip_id = clip.meta.get("clip_id", Path(clip_path).stem)
        truth_label = f"ground truth ({emotion})" if emotion else "ground truth"
        path = folder / f"{clip_id}.mp4"
        write_video(
            path,
            comparison_frames(predicted, true, self.size, faces=faces, labels=("predicted", truth_label)),
            fps=VIDEO_FPS,
            audio=audio,
            sample_rate=AUDIO_SAMPLE_RATE,
        )
        grid = sequence_grid(predicted, true, num_frames=8, size=128)
        write_png(folder / f"{clip_id}.png", grid)
        return path


def _picture(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8."""
    return (image.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


class Vid2VidRenders(Callback):
    """Grids and a sample video of the landmark-to-video stage, from the frames its eval steps return.

    The module's ``validation_step`` / ``test_step`` return the generated frames (B, L, 3, S, S) in
    [0, 1] of the batch's target sequences. From the first batch of every validation and test epoch a
    grid of ``num_grid_samples`` rows (reference | label map | generated | real, last frame of each
    sequence) goes to ``<output>/grids/<stage>_epoch<k>.png`` and to W&B; the held-out frames of the
    first ``sample_video_clips`` test clips go, in frame order, to ``<output>/samples/test_sample.mp4``
    (reference | generated | real).
    """

    def __init__(self, num_grid_samples: int = 4, sample_video_clips: int = 4, dirpath: str | None = None):
        self.num_grid_samples = num_grid_samples
        self.sample_video_clips = sample_video_clips
        self.dirpath = dirpath
        self._sample_frames: dict[str, list[tuple[int, np.ndarray]]] = {}

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and outputs is not None and not trainer.sanity_checking:
            self._save_grid(trainer, pl_module, batch, outputs, "val")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if outputs is None:
            return
        if batch_idx == 0:
            self._save_grid(trainer, pl_module, batch, outputs, "test")
        self._collect_sample_frames(batch, outputs)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero and self._sample_frames:
            from eapc_lightning.render import write_video

            frames = [
                frame
                for clip in self._sample_frames.values()
                for _, frame in sorted(clip, key=lambda item: item[0])
            ]
            write_video(output_folder(self.dirpath, trainer) / "samples" / "test_sample.mp4", frames)
        self._sample_frames = {}

    def _collect_sample_frames(self, batch: dict, fake: torch.Tensor) -> None:
        for index, clip_id in enumerate(batch["clip_id"]):
            if clip_id not in self._sample_frames:
                if len(self._sample_frames) >= self.sample_video_clips:
                    continue
                self._sample_frames[clip_id] = []
            reference = to_unit(batch["reference_images"][index, 0])
            for t in range(fake.shape[1]):
                row = torch.cat([reference, fake[index, t], to_unit(batch["images"][index, t])], dim=-1)
                self._sample_frames[clip_id].append((int(batch["frame_indices"][index, t]), _picture(row)))

    def _save_grid(self, trainer, pl_module, batch: dict, fake: torch.Tensor, stage: str) -> None:
        if not trainer.is_global_zero or self.num_grid_samples <= 0:
            return
        tiles = []
        for index in range(min(self.num_grid_samples, fake.shape[0])):
            tiles += [
                to_unit(batch["reference_images"][index, 0]),
                batch["labels"][index, -1].float().expand(3, -1, -1),
                fake[index, -1],
                to_unit(batch["images"][index, -1]),
            ]
        picture = _picture(make_grid(torch.stack(tiles).cpu(), nrow=4, padding=2, pad_value=1.0))
        name = f"{stage}_epoch{pl_module.current_epoch:03d}.png"
        write_png(output_folder(self.dirpath, trainer) / "grids" / name, picture)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key=f"{stage}/grid", images=[picture], caption=["reference | label | generated | real"]
                )
