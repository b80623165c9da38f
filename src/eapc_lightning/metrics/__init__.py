"""Landmark metrics (M-LD, M-LVD, F-LD, F-LVD) as torchmetrics with exact DDP reduction."""

from eapc_lightning.metrics.landmark import (
    METRIC_NAMES,
    REGIONS,
    LandmarkDistance,
    LandmarkVelocityDistance,
    centre_frames,
)

__all__ = ["METRIC_NAMES", "REGIONS", "LandmarkDistance", "LandmarkVelocityDistance", "centre_frames"]
