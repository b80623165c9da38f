"""Warm start for prepare's worker processes.

The worker pool forks its workers from a forkserver that imports this module first, so the heavy
imports (torch, librosa, OpenCV, MediaPipe) and librosa's just-in-time compilation (several seconds
on the first feature extraction) are paid once per run instead of once per worker.
"""

import numpy as np
import torch

import eapc_lightning.landmarks.detect  # noqa: F401  (imported for the forked workers)
from eapc_lightning.audio import extract_features

torch.set_num_threads(1)  # no thread pool in the process workers fork from (each worker uses 1 thread)
extract_features(np.random.default_rng(0).standard_normal(3200).astype(np.float32) * 0.1, 5)
