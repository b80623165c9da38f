"""The clip cache's atomic writes and JPEG face storage."""

import numpy as np

from eapc_lightning.data.cache import decode_faces, encode_faces


def test_faces_round_trip_per_frame():
    rng = np.random.default_rng(0)
    # smooth images survive JPEG closely; random access must return the right frame
    base = np.linspace(0, 255, 64, dtype=np.float32)
    frames = np.stack([np.stack([np.add.outer(base, base * k / 4) / 2] * 3, -1) for k in range(5)])
    frames = np.clip(frames + rng.normal(0, 1, frames.shape), 0, 255).astype(np.uint8)
    buffer, offsets = encode_faces(frames)
    assert offsets.shape == (6,) and offsets[-1] == len(buffer)
    decoded = decode_faces(buffer, offsets, [3, 0])
    assert decoded.shape == (2, 64, 64, 3)
    assert np.abs(decoded[0].astype(int) - frames[3]).mean() < 3
    assert np.abs(decoded[1].astype(int) - frames[0]).mean() < 3
