"""Audio decoding and per-video-frame features (MFCC windows, low-level features), in one pass or streamed
in chunks from a scratch file (:mod:`.stream`, :mod:`.chunked`) with the same result."""

from eapc_lightning.audio.decode import load_audio
from eapc_lightning.audio.features import AudioFeatureConfig, extract_features, llf_features, mfcc_windows

__all__ = ["AudioFeatureConfig", "extract_features", "llf_features", "load_audio", "mfcc_windows"]
