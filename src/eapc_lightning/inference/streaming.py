"""Landmarks and video frames a chunk at a time, with the recurrent state carried between chunks.

:class:`LandmarkStream` feeds raw feature chunks through an ``A2LModule``'s network exactly as
``A2LModule.predict_clip`` does for a whole clip (same standardisation with the checkpoint's feature
statistics, same emotion override, :class:`~eapc_lightning.models.StreamState` carried from chunk to
chunk), so the landmarks do not depend on where the chunks are cut (no seams; a test pins the two).

:class:`FrameStream` turns landmark chunks into frames with a ``Vid2VidModule``'s EMA generator (eq. 10):
the aligned photo and its label map are the reference, and each frame is conditioned on the previous
generated frame, carried across chunks.
"""

from collections.abc import Iterator

import cv2
import numpy as np
import torch

from eapc_lightning.constants import CANONICAL_FACE_SIZE, NUM_LANDMARKS
from eapc_lightning.landmarks.draw import draw_label_map
from eapc_lightning.models import StreamState, emotion_condition


class LandmarkStream:
    """Raw MFCC/LLF chunks -> (n, 68, 2) landmarks in canonical-frame pixels, seamless across chunks."""

    def __init__(
        self,
        module,
        reference: np.ndarray,
        emotion: str | int | None = None,
        intensity: int | None = None,
    ):
        if not bool(module.feature_stats_set):
            raise RuntimeError(
                "this audio-to-landmark checkpoint has no feature statistics (it was not fitted with a "
                "DataModule exposing feature_stats); it cannot turn raw audio features into landmarks"
            )
        if intensity is not None and emotion is None:
            raise ValueError("--intensity needs --emotion")
        if emotion is not None and module.network.config.emotion_source == "none":
            raise ValueError("this audio-to-landmark model has no emotion input (emotion_source: none)")
        self.module = module.eval()
        device = module.device
        self.reference = torch.as_tensor(reference, dtype=torch.float32, device=device)[None]
        if tuple(self.reference.shape[1:]) != (NUM_LANDMARKS, 2):
            raise ValueError(f"reference must be (68, 2), got {tuple(reference.shape)}")
        self.override = None if emotion is None else emotion_condition(emotion, intensity).to(device)[None]
        self.unlabelled = torch.full((1,), -1, dtype=torch.long, device=device)
        self.state = StreamState()

    @torch.inference_mode()
    def __call__(self, mfcc_raw: np.ndarray, llf_raw: np.ndarray) -> np.ndarray:
        module = self.module
        mfcc = torch.as_tensor(mfcc_raw, dtype=torch.float32, device=module.device)
        llf = torch.as_tensor(llf_raw, dtype=torch.float32, device=module.device)
        mfcc = (mfcc - module.mfcc_mean) / module.mfcc_std
        llf = (llf - module.llf_mean) / module.llf_std
        output = module.network(
            mfcc[None],
            llf[None],
            self.reference,
            emotion=self.unlabelled,
            emotion_override=self.override,
            state=self.state,
        )
        self.state = output.state
        return output.landmarks[0].float().cpu().numpy()


class FrameStream:
    """(n, 68, 2) canonical landmarks -> RGB uint8 frames from the vid2vid EMA generator."""

    def __init__(
        self,
        module,
        reference_image: np.ndarray,
        reference_landmarks: np.ndarray,
        label_thickness: int = 1,
    ):
        self.generator = module.generator_ema.eval()
        self.size = int(module.hparams.image_size)
        self.device = module.device
        self.label_thickness = label_thickness
        image = cv2.resize(reference_image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        image = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
        label = torch.from_numpy(self._label(reference_landmarks))[None]
        references = int(module.hparams.num_references)
        self.reference_images = image[None, None].repeat(1, references, 1, 1, 1).to(self.device)
        self.reference_labels = label[None, None].repeat(1, references, 1, 1, 1).to(self.device)
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None

    def _label(self, landmarks: np.ndarray) -> np.ndarray:
        return draw_label_map(
            landmarks, self.size, source_size=CANONICAL_FACE_SIZE, thickness=self.label_thickness
        )

    @torch.inference_mode()
    def __call__(self, landmarks: np.ndarray) -> Iterator[np.ndarray]:
        for points in landmarks:
            label = torch.from_numpy(self._label(points))[None, None].to(self.device)
            output = self.generator(label, self.reference_images, self.reference_labels, self.previous)
            self.previous = (label, output.image)
            unit = ((output.image[0].float() + 1) / 2).clamp(0, 1)
            yield (unit.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
