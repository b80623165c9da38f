"""A tiny learnable audio-to-landmark data set shaped like LandmarkDataModule's batches (for module tests).

Each window's face is a random scaling and shift of one template with the brows set by the emotion; the
reference is that face at rest, and the mouth opens over time with a smooth function of the MFCC windows:
a model that listens can beat the held-still reference.
"""

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from eapc_lightning.constants import MOUTH

TINY_NETWORK = dict(
    audio_hidden=24,
    audio_layers=1,
    llf_hidden=16,
    llf_layers=1,
    landmark_hidden=24,
    landmark_layers=1,
    attention_dim=24,
    attention_window=5,
    reference_dim=16,
    head_hidden=(48, 32),
)
FEATURE_STATS = {
    "mfcc_mean": torch.linspace(-1.0, 1.0, 12),
    "mfcc_std": torch.linspace(0.5, 2.0, 12),
    "llf_mean": torch.linspace(0.0, 3.0, 25),
    "llf_std": torch.linspace(1.0, 4.0, 25),
}


def make_windows(count: int, frames: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    template = 128 + 50 * (torch.rand(68, 2, generator=torch.Generator().manual_seed(99)) - 0.5)
    lower_lip = template[list(MOUTH), 1] > template[list(MOUTH), 1].mean()
    direction = torch.where(lower_lip, 1.0, -1.0)
    windows = []
    for index in range(count):
        mfcc = torch.randn(frames, 28, 12, generator=generator)
        llf = torch.randn(frames, 25, generator=generator)
        emotion = int(torch.randint(0, 8, (1,), generator=generator))
        llf[:, emotion] += 2.0
        scale = 0.9 + 0.2 * torch.rand(1, generator=generator)
        shift = 6 * torch.randn(2, generator=generator)
        face = 128 + scale * (template - 128) + shift
        opening = 6 * torch.tanh(mfcc[:, :, 0].mean(1) * 3)  # (T,) pixels
        face[17:27, 1] -= 0.5 * (emotion - 3.5)
        landmarks = face.expand(frames, 68, 2).clone()
        landmarks[:, list(MOUTH), 1] += opening[:, None] * direction
        windows.append(
            {
                "mfcc": mfcc,
                "llf": llf,
                "landmarks": landmarks,
                "reference": face.clone(),  # the speaker's face at rest
                "emotion": torch.tensor(emotion if index % 5 else -1),  # every fifth window unlabelled
                "level": torch.tensor(3),
                "speaker": f"S{index % 3}",
                "clip_id": f"clip{index:03d}",
                "start": torch.tensor(0),
            }
        )
    return windows


class ListDataset(Dataset):
    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


class ToyLandmarkData(LightningDataModule):
    """Fixed-order train/val/test windows plus the ``feature_stats`` contract of LandmarkDataModule."""

    def __init__(
        self,
        train: int = 16,
        val: int = 8,
        test: int = 8,
        frames: int = 10,
        batch_size: int = 4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.splits = {
            "train": make_windows(train, frames, seed),
            "val": make_windows(val, frames, seed + 1),
            "test": make_windows(test, frames, seed + 2),
        }
        self.feature_stats = FEATURE_STATS

    def _loader(self, split: str) -> DataLoader:
        return DataLoader(ListDataset(self.splits[split]), batch_size=self.batch_size, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
