"""LandmarkDataModule on small caches of random clips: windows, standardisation, references, loaders, state."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO_ROOT
from eapc_lightning.data.datamodule import LandmarkDataModule
from eapc_lightning.data.landmark_windows import EpochShuffleSampler
from eapc_lightning.data.splits import SPLIT_NAMES
from helpers.fake_clip_cache import write_fake_cache

SPEAKERS = ("M001", "M002", "M003", "W001", "W002", "W003")
# Frame counts cycle over the clips; 20 < T = 25 gives no window, 25 gives exactly one.
FRAME_COUNTS = (20, 31, 47, 60, 25, 38, 73)


@pytest.fixture(scope="module")
def fake_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    arrays = write_fake_cache(root, speakers=SPEAKERS, clips_per_speaker=3, frame_counts=FRAME_COUNTS)
    return root, arrays


def make_dm(cache_dir: Path, **overrides) -> LandmarkDataModule:
    settings = (
        dict(
            cache_dir=str(cache_dir),
            window=25,
            stride=5,
            batch_size=8,
            num_workers=0,
            seed=0,
            val_fraction=1 / 6,
            test_fraction=1 / 6,
        )
        | overrides
    )
    dm = LandmarkDataModule(**settings)
    dm.setup("fit")
    return dm


def concatenated(arrays: dict, records, key: str) -> np.ndarray:
    width = 12 if key == "mfcc" else 25
    return np.concatenate([arrays[r.clip_id][key].reshape(-1, width) for r in records]).astype(np.float64)


def test_window_counts_follow_the_hand_formula_and_short_clips_are_logged(fake_cache, caplog):
    root, _ = fake_cache
    with caplog.at_level(logging.WARNING, logger="eapc_lightning.data.datamodule"):
        dm = make_dm(root, stride=5)
    for name in SPLIT_NAMES:
        stride = 5 if name == "train" else 25
        expected = sum((r.num_frames - 25) // stride + 1 for r in dm.splits[name] if r.num_frames >= 25)
        assert len(dm.dataset(name)) == expected
        short = sum(r.num_frames < 25 for r in dm.splits[name])
        assert dm.dataset(name).skipped_clips == short
    # 18 clips cycling over 7 frame counts: clips 0, 7 and 14 have 20 frames.
    assert sum(dm.dataset(name).skipped_clips for name in SPLIT_NAMES) == 3
    assert "shorter than the 25-frame window" in caplog.text
    # Evaluation windows do not overlap: consecutive starts of one clip are a window apart.
    starts = {}
    for clip, start in dm.dataset("test").windows:
        starts.setdefault(int(clip), []).append(int(start))
    assert all(np.all(np.diff(s) == 25) for s in starts.values())


def test_speaker_split_of_the_synthetic_yaml_fractions(fake_cache):
    root, _ = fake_cache
    config = yaml.safe_load((REPO_ROOT / "data_modules" / "synthetic.yaml").read_text())["data"]
    args = config["init_args"]
    dm = make_dm(root, val_fraction=args["val_fraction"], test_fraction=args["test_fraction"])
    speakers = {name: {r.speaker for r in dm.splits[name]} for name in SPLIT_NAMES}
    assert [len(speakers[name]) for name in SPLIT_NAMES] == [4, 1, 1]
    assert not (speakers["train"] & speakers["val"] or speakers["train"] & speakers["test"])
    assert dm.test_clips() == dm.splits["test"]


def test_sample_keys_shapes_and_batch(fake_cache):
    root, arrays = fake_cache
    dm = make_dm(root)
    batch = next(iter(dm.val_dataloader()))
    n = len(batch["clip_id"])
    assert batch["mfcc"].shape == (n, 25, 28, 12) and batch["mfcc"].dtype == torch.float32
    assert batch["llf"].shape == (n, 25, 25) and batch["llf"].dtype == torch.float32
    assert batch["landmarks"].shape == (n, 25, 68, 2) and batch["landmarks"].dtype == torch.float32
    assert batch["reference"].shape == (n, 68, 2)
    for key in ("emotion", "level", "start", "reference_index"):
        assert batch[key].dtype == torch.long and batch[key].shape == (n,)
    assert isinstance(batch["speaker"][0], str)
    records = {r.clip_id: r for r in dm.splits["val"]}
    for i, clip_id in enumerate(batch["clip_id"]):
        start = int(batch["start"][i])
        raw = arrays[clip_id]
        np.testing.assert_array_equal(batch["landmarks"][i].numpy(), raw["landmarks"][start : start + 25])
        assert int(batch["emotion"][i]) == records[clip_id].emotion
        assert int(batch["level"][i]) == records[clip_id].level
        assert batch["speaker"][i] == records[clip_id].speaker


def test_features_are_standardised_with_training_statistics(fake_cache):
    root, arrays = fake_cache
    dm = make_dm(root)
    train_mfcc = concatenated(arrays, dm.splits["train"], "mfcc")
    train_llf = concatenated(arrays, dm.splits["train"], "llf")
    stats = dm.feature_stats
    np.testing.assert_allclose(stats["mfcc_mean"].numpy(), train_mfcc.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["mfcc_std"].numpy(), train_mfcc.std(0), rtol=1e-5)
    np.testing.assert_allclose(stats["llf_mean"].numpy(), train_llf.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["llf_std"].numpy(), train_llf.std(0), rtol=1e-5)

    def served(split, key):
        width = 12 if key == "mfcc" else 25
        return np.concatenate([dm.full_clip(r)[key].numpy().reshape(-1, width) for r in dm.splits[split]])

    for key in ("mfcc", "llf"):
        standardised = served("train", key)
        np.testing.assert_allclose(standardised.mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(standardised.std(0), 1.0, atol=1e-4)
        raw_train = concatenated(arrays, dm.splits["train"], key)
        raw_val = concatenated(arrays, dm.splits["val"], key)
        expected_val_mean = (raw_val.mean(0) - raw_train.mean(0)) / raw_train.std(0)
        np.testing.assert_allclose(served("val", key).mean(0), expected_val_mean, rtol=1e-4, atol=1e-4)
        # The fake speakers have different offsets, so val is measurably not centred on its own mean.
        assert np.abs(expected_val_mean).max() > 0.1


def test_standardize_off_serves_raw_features_and_identity_stats(fake_cache):
    root, arrays = fake_cache
    dm = make_dm(root, standardize=False)
    sample = dm.dataset("train")[0]
    record = dm.dataset("train").records[int(dm.dataset("train").windows[0][0])]
    np.testing.assert_array_equal(sample["mfcc"].numpy(), arrays[record.clip_id]["mfcc"][:25])
    assert torch.equal(dm.feature_stats["llf_std"], torch.ones(25))


def test_constant_feature_uses_the_std_floor(tmp_path):
    write_fake_cache(tmp_path, speakers=("A", "B", "C"), clips_per_speaker=1, frame_counts=(30,))
    for path in (tmp_path / "clips").glob("*.npz"):
        with np.load(path) as archive:
            content = {key: archive[key] for key in archive.files}
        content["llf"][:, 3] = 7.0
        np.savez(path, **content)
    dm = make_dm(tmp_path, std_floor=1e-3, val_fraction=0.0, test_fraction=0.0)
    assert float(dm.feature_stats["llf_std"][3]) == pytest.approx(1e-3)
    assert torch.isfinite(dm.dataset("train")[0]["llf"]).all()


def test_reference_comes_from_the_same_clip(fake_cache):
    root, arrays = fake_cache
    dm = make_dm(root, reference="random")
    train = dm.dataset("train")
    drawn = set()
    for index in range(len(train)):
        for epoch in (0, 1):
            sample = train[(index, epoch)]
            clip = arrays[sample["clip_id"]]
            ref = int(sample["reference_index"])
            np.testing.assert_array_equal(sample["reference"].numpy(), clip["landmarks"][ref])
            drawn.add((sample["clip_id"], ref))
    # Random references spread over many frames, not always the first.
    assert len({ref for _, ref in drawn}) > 10
    assert train[(3, 0)]["reference_index"] == train[(3, 0)]["reference_index"]
    assert any(
        int(train[(i, 0)]["reference_index"]) != int(train[(i, 1)]["reference_index"]) for i in range(10)
    )
    for name in ("val", "test"):
        for sample in dm.dataset(name):
            assert int(sample["reference_index"]) == 0
            np.testing.assert_array_equal(
                sample["reference"].numpy(), arrays[sample["clip_id"]]["landmarks"][0]
            )


def test_training_order_is_seeded_per_epoch():
    def order(seed, epoch):
        sampler = EpochShuffleSampler(50, seed)
        sampler.set_epoch(epoch)
        return [index for index, _ in sampler]

    assert sorted(order(0, 0)) == list(range(50))
    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)
    assert order(0, 0) != list(range(50))


def test_stats_round_trip_through_state_dict(fake_cache, tmp_path):
    root, _ = fake_cache
    dm = make_dm(root)
    path = tmp_path / "state.pt"
    torch.save(dm.state_dict(), path)
    state = torch.load(path, weights_only=True)
    assert state["split_speakers"]["test"] == sorted({r.speaker for r in dm.splits["test"]})
    # A datamodule with a different split (hence different training statistics) adopts the saved ones.
    other = LandmarkDataModule(cache_dir=str(root), seed=5, val_fraction=0.0, test_fraction=0.5)
    other.load_state_dict(state)
    other.setup("test")
    for key, value in dm.feature_stats.items():
        assert torch.equal(other.feature_stats[key], value)
    record = dm.splits["val"][0]
    np.testing.assert_allclose(other.full_clip(record)["mfcc"].numpy(), dm.full_clip(record)["mfcc"].numpy())
    # Loading after setup also updates the datasets already built, and the clips they already served.
    late = make_dm(root, seed=5, val_fraction=0.0, test_fraction=0.5)
    before = late.full_clip(record)["llf"].numpy()
    assert not np.allclose(before, dm.full_clip(record)["llf"].numpy())  # other training statistics
    late.load_state_dict(state)
    np.testing.assert_allclose(late.full_clip(record)["llf"].numpy(), dm.full_clip(record)["llf"].numpy())


def test_stored_statistics_are_reused_and_invalidated(tmp_path):
    write_fake_cache(tmp_path, speakers=("A", "B", "C"), clips_per_speaker=2, frame_counts=(30, 40))
    first = make_dm(tmp_path, val_fraction=0.0, test_fraction=0.0)
    stored = list((tmp_path / "feature_stats").glob("*.json"))
    assert len(stored) == 1
    again = make_dm(tmp_path, val_fraction=0.0, test_fraction=0.0)
    for key, value in first.feature_stats.items():
        assert torch.allclose(again.feature_stats[key], value)
    # Re-preparing one clip (new content, new mtime) gives a new digest and new statistics.
    clip = sorted((tmp_path / "clips").glob("*.npz"))[0]
    with np.load(clip) as archive:
        content = {key: archive[key] for key in archive.files}
    content["mfcc"] = content["mfcc"] + 100.0
    np.savez(clip, **content)
    changed = make_dm(tmp_path, val_fraction=0.0, test_fraction=0.0)
    assert len(list((tmp_path / "feature_stats").glob("*.json"))) == 2
    assert float(changed.feature_stats["mfcc_mean"][0]) > float(first.feature_stats["mfcc_mean"][0]) + 1.0


def batches_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[key], b[key]) if isinstance(a[key], torch.Tensor) else a[key] == b[key] for key in a
    )


def test_worker_processes_give_the_same_batches(fake_cache):
    root, _ = fake_cache
    single = make_dm(root, num_workers=0, batch_size=2)
    multi = make_dm(root, num_workers=2, batch_size=2)
    val_single, val_multi = list(single.val_dataloader()), list(multi.val_dataloader())
    assert len(val_single) == len(val_multi) > 1
    assert all(batches_equal(a, b) for a, b in zip(val_single, val_multi, strict=True))
    # Training too: the order and the random references depend on seed and epoch only.
    loaders = single.train_dataloader(), multi.train_dataloader()
    for loader in loaders:
        loader.sampler.set_epoch(3)
    train_single, train_multi = (list(loader) for loader in loaders)
    assert all(batches_equal(a, b) for a, b in zip(train_single, train_multi, strict=True))


def test_yaml_fragments_instantiate_through_lightning_cli(fake_cache, monkeypatch):
    from lightning.pytorch import LightningDataModule
    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.demos.boring_classes import BoringModel

    root, _ = fake_cache
    monkeypatch.setattr("sys.argv", ["eapc"])
    for name in ("synthetic", "mead", "crema_d", "folder"):
        config = REPO_ROOT / "data_modules" / f"{name}.yaml"
        cli = LightningCLI(
            BoringModel,
            LightningDataModule,
            subclass_mode_data=True,
            run=False,
            args=[
                "--config",
                str(config),
                "--data.init_args.cache_dir",
                str(root),
                "--trainer.logger",
                "false",
            ],
        )
        assert isinstance(cli.datamodule, LandmarkDataModule)
        assert cli.datamodule.cache_dir == str(root)
        assert cli.datamodule.window == 25


def test_lightning_checkpoint_carries_the_statistics(fake_cache, tmp_path):
    from lightning.pytorch import LightningModule, Trainer

    class MeanRegressor(LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(12, 1)
            self.epochs_seen: list[int] = []

        def training_step(self, batch, batch_index):
            if batch_index == 0:
                self.epochs_seen.append(self.current_epoch)
            prediction = self.layer(batch["mfcc"].mean(dim=(1, 2)))
            return (prediction.squeeze(1) - batch["landmarks"].mean(dim=(1, 2, 3)) / 100).pow(2).mean()

        def validation_step(self, batch, batch_index):
            self.log("val_mean", batch["mfcc"].mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    root, _ = fake_cache
    trained_on = LandmarkDataModule(
        cache_dir=str(root), batch_size=4, val_fraction=1 / 6, test_fraction=1 / 6
    )
    model = MeanRegressor()
    trainer = Trainer(
        max_epochs=2,
        limit_train_batches=3,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=trained_on)
    assert model.epochs_seen == [0, 1]
    checkpoint = trainer.checkpoint_callback.best_model_path
    assert checkpoint
    # A datamodule over a different split would compute other statistics; the checkpoint's win.
    evaluated_on = LandmarkDataModule(
        cache_dir=str(root), batch_size=4, seed=9, val_fraction=0.5, test_fraction=0.0
    )
    unrestored = make_dm(root, seed=9, val_fraction=0.5, test_fraction=0.0)
    assert not torch.equal(unrestored.feature_stats["mfcc_mean"], trained_on.feature_stats["mfcc_mean"])
    Trainer(logger=False, enable_progress_bar=False, accelerator="cpu", default_root_dir=tmp_path).validate(
        MeanRegressor(), datamodule=evaluated_on, ckpt_path=checkpoint
    )
    for key, value in trained_on.feature_stats.items():
        assert torch.equal(evaluated_on.feature_stats[key], value)


def test_distributed_wrapper_shards_the_epoch_order(fake_cache):
    """Lightning wraps the sampler for DDP; the (index, epoch) keys must pass through and cover every window."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    root, _ = fake_cache
    dm = make_dm(root)
    train = dm.dataset("train")
    shards = [
        DistributedSamplerWrapper(
            EpochShuffleSampler(len(train), seed=0), num_replicas=2, rank=rank, shuffle=False
        )
        for rank in (0, 1)
    ]
    for shard in shards:
        shard.set_epoch(2)
    keys = [key for shard in shards for key in shard]
    assert {index for index, _ in keys} == set(range(len(train)))
    assert {epoch for _, epoch in keys} == {2}
    assert train[keys[0]]["clip_id"] in {r.clip_id for r in dm.splits["train"]}
