"""Named evaluation protocols: how landmarks and frames are measured, so a number can stand beside a table.

A protocol is a YAML file in ``experiments/evaluation/`` (``eapc evaluate --protocol NAME`` or a path) and
fixes every choice a published table depends on:

- ``detector``: ``mediapipe`` (FaceMesh, 478 -> 68 points) or ``dlib`` (the 68-point shape predictor);
- ``landmark_size``: the pixels landmarks are measured in (frames are resized to it, or for ``dlib``
  warped to its template crop of that size);
- ``alignment``: ``per_frame_similarity`` (each frame of both sides mapped onto the true clip's mean shape
  by a similarity fitted on ``alignment_points``) or ``region_centroid`` (LD: each region moved to its own
  centroid; LVD: raw points, as the public EAT code does);
- ``clip_average``: ``pooled`` (every scored frame weighs the same) or ``per_clip`` (mean of clip means);
- ``time_matching``: ``truncate`` (frame i against frame i) or ``linspace`` (the longer sequence sampled
  evenly down to the shorter one's length);
- ``image_metrics``: ``torchmetrics`` (PSNR per frame, SSIM with an 11x11 Gaussian window) or ``skimage``
  (skimage's PSNR and SSIM with its 7x7 uniform window per channel, on uint8 frames);
- ``image_crop``: ``generator`` (the canonical face crops at the generator's size) or ``template`` (the
  protocol's template-aligned crops);
- ``fid_frames_per_clip``: 0 for every scored frame, else that many evenly spaced frames per clip.

Rules every protocol shares: the conditioning reference frame (frame 0, the a2l reference landmarks and
the vid2vid reference image) is never scored; generated and true frames go through the same detector at
the same resolution and the same alignment; PSNR / SSIM are per-frame values averaged over all scored
frames; F-LVD is the face points' own velocity error.
"""

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from eapc_lightning.errors import InputError

PROTOCOL_FOLDER = Path("experiments/evaluation")
REFERENCE_FRAMES = 1  # frame 0 conditions both stages: never scored
CHOICES = {
    "detector": ("mediapipe", "dlib"),
    "alignment": ("per_frame_similarity", "region_centroid"),
    "clip_average": ("pooled", "per_clip"),
    "time_matching": ("truncate", "linspace"),
    "image_metrics": ("torchmetrics", "skimage"),
    "image_crop": ("generator", "template"),
}


@dataclass(frozen=True)
class EvaluationProtocol:
    name: str
    description: str
    detector: str
    landmark_size: int
    alignment: str
    alignment_points: tuple[int, ...]
    clip_average: str
    time_matching: str
    image_metrics: str
    image_crop: str
    fid_frames_per_clip: int

    def header(self) -> str:
        """One markdown paragraph naming the protocol and every setting, for the top of each table."""
        settings = ", ".join(
            f"{key} {value if not isinstance(value, tuple) else list(value)}"
            for key, value in asdict(self).items()
            if key not in ("name", "description")
        )
        return f"Protocol **{self.name}**: {self.description}. Settings: {settings}."


def _repository_root() -> Path:
    return Path(__file__).resolve().parents[3]


def protocol_path(name_or_path: str) -> Path:
    """A protocol YAML given by name (``experiments/evaluation/<name>.yaml``) or by path."""
    given = Path(name_or_path)
    if given.suffix in (".yaml", ".yml"):
        return given
    for folder in (PROTOCOL_FOLDER, _repository_root() / PROTOCOL_FOLDER):
        if (folder / f"{name_or_path}.yaml").is_file():
            return folder / f"{name_or_path}.yaml"
    return PROTOCOL_FOLDER / f"{name_or_path}.yaml"


def available_protocols() -> list[str]:
    folder = PROTOCOL_FOLDER if PROTOCOL_FOLDER.is_dir() else _repository_root() / PROTOCOL_FOLDER
    return sorted(path.stem for path in folder.glob("*.yaml"))


def load_protocol(name_or_path: str) -> EvaluationProtocol:
    """Read and check a protocol; InputError naming the file and the first problem."""
    path = protocol_path(name_or_path)
    if not path.is_file():
        known = ", ".join(available_protocols()) or "none"
        raise InputError(path, f"no such evaluation protocol (shipped: {known})")
    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(path, f"not valid YAML ({error.__class__.__name__})") from None
    names = [field.name for field in fields(EvaluationProtocol)]
    unknown = sorted(set(settings) - set(names))
    missing = [name for name in names if name not in settings]
    if unknown or missing:
        problem = f"unknown keys {unknown}" if unknown else f"missing keys {missing}"
        raise InputError(path, f"{problem} (a protocol has exactly: {', '.join(names)})")
    for key, allowed in CHOICES.items():
        if settings[key] not in allowed:
            raise InputError(path, f"{key} must be one of {', '.join(allowed)}, not {settings[key]!r}")
    points = tuple(int(point) for point in settings["alignment_points"] or ())
    if settings["alignment"] == "per_frame_similarity" and len(points) < 2:
        raise InputError(path, "per_frame_similarity needs at least 2 alignment_points")
    if any(not 0 <= point < 68 for point in points):
        raise InputError(path, "alignment_points must be indices 0-67 of the 68-point layout")
    if settings["image_crop"] == "template" and settings["detector"] != "dlib":
        raise InputError(path, "image_crop template needs the dlib detector (its template crop)")
    if int(settings["landmark_size"]) < 64 or int(settings["fid_frames_per_clip"]) < 0:
        raise InputError(path, "landmark_size must be at least 64 and fid_frames_per_clip at least 0")
    settings.update(
        alignment_points=points,
        landmark_size=int(settings["landmark_size"]),
        fid_frames_per_clip=int(settings["fid_frames_per_clip"]),
    )
    return EvaluationProtocol(**settings)
