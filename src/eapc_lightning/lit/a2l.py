"""``A2LModule``: the audio-to-landmark stage (Dual-LSTM + LLF encoder) as a LightningModule.

Configured from YAML through LightningCLI, e.g.::

    model:
      class_path: eapc_lightning.lit.a2l.A2LModule
      init_args:
        network: {prior_skip: true, attention: true, emotion_source: predicted}
        mse_weight: 1.0
        lmd_weight: 1.0
        emotion_loss_weight: 0.1
        lr: 1.0e-4

Batches are the dicts of ``LandmarkDataModule``: ``mfcc`` (B, T, 28, 12) and ``llf`` (B, T, 25)
standardised, ``landmarks`` (B, T, 68, 2) and ``reference`` (B, 68, 2) in canonical-frame pixels,
``emotion`` (B,) with -1 for unlabelled clips.

Logged: ``train/loss``, ``train/mse``, ``train/lmd``, ``train/emotion_ce``; ``val/...`` and ``test/...``
``M-LD``, ``M-LVD``, ``F-LD``, ``F-LVD``, ``emotion_acc``, ``loss``; on test, with ``baseline_metrics``,
the same landmark metrics for the held-still baseline (the reference landmarks repeated over time) as
``test/baseline_M-LD`` etc. ``emotion_acc`` scores one prediction per window (the argmax of the LLF
encoder's per-frame distributions averaged over the window) against the clip label, ignoring label -1.

The feature statistics the DataModule standardised with are copied into buffers when fitting starts, so a
checkpoint alone can turn raw features into landmarks: :meth:`A2LModule.landmark_stream` chunk by chunk
(state carried across chunks), :meth:`A2LModule.predict_clip` for a whole clip on top of it.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from eapc_lightning.audio.features import AudioFeatureConfig
from eapc_lightning.constants import EMOTIONS, NUM_LANDMARKS
from eapc_lightning.data.feature_stats import UTTERANCE_KEY, FeatureStats, UtteranceMoments
from eapc_lightning.errors import InputError
from eapc_lightning.losses import A2LLoss, LossTerms
from eapc_lightning.metrics import METRIC_NAMES, LandmarkDistance, LandmarkVelocityDistance
from eapc_lightning.models import DualLSTM, DualLSTMConfig, DualLSTMOutput, StreamState, emotion_condition

FEATURE_STATS_SHAPES = {"mfcc_mean": (12,), "mfcc_std": (12,), "llf_mean": (25,), "llf_std": (25,)}
Batch = Mapping[str, Any]


def landmark_metric_set() -> nn.ModuleDict:
    """M-LD, M-LVD, F-LD, F-LVD metric objects keyed by their names."""
    metric_classes = {"distance": LandmarkDistance, "velocity": LandmarkVelocityDistance}
    return nn.ModuleDict(
        {name: metric_classes[kind](region) for (kind, region), name in METRIC_NAMES.items()}
    )


def window_emotion_prediction(emotion_logits: torch.Tensor) -> torch.Tensor:
    """One class per window: the argmax of the per-frame distributions averaged over the frames."""
    return emotion_logits.softmax(-1).mean(1).argmax(-1)


class A2LModule(LightningModule):
    """Audio-to-landmark training, evaluation and streaming inference (paper sections 3.3-3.6)."""

    def __init__(
        self,
        network: DualLSTMConfig | None = None,
        mse_weight: float = 1.0,
        lmd_weight: float = 1.0,
        emotion_loss_weight: float = 0.0,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        lr_scheduler: Literal["none", "cosine"] = "none",
        baseline_metrics: bool = True,
        prior_reset_frames: int | None = 25,
        init_weights: str | None = None,
    ) -> None:
        """
        Args:
            network: architecture switches and sizes (:class:`DualLSTMConfig`; None = defaults).
            mse_weight: weight of eq. 11.
            lmd_weight: weight of the structure-preserving eq. 12.
            emotion_loss_weight: weight of the per-frame emotion cross-entropy on the LLF encoder (0 = off).
            lr: Adam learning rate (paper: 1e-4).
            weight_decay: Adam weight decay.
            lr_scheduler: ``"none"`` or ``"cosine"`` (cosine annealing to 0 over all training steps).
            baseline_metrics: on test, also score the held-still reference landmarks.
            prior_reset_frames: in streaming inference, eq. 4's running sum restarts (eq. 5) every this many
                frames from the start of the audio, the other recurrent states carrying on; set it to the
                training window. Trained on 25-frame windows, the sum drifts when carried further: over
                60 s of test speech mouth LD grew from 6 px (first 10 s) to 75 px (last 10 s) without the
                restart, and stayed at 2.2-2.7 px with it. None carries the sum over the whole audio.
            init_weights: an a2l checkpoint to fine-tune: when fitting starts, its network weights, feature
                statistics and audio feature settings replace the fresh ones (the network must have the
                same shape). Unlike ``--ckpt_path``, optimiser, epochs and schedule start anew, and the
                checkpoint's statistics are kept rather than the new data's (the weights expect them), and
                the datamodule standardises the new data with them (``adopt_feature_stats``).
        """
        super().__init__()
        if prior_reset_frames is not None and prior_reset_frames < 1:
            raise ValueError(f"prior_reset_frames must be at least 1 or None, got {prior_reset_frames}")
        self.save_hyperparameters()
        self.network = DualLSTM(network)
        self.loss = A2LLoss(mse_weight, lmd_weight, emotion_loss_weight)
        for name, shape in FEATURE_STATS_SHAPES.items():
            fill = torch.ones if name.endswith("_std") else torch.zeros
            self.register_buffer(name, fill(shape))
        self.register_buffer(UTTERANCE_KEY, torch.tensor(0.0))
        self.register_buffer("feature_stats_set", torch.tensor(False))
        # the settings the training cache's features were computed with; saved in every checkpoint
        self.audio_features: AudioFeatureConfig | None = None
        self.val_metrics = landmark_metric_set()
        self.test_metrics = landmark_metric_set()
        self.baseline_metrics = landmark_metric_set() if baseline_metrics else None
        self.val_emotion_accuracy = MulticlassAccuracy(
            num_classes=len(EMOTIONS), average="micro", ignore_index=-1
        )
        self.test_emotion_accuracy = MulticlassAccuracy(
            num_classes=len(EMOTIONS), average="micro", ignore_index=-1
        )
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()

    # ---------------------------------------------------------------- feature statistics

    def set_feature_stats(self, stats: Mapping[str, Any]) -> None:
        """Copy ``mfcc_mean``/``mfcc_std`` (12,) and ``llf_mean``/``llf_std`` (25,) into the buffers, and
        ``utterance_frames`` (per-utterance normalisation's prior weight; 0 = off) where given."""
        for name, shape in FEATURE_STATS_SHAPES.items():
            if name not in stats:
                raise ValueError(
                    f"feature_stats lacks {name!r}; expected keys {sorted(FEATURE_STATS_SHAPES)}"
                )
            value = torch.as_tensor(np.asarray(stats[name]), dtype=torch.float32)
            if tuple(value.shape) != shape:
                raise ValueError(f"feature_stats[{name!r}] has shape {tuple(value.shape)}, expected {shape}")
            getattr(self, name).copy_(value)
        getattr(self, UTTERANCE_KEY).fill_(float(stats.get(UTTERANCE_KEY, 0.0)))
        self.feature_stats_set.fill_(True)

    def standardizer(self) -> FeatureStats:
        """The statistics in this module's buffers, which standardise raw features as training did."""
        names = (*FEATURE_STATS_SHAPES, UTTERANCE_KEY)
        return FeatureStats.from_mapping({name: getattr(self, name) for name in names})

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.audio_features is not None:
            checkpoint["audio_features"] = self.audio_features.to_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # checkpoints from before per-utterance normalisation standardised with the training statistics only
        checkpoint.get("state_dict", {}).setdefault(UTTERANCE_KEY, torch.tensor(0.0))
        recorded = checkpoint.get("audio_features")
        self.audio_features = None if recorded is None else AudioFeatureConfig.from_dict(recorded)

    def _check_audio_features(self) -> None:
        """Refuse data whose audio features were computed with other settings than this model's."""
        datamodule = getattr(self.trainer, "datamodule", None)
        data_settings = getattr(datamodule, "audio_features", None)
        if data_settings is None or self.audio_features is None:
            return
        if self.audio_features != data_settings:
            raise ValueError(
                f"the data in {getattr(datamodule, 'cache_dir', '?')} was prepared with audio feature settings "
                f"{data_settings.digest()}, this model was trained on {self.audio_features.digest()}: "
                "prepare the data with the model's settings"
            )

    # after the checkpoint (if any) is restored, so its recorded settings are the ones compared
    def on_fit_start(self) -> None:
        self._check_audio_features()

    def on_test_start(self) -> None:
        self._check_audio_features()

    def on_validation_start(self) -> None:
        self._check_audio_features()

    def _load_initial_weights(self, path: str) -> None:
        if not Path(path).is_file():
            raise InputError(path, "init_weights: no such a2l checkpoint")
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        state = checkpoint.get("state_dict", {})
        wanted = {key: value for key, value in state.items() if key.startswith("network.")}
        wanted.update(
            {
                name: state[name]
                for name in (*FEATURE_STATS_SHAPES, UTTERANCE_KEY, "feature_stats_set")
                if name in state
            }
        )
        try:
            self.load_state_dict(wanted, strict=False)
            missing = [key for key in self.state_dict() if key.startswith("network.") and key not in wanted]
            if missing or not wanted.get("feature_stats_set", False):
                raise RuntimeError(f"missing {missing[:3] or 'feature statistics'}")
        except RuntimeError as error:
            raise InputError(
                path, f"init_weights: not an a2l checkpoint of this network shape ({error})"
            ) from None
        self.on_load_checkpoint(checkpoint)

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.hparams.get("init_weights"):
            self._load_initial_weights(self.hparams["init_weights"])
            # the weights expect their own statistics: the new data is standardised with them too
            adopt = getattr(datamodule, "adopt_feature_stats", None)
            if adopt is not None:
                adopt(self.standardizer())
            return  # a resumed fine-tuning run then restores its own checkpoint over these
        if self.audio_features is None:
            self.audio_features = getattr(datamodule, "audio_features", None)
        stats = getattr(datamodule, "feature_stats", None)
        if stats is None:
            rank_zero_warn(
                "the datamodule exposes no feature_stats: the checkpoint will not standardise raw features "
                "(call A2LModule.set_feature_stats before predict_clip)"
            )
            return
        self.set_feature_stats(stats)  # a resumed run then restores the checkpoint's copy over this

    # ---------------------------------------------------------------- forward passes

    def forward(self, batch: Batch) -> DualLSTMOutput:
        return self.network(batch["mfcc"], batch["llf"], batch["reference"], emotion=batch.get("emotion"))

    def _loss(self, batch: Batch, output: DualLSTMOutput) -> LossTerms:
        return self.loss(output.landmarks, batch["landmarks"], output.emotion_logits, batch["emotion"])

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        terms = self._loss(batch, self(batch))
        self.log_dict(
            {
                "train/loss": terms.total,
                "train/mse": terms.mse,
                "train/lmd": terms.lmd,
                "train/emotion_ce": terms.emotion_ce,
            },
            on_step=True,
            on_epoch=True,
            batch_size=batch["landmarks"].shape[0],
        )
        return terms.total

    def _evaluate(
        self,
        batch: Batch,
        prefix: str,
        metrics: nn.ModuleDict,
        accuracy: MulticlassAccuracy,
        mean_loss: MeanMetric,
    ) -> None:
        output = self(batch)
        target = batch["landmarks"]
        mean_loss.update(self._loss(batch, output).total.detach(), weight=target.shape[0])
        self.log(f"{prefix}/loss", mean_loss, on_step=False, on_epoch=True)
        for name, metric in metrics.items():
            metric.update(output.landmarks.detach(), target)
            self.log(f"{prefix}/{name}", metric, on_step=False, on_epoch=True)
        accuracy.update(window_emotion_prediction(output.emotion_logits.detach()), batch["emotion"])
        self.log(f"{prefix}/emotion_acc", accuracy, on_step=False, on_epoch=True)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics, self.val_emotion_accuracy, self.val_loss)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics, self.test_emotion_accuracy, self.test_loss)
        if self.baseline_metrics is not None:
            target = batch["landmarks"]
            held_still = batch["reference"].unsqueeze(1).expand_as(target)
            for name, metric in self.baseline_metrics.items():
                metric.update(held_still, target)
                self.log(f"test/baseline_{name}", metric, on_step=False, on_epoch=True)

    def predict_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """Predicted landmarks (B, T, 68, 2) in canonical-frame pixels."""
        return self(batch).landmarks

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        if self.hparams.lr_scheduler == "none":
            return optimizer
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---------------------------------------------------------------- streaming inference

    def landmark_stream(
        self,
        reference: torch.Tensor | np.ndarray,
        emotion: int | str | None = None,
        intensity: int | None = None,
    ) -> "LandmarkStream":
        """A callable turning raw feature chunks into landmark chunks, seamless across chunk joins.

        Args:
            reference: (68, 2) reference landmarks in canonical-frame pixels.
            emotion: an emotion name or class index that replaces the LLF encoder's distribution
                (``emotion_override``); None keeps the network's own emotion source.
            intensity: 1-3, blends the chosen emotion toward neutral (see ``emotion_condition``).

        The returned :class:`LandmarkStream` standardises each chunk with this module's feature statistics
        (with per-utterance normalisation, ``utterance_frames`` > 0, also the running statistics of the audio
        so far) and carries the recurrent states, the eq. 4 prior and the attention window's keys and values
        (:class:`~eapc_lightning.models.StreamState`) from one call to the next, so the landmarks do not
        depend on where the audio is cut. The eq. 4 prior alone restarts every ``prior_reset_frames``
        frames counted from the first call (a hyper-parameter, see ``__init__``).
        """
        if not bool(self.feature_stats_set):
            raise RuntimeError(
                "this A2LModule has no feature statistics: fit it with a DataModule that exposes feature_stats "
                "or call set_feature_stats() first"
            )
        if intensity is not None and emotion is None:
            raise ValueError("intensity needs an emotion to scale")
        if emotion is not None and self.network.config.emotion_source == "none":
            raise ValueError("this audio-to-landmark model has no emotion input (emotion_source: none)")
        reference = self._clip_tensor(reference, "reference", (NUM_LANDMARKS, 2))
        override = None if emotion is None else emotion_condition(emotion, intensity).to(self.device)
        return LandmarkStream(self, reference, override, self.hparams.get("prior_reset_frames"))

    def predict_clip(
        self,
        mfcc_raw: torch.Tensor | np.ndarray,
        llf_raw: torch.Tensor | np.ndarray,
        reference: torch.Tensor | np.ndarray,
        emotion: int | str | None = None,
        intensity: int | None = None,
        chunk: int = 250,
    ) -> torch.Tensor:
        """Landmarks (T, 68, 2) for a whole clip of any length, in canonical-frame pixels (on the CPU).

        Args:
            mfcc_raw: (T, 28, 12) MFCC windows as ``eapc_lightning.audio`` computes them (not standardised).
            llf_raw: (T, 25) low-level features (not standardised).
            reference, emotion, intensity: as for :meth:`landmark_stream`.
            chunk: frames per forward pass; the result does not depend on it (see :meth:`landmark_stream`).
        """
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1 frame, got {chunk}")
        mfcc = self._clip_tensor(mfcc_raw, "mfcc_raw", (None, 28, 12))
        llf = self._clip_tensor(llf_raw, "llf_raw", (mfcc.shape[0], 25))
        stream = self.landmark_stream(reference, emotion, intensity)
        pieces = [
            stream(mfcc[start : start + chunk], llf[start : start + chunk])
            for start in range(0, mfcc.shape[0], chunk)
        ]
        return torch.cat(pieces) if pieces else torch.zeros(0, NUM_LANDMARKS, 2)

    def _clip_tensor(
        self, value: torch.Tensor | np.ndarray, name: str, shape: tuple[int | None, ...]
    ) -> torch.Tensor:
        tensor = torch.as_tensor(value, dtype=torch.float32, device=self.device)
        matches = tensor.dim() == len(shape) and all(
            want is None or have == want for have, want in zip(tensor.shape, shape)
        )
        if not matches:
            wanted = ", ".join("T" if want is None else str(want) for want in shape)
            raise ValueError(f"{name} must have shape ({wanted}), got {tuple(tensor.shape)}")
        return tensor


class LandmarkStream:
    """Raw MFCC/LLF chunks -> (n, 68, 2) landmarks, one :class:`StreamState` carried across calls.

    Made by :meth:`A2LModule.landmark_stream`; the network runs in eval mode for each call (the module's
    own train/eval mode is restored afterwards).
    """

    def __init__(
        self,
        module: A2LModule,
        reference: torch.Tensor,
        override: torch.Tensor | None,
        prior_reset_frames: int | None,
    ) -> None:
        self.module = module
        self.prior_reset_frames = prior_reset_frames
        self.frames_done = 0
        self.reference = reference[None]
        self.override = None if override is None else override[None]
        self.unlabelled = torch.full((1,), -1, dtype=torch.long, device=module.device)
        self.state = StreamState()
        self.standardizer = module.standardizer()
        self.moments: UtteranceMoments | None = None  # the utterance so far, for per-utterance statistics
        self.emotion_logits: list[torch.Tensor] = []  # (n, 8) LLF encoder logits of each call's frames

    def __call__(
        self, mfcc_raw: torch.Tensor | np.ndarray, llf_raw: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        """Landmarks (n, 68, 2) on the CPU for ``mfcc_raw`` (n, 28, 12) and ``llf_raw`` (n, 25), unstandardised."""
        module = self.module
        mfcc = module._clip_tensor(mfcc_raw, "mfcc_raw", (None, 28, 12))
        llf = module._clip_tensor(llf_raw, "llf_raw", (mfcc.shape[0], 25))
        if mfcc.shape[0] == 0:
            return torch.zeros(0, NUM_LANDMARKS, 2)
        mfcc, llf, self.moments = self.standardizer.standardize(
            mfcc.cpu().numpy(), llf.cpu().numpy(), self.moments
        )
        mfcc, llf = (torch.from_numpy(array).to(module.device) for array in (mfcc, llf))
        was_training = module.training
        module.eval()
        pieces = []
        try:
            with torch.inference_mode():
                for start, stop in self._segments(mfcc.shape[0]):
                    if self._prior_restarts():
                        self.state = self.state._replace(prior=None)
                    output = module.network(
                        mfcc[None, start:stop],
                        llf[None, start:stop],
                        self.reference,
                        emotion=self.unlabelled,
                        emotion_override=self.override,
                        state=self.state,
                    )
                    pieces.append(output.landmarks[0])
                    self.emotion_logits.append(output.emotion_logits[0].float().cpu())
                    self.state = output.state
                    self.frames_done += stop - start
        finally:
            module.train(was_training)
        return torch.cat(pieces).float().cpu()

    def _prior_restarts(self) -> bool:
        period = self.prior_reset_frames
        return period is not None and self.frames_done > 0 and self.frames_done % period == 0

    def _segments(self, frames: int) -> list[tuple[int, int]]:
        """Ranges of this call's frames, split where the eq. 4 prior restarts."""
        period = self.prior_reset_frames
        if period is None:
            return [(0, frames)]
        segments, start, done = [], 0, self.frames_done
        while start < frames:
            stop = min(frames, start + period - done % period)
            segments.append((start, stop))
            done += stop - start
            start = stop
        return segments
