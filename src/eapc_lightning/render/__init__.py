"""Landmark pictures (predicted beside true, the paper's Fig. 3) and mp4 writing with sound."""

from eapc_lightning.render.landmarks import (
    comparison_frames,
    draw_landmarks,
    landmark_panel,
    sequence_grid,
    side_by_side,
)
from eapc_lightning.render.video import write_video

__all__ = [
    "comparison_frames",
    "draw_landmarks",
    "landmark_panel",
    "sequence_grid",
    "side_by_side",
    "write_video",
]
