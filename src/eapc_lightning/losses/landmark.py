"""Audio-to-landmark training objective (paper section 3.6, eqs. 11-13), in canonical-frame pixels.

* :func:`landmark_mse`, eq. 11: the squared Euclidean distance between each predicted and true landmark,
  averaged over landmarks, frames and samples.
* :func:`landmark_distance_loss`, eq. 12. As printed, eq. 12 sums the distances between the predicted
  landmarks themselves, with no ground-truth term, and minimising it would collapse the face to a point.
  We use the structure-preserving reading: the mean absolute difference between the predicted and the true
  pairwise distance matrices, ``mean_{i<j} | ||p_i - p_j|| - ||g_i - g_j|| |`` over the 2,278 unordered
  pairs of the 68 points, per frame. It is translation invariant and penalises wrong shapes (mouth opening,
  jaw drop) rather than position.
* :func:`emotion_cross_entropy`: our addition, per-frame cross-entropy of the LLF encoder's logits against
  the clip's emotion label; label -1 (unlabelled) is ignored.
* :class:`A2LLoss`, eq. 13 with weights: ``mse_weight * L_mse + lmd_weight * L_lmd + emotion_weight * L_ce``.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from eapc_lightning.constants import NUM_LANDMARKS

_PAIRS = torch.triu_indices(NUM_LANDMARKS, NUM_LANDMARKS, offset=1)
# keeps the distance gradient finite where two predicted points coincide; far below a pixel
_DISTANCE_EPS = 1e-12


def landmark_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 11 for ``(..., 68, 2)`` landmark tensors."""
    return (prediction - target).pow(2).sum(-1).mean()


def pairwise_distances(points: torch.Tensor) -> torch.Tensor:
    """``(..., K, 2)`` -> ``(..., K (K - 1) / 2)`` distances of the unordered pairs ``i < j``."""
    first, second = _PAIRS.to(points.device)
    difference = points[..., first, :] - points[..., second, :]
    return (difference.pow(2).sum(-1) + _DISTANCE_EPS).sqrt()


def landmark_distance_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structure-preserving eq. 12: mean |pairwise distances(prediction) - pairwise distances(target)|."""
    return (pairwise_distances(prediction) - pairwise_distances(target)).abs().mean()


def emotion_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-frame cross-entropy of ``(B, T, C)`` logits against ``(B,)`` clip labels, -1 ignored.

    Returns 0 (still attached to the graph) when no sample in the batch is labelled.
    """
    frames_labels = labels.unsqueeze(1).expand(logits.shape[:2]).reshape(-1)
    total = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), frames_labels, ignore_index=-1, reduction="sum"
    )
    return total / (frames_labels >= 0).sum().clamp(min=1)


class LossTerms(NamedTuple):
    total: torch.Tensor
    mse: torch.Tensor
    lmd: torch.Tensor
    emotion_ce: torch.Tensor


class A2LLoss(nn.Module):
    """Eq. 13 with configurable weights (the paper's is 1 and 1, no emotion term)."""

    def __init__(self, mse_weight: float = 1.0, lmd_weight: float = 1.0, emotion_weight: float = 0.0) -> None:
        super().__init__()
        for name, value in (
            ("mse_weight", mse_weight),
            ("lmd_weight", lmd_weight),
            ("emotion_weight", emotion_weight),
        ):
            if value < 0:
                raise ValueError(f"{name} must be non-negative, got {value}")
        self.mse_weight = mse_weight
        self.lmd_weight = lmd_weight
        self.emotion_weight = emotion_weight

    def forward(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        emotion_logits: torch.Tensor,
        emotion_labels: torch.Tensor,
    ) -> LossTerms:
        mse = landmark_mse(prediction, target)
        lmd = landmark_distance_loss(prediction, target)
        emotion_ce = emotion_cross_entropy(emotion_logits, emotion_labels)
        # the emotion term always enters the graph (weight 0 included) so every parameter receives a
        # gradient, which DistributedDataParallel requires
        total = self.mse_weight * mse + self.lmd_weight * lmd + self.emotion_weight * emotion_ce
        return LossTerms(total, mse, lmd, emotion_ce)
