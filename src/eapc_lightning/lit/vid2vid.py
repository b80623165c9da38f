"""``Vid2VidModule``: the landmark-to-video stage (EAPC Eq. 10, few-shot vid2vid) as a LightningModule.

Training (docs/vid2vid.md, 'Decisions') uses manual optimisation: each step first updates the
generator G, then the discriminators D on the same (detached) generated frames, with separate Adam
optimisers (TTUR: G lr 1e-4, D lr 4e-4, betas from the config). The losses, all weighted in YAML:

* G: hinge GAN (``gan_weight``) and feature matching (``feature_matching_weight``, x10) for every
  enabled discriminator (multi-scale image D always; temporal and mouth D by switch), VGG19 perceptual
  (``perceptual_weight``, x10; 0 turns it off and needs no weights file), warp L1 of the warped
  reference / previous frame against the real frame (``warp_weight``, x10) and the mask loss
  (``mask_weight``, x10): the soft mask is pulled towards 1 where the warped source already matches the
  real frame (mean absolute error below ``mask_error_threshold``) and towards 0 elsewhere. Optional plain
  L1 to the real frame (``l1_weight``, 0 in the paper-scale config). The flow loss (``flow_weight``)
  pulls the reference flow towards the landmark-mesh flow outside the target's mouth interior, in the
  role FlowNet2's flow has in few-shot vid2vid (L1 in units of half the frame side, as ``grid_sample``'s
  coordinates); ``mesh_flow`` switches the generator's reference flow to mesh flow + residual
  (models.vid2vid.generator). ``feature_matching_layers``: feature matching averaged (``mean``) or summed (``sum``, the
  released code) over discriminator layers.
* D: hinge loss on real vs generated, summed over the enabled discriminators.

Sequence curriculum: ``sequence_length(epoch)`` is 1 for the first ``single_frame_epochs`` epochs, then
2, 4, ... doubling every ``sequence_doubling_epochs`` epochs up to ``max_sequence_length``; a step uses
that prefix of the DataModule's target sequence, generating its frames in order, each conditioned on the
previous generated frame (detached when ``detach_previous``).

An exponential moving average of G (``ema_decay``) generates for validation and test. PSNR / SSIM
(torchmetrics, images in [0, 1]; PSNR over all pixels of the epoch) and FID (eapc_lightning.metrics.image)
are logged as ``val/*`` and ``test/*`` with ``*/psnr_copy_reference``, the PSNR of copying the reference
image unchanged, beside them as a baseline. The eval steps return the generated frames, from which the
``lit.renders.Vid2VidRenders`` callback draws grids (``<run>/grids/``, W&B) and the test sample video.
On a GPU, steps run under bf16 autocast (``bf16_autocast``).

Inference: :meth:`Vid2VidModule.frame_stream` gives a callable turning landmark chunks into frames with the
EMA generator, the previous generated frame carried across chunks. The label maps are drawn with the
module's own ``label_thickness`` hyper-parameter (stored in every checkpoint).

Stage contract: ``image_size``, ``num_references`` and ``label_thickness`` describe the data as much as
the networks. ``eapc fit|test`` link them from the DataModule's settings (``data.init_args.*``, the one
place a YAML sets them), so module and data can never disagree; built by hand, pass the same values.
"""

import contextlib
import copy
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torchmetrics.image import PeakSignalNoiseRatio

from eapc_lightning.constants import CANONICAL_FACE_SIZE, NUM_LANDMARKS
from eapc_lightning.landmarks.draw import draw_label_map
from eapc_lightning.landmarks.mesh_warp import LandmarkMesh, opencv_pixels
from eapc_lightning.losses.gan import feature_matching_loss, hinge_discriminator_loss, hinge_generator_loss
from eapc_lightning.losses.perceptual import VGG19PerceptualLoss
from eapc_lightning.metrics.image import build_fid, image_metrics
from eapc_lightning.models.vid2vid.discriminators import (
    ImageDiscriminator,
    MouthDiscriminator,
    TemporalDiscriminator,
)
from eapc_lightning.models.vid2vid.generator import FewShotGenerator, GeneratorOutput

SEQUENCE_KEYS = ("images", "labels", "landmarks", "mesh_flows", "mouth_masks", "frame_indices")


def curriculum_length(epoch: int, single_frame_epochs: int, doubling_epochs: int, max_length: int) -> int:
    """1 during the single-frame phase, then 2, 4, 8, ... every ``doubling_epochs`` epochs, capped."""
    if epoch < single_frame_epochs:
        return 1
    doublings = 1 + (epoch - single_frame_epochs) // max(doubling_epochs, 1)
    return min(max_length, 2**doublings)


def linear_decay(epoch: int, max_epochs: int, decay_epochs: int) -> float:
    """Learning-rate factor: 1 until the last ``decay_epochs`` epochs, then linearly down towards 0
    (few-shot vid2vid's ``niter`` + ``niter_decay``); 1 throughout when ``decay_epochs`` is 0."""
    if decay_epochs <= 0:
        return 1.0
    start = max_epochs - decay_epochs
    return 1.0 - max(0, epoch + 1 - start) / (decay_epochs + 1)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] float32."""
    return ((images.float() + 1) / 2).clamp(0, 1)


class Vid2VidModule(LightningModule):
    """Few-shot vid2vid generator + discriminators trained adversarially; see the module docstring."""

    def __init__(
        self,
        image_size: int = 64,
        num_references: int = 1,
        generator: dict | None = None,
        mesh_flow: bool = False,
        image_discriminator: dict | None = None,
        temporal_discriminator: bool = False,
        temporal_discriminator_options: dict | None = None,
        mouth_discriminator: bool = False,
        mouth_discriminator_options: dict | None = None,
        gan_weight: float = 1.0,
        feature_matching_weight: float = 10.0,
        feature_matching_layers: str = "mean",
        perceptual_weight: float = 10.0,
        vgg19_weights_path: str | None = None,
        warp_weight: float = 10.0,
        mask_weight: float = 10.0,
        mask_error_threshold: float = 0.1,
        l1_weight: float = 0.0,
        flow_weight: float = 0.0,
        generator_lr: float = 1e-4,
        discriminator_lr: float = 4e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        lr_decay_epochs: int = 0,
        single_frame_epochs: int = 1,
        sequence_doubling_epochs: int = 1,
        max_sequence_length: int = 4,
        detach_previous: bool = True,
        ema_decay: float = 0.999,
        bf16_autocast: bool = True,
        fid_extractor: str = "auto",
        fid_on_validation: bool = True,
        label_thickness: int = 1,
        init_weights: str | None = None,
    ):
        """All arguments are described in the module docstring; ``label_thickness`` is the label maps' line
        width in pixels (the DataModule's, linked by the CLI). ``init_weights``: a vid2vid checkpoint to
        fine-tune (paper section 3.1, :meth:`load_initial_weights`)."""
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = FewShotGenerator(
            image_size=image_size, num_references=num_references, mesh_flow=mesh_flow, **(generator or {})
        )
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.image_discriminator = ImageDiscriminator(**(image_discriminator or {}))
        self.temporal_discriminator = (
            TemporalDiscriminator(**(temporal_discriminator_options or {}))
            if temporal_discriminator
            else None
        )
        self.mouth_discriminator = (
            MouthDiscriminator(**(mouth_discriminator_options or {})) if mouth_discriminator else None
        )
        self.perceptual = VGG19PerceptualLoss(vgg19_weights_path) if perceptual_weight > 0 else None
        self.val_metrics = image_metrics().clone(prefix="val/")
        self.test_metrics = image_metrics().clone(prefix="test/")
        self.val_copy_psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.test_copy_psnr = PeakSignalNoiseRatio(data_range=1.0)
        # FID holds a 2048-d Inception network: kept outside the module tree so it never enters checkpoints.
        self._fid: dict[str, object] = {}

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        data_settings = getattr(datamodule, "hparams", {})
        for key in ("image_size", "num_references", "label_thickness"):
            if key in data_settings and data_settings[key] != self.hparams[key]:
                raise ValueError(
                    f"{key}: the model has {self.hparams[key]}, the data {data_settings[key]}; "
                    "set it once, in data.init_args (eapc links it into the model)"
                )
        if stage == "fit" and self.hparams.get("init_weights"):
            self.load_initial_weights(self.hparams["init_weights"])

    # ------------------------------------------------------------------ fine-tuning (init_weights)
    def load_initial_weights(self, path: str) -> None:
        """The generator, EMA generator and discriminators of a vid2vid checkpoint, loaded when fitting
        starts. Unlike ``--ckpt_path``, optimisers, epochs and the curriculum start anew; a resumed
        fine-tuning run then restores its own checkpoint over these. The networks must have the same
        shapes; a discriminator the checkpoint lacks starts fresh (with a warning)."""
        from eapc_lightning.errors import InputError

        if not Path(path).is_file():
            raise InputError(path, "init_weights: no such vid2vid checkpoint")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # not a torch file, or one holding more than tensors and settings
            raise InputError(
                path, f"init_weights: not a readable checkpoint ({type(error).__name__})"
            ) from None
        state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
        required = ("generator", "generator_ema", "image_discriminator")
        optional = ("temporal_discriminator", "mouth_discriminator")
        own = {key for key in self.state_dict() if key.split(".", 1)[0] in required + optional}
        wanted = {key: value for key, value in (state or {}).items() if key in own}
        missing = sorted(own - set(wanted))
        if not wanted or any(key.split(".", 1)[0] in required for key in missing):
            raise InputError(
                path, f"init_weights: not a vid2vid checkpoint of this network shape (missing {missing[:3]})"
            )
        try:
            self.load_state_dict(wanted, strict=False)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[-1].strip()
            raise InputError(
                path, f"init_weights: not a vid2vid checkpoint of this network shape ({first})"
            ) from None
        for name in sorted({key.split(".", 1)[0] for key in missing}):
            warnings.warn(f"init_weights {path}: it has no {name}; that one starts fresh", stacklevel=2)

    def discriminators(self) -> list[torch.nn.Module]:
        candidates = (self.image_discriminator, self.temporal_discriminator, self.mouth_discriminator)
        return [discriminator for discriminator in candidates if discriminator is not None]

    def configure_optimizers(self):
        h = self.hparams
        betas = tuple(h.betas)
        generator = torch.optim.Adam(self.generator.parameters(), lr=h.generator_lr, betas=betas)
        discriminator_params = [p for d in self.discriminators() for p in d.parameters()]
        discriminator = torch.optim.Adam(discriminator_params, lr=h.discriminator_lr, betas=betas)
        if h.lr_decay_epochs <= 0:
            return [generator, discriminator]
        max_epochs = int(self.trainer.max_epochs)

        def factor(epoch: int) -> float:
            return linear_decay(epoch, max_epochs, h.lr_decay_epochs)

        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in (generator, discriminator)]
        return [generator, discriminator], schedulers

    def on_train_epoch_end(self) -> None:
        for scheduler in self.lr_schedulers() or []:
            scheduler.step()

    def sequence_length(self) -> int:
        h = self.hparams
        return curriculum_length(
            self.current_epoch, h.single_frame_epochs, h.sequence_doubling_epochs, h.max_sequence_length
        )

    def _autocast(self):
        if self.hparams.bf16_autocast and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ generation
    def generate_sequence(
        self, generator: FewShotGenerator, batch: dict, length: int, detach_previous: bool
    ) -> list[GeneratorOutput]:
        """Frames 0..length-1 in order, each conditioned on the previous generated frame."""
        outputs: list[GeneratorOutput] = []
        previous = None
        mesh_flows = batch.get("mesh_flows")
        for t in range(length):
            label = batch["labels"][:, t]
            output = generator(
                label,
                batch["reference_images"],
                batch["reference_labels"],
                previous,
                None if mesh_flows is None else mesh_flows[:, t],
            )
            outputs.append(output)
            previous = (label, output.image.detach() if detach_previous else output.image)
        return outputs

    # ------------------------------------------------------------------ losses
    def _frames(self, batch: dict, key: str, length: int) -> torch.Tensor:
        """(B, L, ...) sequence entry -> (B*L, ...) with frames of one sample adjacent."""
        return batch[key][:, :length].flatten(0, 1)

    def _references(self, batch: dict, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """First reference image / label repeated for each of the ``length`` frames: (B*L, C, H, W)."""
        images = batch["reference_images"][:, 0].repeat_interleave(length, dim=0)
        labels = batch["reference_labels"][:, 0].repeat_interleave(length, dim=0)
        return images, labels

    def _discriminate(
        self, batch: dict, images: torch.Tensor, length: int
    ) -> dict[str, list[list[torch.Tensor]]]:
        """Outputs of every enabled discriminator on (B*L, 3, H, W) frames of the batch's sequences."""
        labels = self._frames(batch, "labels", length)
        reference_images, reference_labels = self._references(batch, length)
        outputs = {"image": self.image_discriminator(labels, images, reference_labels, reference_images)}
        if self.temporal_discriminator is not None and length >= self.temporal_discriminator.num_frames:
            frames = self.temporal_discriminator.num_frames
            sequence = images.unflatten(0, (-1, length))[:, :frames]
            outputs["temporal"] = self.temporal_discriminator(batch["labels"][:, :frames], sequence)
        if self.mouth_discriminator is not None:
            outputs["mouth"] = self.mouth_discriminator(
                labels, images, self._frames(batch, "landmarks", length)
            )
        return outputs

    def generator_losses(self, batch: dict, outputs: list[GeneratorOutput]) -> dict[str, torch.Tensor]:
        h = self.hparams
        length = len(outputs)
        fake = torch.stack([o.image for o in outputs], dim=1).flatten(0, 1)
        real = self._frames(batch, "images", length)
        fake_scores = self._discriminate(batch, fake, length)
        with torch.no_grad():
            real_scores = self._discriminate(batch, real, length)
        losses = {}
        for name, scores in fake_scores.items():
            losses[f"gan_{name}"] = h.gan_weight * hinge_generator_loss(scores)
            losses[f"feature_matching_{name}"] = h.feature_matching_weight * feature_matching_loss(
                real_scores[name], scores, h.feature_matching_layers
            )
        if self.perceptual is not None:
            losses["perceptual"] = h.perceptual_weight * self.perceptual(fake, real)
        if h.l1_weight > 0:
            losses["l1"] = h.l1_weight * F.l1_loss(fake, real)
        warp_terms, mask_terms = [], []
        for t, output in enumerate(outputs):
            target = batch["images"][:, t]
            sources = [(output.reference_warped, output.reference_mask)]
            if output.previous_warped is not None:
                sources.append((output.previous_warped, output.previous_mask))
            for warped, mask in sources:
                error = (warped - target).abs()
                warp_terms.append(error.mean())
                reliable = (error.detach().mean(dim=1, keepdim=True) < h.mask_error_threshold).to(mask.dtype)
                mask_terms.append(F.l1_loss(mask, reliable))
        losses["warp"] = h.warp_weight * torch.stack(warp_terms).mean()
        losses["mask"] = h.mask_weight * torch.stack(mask_terms).mean()
        if h.flow_weight > 0:
            losses["flow"] = h.flow_weight * self.flow_loss(batch, outputs)
        return losses

    def flow_loss(self, batch: dict, outputs: list[GeneratorOutput]) -> torch.Tensor:
        """Mean L1 between the reference flow and the mesh flow of the reference it warped, outside the
        target's mouth interior, in units of half the frame side."""
        terms = []
        batch_index = torch.arange(batch["images"].shape[0], device=self.device)
        for t, output in enumerate(outputs):
            mesh = batch["mesh_flows"][:, t][batch_index, output.reference_index]
            outside = 1 - batch["mouth_masks"][:, t]
            error = (output.reference_flow - mesh).abs().sum(dim=1, keepdim=True) * outside
            terms.append(error.sum() / outside.sum().clamp_min(1.0) / (self.hparams.image_size / 2))
        return torch.stack(terms).mean()

    def discriminator_losses(self, batch: dict, fake: torch.Tensor, length: int) -> dict[str, torch.Tensor]:
        real_scores = self._discriminate(batch, self._frames(batch, "images", length), length)
        fake_scores = self._discriminate(batch, fake.detach(), length)
        return {
            f"d_{name}": hinge_discriminator_loss(real_scores[name], fake_scores[name])
            for name in real_scores
        }

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int) -> None:
        optimizer_g, optimizer_d = self.optimizers()
        length = min(self.sequence_length(), batch["images"].shape[1])

        self.toggle_optimizer(optimizer_g)
        with self._autocast():
            outputs = self.generate_sequence(self.generator, batch, length, self.hparams.detach_previous)
            g_losses = self.generator_losses(batch, outputs)
            g_total = torch.stack(list(g_losses.values())).sum()
        optimizer_g.zero_grad(set_to_none=True)
        self.manual_backward(g_total)
        optimizer_g.step()
        self.untoggle_optimizer(optimizer_g)

        self.toggle_optimizer(optimizer_d)
        fake = torch.stack([o.image for o in outputs], dim=1).flatten(0, 1).detach()
        with self._autocast():
            d_losses = self.discriminator_losses(batch, fake, length)
            d_total = torch.stack(list(d_losses.values())).sum()
        optimizer_d.zero_grad(set_to_none=True)
        self.manual_backward(d_total)
        optimizer_d.step()
        self.untoggle_optimizer(optimizer_d)

        self.update_ema()
        logs = {f"train/{k}": v.detach() for k, v in {**g_losses, **d_losses}.items()}
        logs["train/g_total"] = g_total.detach()
        logs["train/d_total"] = d_total.detach()
        logs["train/l1_to_real"] = F.l1_loss(fake.float(), self._frames(batch, "images", length).float())
        logs["train/sequence_length"] = float(length)
        self.log_dict(logs, prog_bar=False, batch_size=batch["images"].shape[0])
        self.log("train/g", g_total.detach(), prog_bar=True, batch_size=batch["images"].shape[0])

    @torch.no_grad()
    def update_ema(self) -> None:
        decay = self.hparams.ema_decay
        ema = list(self.generator_ema.parameters())
        current = list(self.generator.parameters())
        torch._foreach_lerp_(ema, current, 1 - decay)
        for ema_buffer, buffer in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            ema_buffer.copy_(buffer)

    # ------------------------------------------------------------------ evaluation
    def _fid_metric(self, stage: str):
        if stage not in self._fid:
            fid = None
            if stage == "test" or self.hparams.fid_on_validation:
                fid = build_fid(self.hparams.fid_extractor)
            self._fid[stage] = fid
        fid = self._fid[stage]
        if fid is not None:
            fid.to(self.device)
        return fid

    def _evaluate(self, batch: dict, batch_idx: int, stage: str) -> torch.Tensor:
        length = batch["images"].shape[1]
        with self._autocast():
            outputs = self.generate_sequence(self.generator_ema, batch, length, detach_previous=True)
        fake = to_unit(torch.stack([o.image for o in outputs], dim=1).flatten(0, 1))
        real = to_unit(self._frames(batch, "images", length))
        reference = to_unit(batch["reference_images"][:, 0]).repeat_interleave(length, dim=0)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        copy_psnr = self.val_copy_psnr if stage == "val" else self.test_copy_psnr
        metrics.update(fake, real)
        copy_psnr.update(reference, real)
        fid = self._fid_metric(stage)
        if fid is not None:
            fid.update(real, real=True)
            fid.update(fake, real=False)
        return fake.unflatten(0, (-1, length))

    def _log_epoch(self, stage: str) -> None:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        copy_psnr = self.val_copy_psnr if stage == "val" else self.test_copy_psnr
        values = {name: value.float() for name, value in metrics.compute().items()}
        values[f"{stage}/psnr_copy_reference"] = copy_psnr.compute().float()
        metrics.reset()
        copy_psnr.reset()
        fid = self._fid.get(stage)
        if fid is not None:
            if int(fid.fake_features_num_samples) >= 2:
                values[f"{stage}/fid"] = fid.compute().float().to(self.device)
            else:
                warnings.warn(f"{stage} FID needs at least 2 frames; skipped", stacklevel=2)
            fid.reset()
        self.log_dict(values, prog_bar=True)

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """The generated frames (B, L, 3, S, S) in [0, 1], for callbacks (lit.renders.Vid2VidRenders)."""
        return self._evaluate(batch, batch_idx, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, batch_idx, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # ------------------------------------------------------------------ inference
    def frame_stream(self, reference_image: np.ndarray, reference_landmarks: np.ndarray) -> "FrameStream":
        """A callable turning (n, 68, 2) canonical landmarks into RGB uint8 frames (eq. 10, EMA generator).

        Args:
            reference_image: (H, W, 3) RGB uint8 aligned face crop (any size; resized to ``image_size``).
            reference_landmarks: (68, 2) its landmarks in canonical-frame (256 px) coordinates.
        """
        return FrameStream(self, reference_image, reference_landmarks, int(self.hparams.label_thickness))


class FrameStream:
    """Landmark chunks -> frames; each frame is conditioned on the previous generated one, across calls.

    Made by :meth:`Vid2VidModule.frame_stream`. The aligned photo and its label map are the reference
    (repeated ``num_references`` times); a generator with ``mesh_flow`` gets each frame's mesh flow from
    the photo's landmarks.
    """

    def __init__(
        self,
        module: Vid2VidModule,
        reference_image: np.ndarray,
        reference_landmarks: np.ndarray,
        label_thickness: int,
    ) -> None:
        if reference_image.ndim != 3 or reference_image.shape[2] != 3:
            raise ValueError(f"reference_image must be (H, W, 3) RGB, got {reference_image.shape}")
        if tuple(np.shape(reference_landmarks)) != (NUM_LANDMARKS, 2):
            raise ValueError(f"reference_landmarks must be (68, 2), got {np.shape(reference_landmarks)}")
        self.generator = module.generator_ema.eval()
        self.size = int(module.hparams.image_size)
        self.device = module.device
        self.label_thickness = label_thickness
        image = cv2.resize(reference_image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        image = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
        label = torch.from_numpy(self._label(reference_landmarks))[None]
        self.references = int(module.hparams.num_references)
        self.reference_images = image[None, None].repeat(1, self.references, 1, 1, 1).to(self.device)
        self.reference_labels = label[None, None].repeat(1, self.references, 1, 1, 1).to(self.device)
        self.mesh = (
            LandmarkMesh(self._pixels(reference_landmarks), self.size) if self.generator.mesh_flow else None
        )
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None

    def _pixels(self, landmarks: np.ndarray) -> np.ndarray:
        """Canonical-frame landmarks -> OpenCV pixels of the generator's frame (x = detector x - 0.5)."""
        return opencv_pixels(landmarks, self.size / CANONICAL_FACE_SIZE)

    def _mesh_flows(self, landmarks: np.ndarray) -> torch.Tensor | None:
        if self.mesh is None:
            return None
        flow = torch.from_numpy(self.mesh.flow(self._pixels(landmarks)))
        return flow[None, None].repeat(1, self.references, 1, 1, 1).to(self.device)

    def _label(self, landmarks: np.ndarray) -> np.ndarray:
        return draw_label_map(
            landmarks, self.size, source_size=CANONICAL_FACE_SIZE, thickness=self.label_thickness
        )

    @torch.inference_mode()
    def __call__(self, landmarks: np.ndarray | torch.Tensor) -> Iterator[np.ndarray]:
        """(image_size, image_size, 3) uint8 frames, one per row of ``landmarks`` (n, 68, 2)."""
        for points in np.asarray(landmarks, dtype=np.float32):
            label = torch.from_numpy(self._label(points))[None, None].to(self.device)
            output = self.generator(
                label, self.reference_images, self.reference_labels, self.previous, self._mesh_flows(points)
            )
            self.previous = (label, output.image)
            unit = to_unit(output.image[0])
            yield (unit.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
