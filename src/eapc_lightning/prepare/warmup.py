"""Warm start for prepare's worker processes.

prepare's worker pool (eapc_lightning.prepare.pool) forks its workers from a forkserver: a fresh process
that imports this module once, so the heavy imports (torch, librosa, OpenCV, MediaPipe) and librosa's
just-in-time compilation (several seconds on the first feature extraction) are paid once per run instead
of once per worker. The server never starts a thread pool (torch runs single-threaded here), so forking
from it is safe.
"""

import mediapipe  # noqa: F401  (imported for the forked workers)
import numpy as np
import torch

import eapc_lightning.landmarks.detect  # noqa: F401  (imported for the forked workers)
from eapc_lightning.audio import extract_features

torch.set_num_threads(1)
extract_features(np.random.default_rng(0).standard_normal(3200).astype(np.float32) * 0.1, 5)
