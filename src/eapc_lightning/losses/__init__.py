"""Audio-to-landmark losses (paper eqs. 11-13)."""

from eapc_lightning.losses.landmark import (
    A2LLoss,
    LossTerms,
    emotion_cross_entropy,
    landmark_distance_loss,
    landmark_mse,
    pairwise_distances,
)

__all__ = [
    "A2LLoss",
    "LossTerms",
    "emotion_cross_entropy",
    "landmark_distance_loss",
    "landmark_mse",
    "pairwise_distances",
]
