"""A still like the paper's Fig. 4: generated frames above the ground-truth frames, for a few clips."""

from pathlib import Path

import cv2
import numpy as np

from eapc_lightning.fileio import write_png

PANEL = 128


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    panel = panel.copy()
    cv2.putText(panel, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def comparison_grid(clips: list[tuple[str, np.ndarray, np.ndarray]], columns: int = 6) -> np.ndarray:
    """RGB grid: per clip a row of generated frames and a row of ground truth, at evenly spaced times."""
    rows = []
    for clip_id, generated, truth in clips:
        picks = np.linspace(0, len(generated) - 1, min(columns, len(generated))).round().astype(int)
        for name, frames in (("generated", generated), ("ground truth", truth)):
            panels = [cv2.resize(frames[i], (PANEL, PANEL), interpolation=cv2.INTER_CUBIC) for i in picks]
            panels[0] = _label(panels[0], f"{clip_id[:18]} {name}")
            panels += [np.zeros_like(panels[0])] * (columns - len(panels))
            rows.append(np.concatenate(panels, axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def write_grid(path: str | Path, clips: list[tuple[str, np.ndarray, np.ndarray]], columns: int = 6) -> Path:
    """Write the grid as PNG atomically."""
    return write_png(path, comparison_grid(clips, columns))
