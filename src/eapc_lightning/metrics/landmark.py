"""Landmark metrics of the paper's section 4.2 as torchmetrics ``Metric``s with exact DDP reduction.

* LD (landmark distance): the mean Euclidean distance between predicted and true landmarks, per point per
  frame, after per-frame translation alignment.
* LVD (landmark velocity difference): the mean Euclidean distance between the predicted and true
  frame-to-frame velocities of each point (``x_{t+1} - x_t``), per point per frame pair.

Translation alignment: every frame of the prediction and of the ground truth is mean-centred with **all 68
points** of that frame, whichever region is scored, so a mouth that sits too low relative to the face
counts as an error in M-LD. LVD uses the same centred points, so it measures motion relative to the face.
Both are in the pixels of the canonical 256 x 256 face frame.

Regions: ``"mouth"`` = points 48-67 (M-LD, M-LVD), ``"face"`` = all 68 points (F-LD, F-LVD). Face LVD is
the face points' own velocity error; nothing of the mouth score is added to it.

Each metric keeps a float64 sum of distances and an integer count with ``dist_reduce_fx="sum"``, so the
value over several processes equals the value over the pooled data.
"""

import torch
from torchmetrics import Metric

from eapc_lightning.constants import MOUTH, NUM_LANDMARKS

REGIONS: dict[str, tuple[int, ...]] = {"mouth": MOUTH, "face": tuple(range(NUM_LANDMARKS))}
METRIC_NAMES = {
    ("distance", "mouth"): "M-LD",
    ("velocity", "mouth"): "M-LVD",
    ("distance", "face"): "F-LD",
    ("velocity", "face"): "F-LVD",
}


def centre_frames(points: torch.Tensor) -> torch.Tensor:
    """Subtract each frame's mean over all 68 points from ``(..., 68, 2)`` landmarks."""
    return points - points.mean(dim=-2, keepdim=True)


def point_distances(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The LD terms: per point, per frame Euclidean distances ``(..., T, P)`` of ``(..., T, P, 2)`` points."""
    return (prediction - target).norm(dim=-1)


def velocity_differences(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The LVD terms: per point distances between the frame-to-frame velocities (``x_{t+1} - x_t``) of
    ``(..., T, P, 2)`` points, ``(..., T - 1, P)``."""
    return (prediction.diff(dim=-3) - target.diff(dim=-3)).norm(dim=-1)


def _as_sequences(points: torch.Tensor, name: str) -> torch.Tensor:
    """Accept ``(T, 68, 2)`` or ``(B, T, 68, 2)``; return ``(B, T, 68, 2)`` float64."""
    if points.dim() == 3:
        points = points.unsqueeze(0)
    if points.dim() != 4 or points.shape[-2:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"{name} must have shape (B, T, 68, 2) or (T, 68, 2), got {tuple(points.shape)}")
    return points.double()


class _RegionMetric(Metric):
    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, region: str = "mouth", **kwargs) -> None:
        super().__init__(**kwargs)
        if region not in REGIONS:
            raise ValueError(f"region must be one of {sorted(REGIONS)}, got {region!r}")
        self.region = region
        self.register_buffer("region_index", torch.tensor(REGIONS[region]), persistent=False)
        self.add_state("distance_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _centred_region(
        self, prediction: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        prediction = _as_sequences(prediction, "prediction")
        target = _as_sequences(target, "target")
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
        index = self.region_index.to(prediction.device)
        return centre_frames(prediction)[..., index, :], centre_frames(target)[..., index, :]

    def _accumulate(self, distances: torch.Tensor) -> None:
        self.distance_sum += distances.sum()
        self.count += distances.numel()

    def compute(self) -> torch.Tensor:
        return (self.distance_sum / self.count).float()


class LandmarkDistance(_RegionMetric):
    """LD over ``region``: mean per-point per-frame distance of mean-centred frames (M-LD / F-LD)."""

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        prediction, target = self._centred_region(prediction, target)
        self._accumulate(point_distances(prediction, target))


class LandmarkVelocityDistance(_RegionMetric):
    """LVD over ``region``: mean distance between predicted and true per-point velocities (M-LVD / F-LVD)."""

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        prediction, target = self._centred_region(prediction, target)
        self._accumulate(velocity_differences(prediction, target))
