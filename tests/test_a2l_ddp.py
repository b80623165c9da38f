"""A 2-process DDP run on CPU (gloo) trains A2LModule, and its test metrics equal one process's."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything

from eapc_lightning.lit import A2LModule
from helpers.a2l_toy_data import ToyLandmarkData
from helpers.ddp_a2l_script import DDP_SETTINGS, MAX_EPOCHS, build_module

TESTS_DIR = Path(__file__).parent
SCRIPT = TESTS_DIR / "helpers" / "ddp_a2l_script.py"
SINGLE = dict(
    accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, dict]:
    out_dir = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), str(out_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=out_dir,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return out_dir, json.loads((out_dir / "metrics.json").read_text())


def test_ddp_trains_and_its_metrics_equal_one_process_on_the_same_weights(ddp_run) -> None:
    out_dir, record = ddp_run
    assert record["world_size"] == 2
    assert record["global_step"] == MAX_EPOCHS * 2  # 16 windows, 2 ranks x batches of 4
    torch.set_num_threads(1)
    module = A2LModule.load_from_checkpoint(out_dir / "ddp.ckpt")
    single = Trainer(**SINGLE).test(module, ToyLandmarkData(**DDP_SETTINGS), verbose=False)[0]
    assert set(single) == set(record["metrics"])
    for name, value in single.items():
        assert record["metrics"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_ddp_ranks_end_with_identical_trained_weights(ddp_run) -> None:
    """Gradients were all-reduced every step: both replicas hold the same weights, which fit better."""
    out_dir, record = ddp_run
    first, second = (torch.load(out_dir / f"rank{rank}.pt") for rank in (0, 1))
    seed_everything(0)
    initial = build_module().network.state_dict()
    for name, value in first.items():
        torch.testing.assert_close(second[name], value, rtol=0, atol=0)
    assert any(not torch.equal(value, initial[name]) for name, value in first.items())
    torch.set_num_threads(1)
    data = ToyLandmarkData(**DDP_SETTINGS)
    seed_everything(0)
    before = Trainer(**SINGLE).validate(build_module(), dataloaders=data.train_dataloader(), verbose=False)
    trained = A2LModule.load_from_checkpoint(out_dir / "ddp.ckpt")
    after = Trainer(**SINGLE).validate(trained, dataloaders=data.train_dataloader(), verbose=False)
    assert after[0]["val/loss"] < before[0]["val/loss"]  # the loss on the training windows went down
