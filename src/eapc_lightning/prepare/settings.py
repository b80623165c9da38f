"""The knobs of the prepare pipeline and the hash of those that change its output."""

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import metadata

from eapc_lightning.audio import AudioFeatureConfig
from eapc_lightning.constants import VIDEO_FPS

PIPELINE_VERSION = 2  # bump when the pipeline's output changes for the same settings
DEFAULT_MAX_GAP = 12  # frames (0.48 s at 25 fps) filled by interpolation
MIN_CROP_SIZE = 16  # pixels


@dataclass(frozen=True)
class PrepareSettings:
    """Every knob of the pipeline; the fields that change the output are hashed into ``digest()``."""

    crop_size: int = 256
    jpeg_quality: int = 92
    max_gap: int = DEFAULT_MAX_GAP
    gap_policy: str = "split"
    min_segment_frames: int = 25  # pieces of a split clip shorter than one training window are dropped
    min_detection_confidence: float = 0.5
    silence_peak: float = 1e-3  # peak amplitude (full scale 1.0) below which audio counts as silent
    fps: int = VIDEO_FPS
    audio: AudioFeatureConfig = field(default_factory=AudioFeatureConfig)
    frame_memory_mb: int = 1024  # above this a clip's frames are decoded twice instead of kept

    def digest(self) -> str:
        try:
            detector = metadata.version("mediapipe")
        except metadata.PackageNotFoundError:
            detector = "unknown"
        hashed = {
            "pipeline": PIPELINE_VERSION,
            "audio": self.audio.digest(),
            "mediapipe": detector,
            "fps": self.fps,
            "crop_size": self.crop_size,
            "jpeg_quality": self.jpeg_quality,
            "max_gap": self.max_gap,
            "gap_policy": self.gap_policy,
            "min_segment_frames": self.min_segment_frames,
            "min_detection_confidence": self.min_detection_confidence,
        }
        return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        """Every field (as the manifest records them) plus the audio settings' digest."""
        values = dataclasses.asdict(self)
        values["audio_digest"] = self.audio.digest()
        return values
