"""2-process DDP runs of the vid2vid module on CPU (gloo backend), two training steps each: training from
scratch, and fine-tuning (initial weights from a checkpoint, targets drawn from predicted landmarks)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from eapc_lightning.data.cache import save_clip
from eapc_lightning.data.index import list_clips, read_clip_meta
from helpers.checkpoints import save_module_checkpoint, untrained_a2l_checkpoint
from helpers.vid2vid_cache import write_synthetic_cache

TESTS_DIR = Path(__file__).parent
SCRIPT = TESTS_DIR / "helpers" / "vid2vid_ddp_run.py"


def run_two_processes(cache: Path, out: Path, *extra: Path) -> list[dict]:
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(cache), str(out), *map(str, extra)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    records = sorted(
        (json.loads(path.read_text()) for path in out.glob("rank*.json")), key=lambda r: r["rank"]
    )
    assert [r["rank"] for r in records] == [0, 1]
    for record in records:
        assert record["world_size"] == 2
        assert record["backend"] == "gloo"
        assert record["batches"] == 2  # two training steps on each process
        assert record["global_step"] == 4  # each step is one G and one D optimiser step
    # the processes trained on different samples yet hold the same generator: gradients were all-reduced
    assert records[0]["first_frames"] != records[1]["first_frames"]
    assert abs(records[0]["generator_checksum"] - records[1]["generator_checksum"]) < 1e-6 * max(
        1.0, abs(records[0]["generator_checksum"])
    )
    return records


def test_two_process_ddp_takes_two_steps_with_synchronised_generators(tmp_path):
    cache = write_synthetic_cache(tmp_path / "cache", num_frames=10, crop_size=32)
    run_two_processes(cache, tmp_path / "out")


def test_two_process_ddp_fine_tunes_from_a_checkpoint_on_predicted_landmarks(tmp_path):
    from test_vid2vid_module import tiny_module

    cache = write_synthetic_cache(tmp_path / "cache", num_frames=10, crop_size=32)
    rng = np.random.default_rng(0)
    for record in list_clips(cache):  # audio features that move the predictions (the helper writes zeros)
        arrays = {key: value for key, value in np.load(record.path).items() if key != "meta"}
        arrays["mfcc"] = rng.standard_normal(arrays["mfcc"].shape).astype(np.float32)
        arrays["llf"] = rng.standard_normal(arrays["llf"].shape).astype(np.float32)
        save_clip(record.path, arrays, read_clip_meta(record.path))
    torch.manual_seed(5)
    initial = save_module_checkpoint(tiny_module(), tmp_path / "initial.ckpt")
    a2l = untrained_a2l_checkpoint(tmp_path / "a2l.ckpt")

    records = run_two_processes(cache, tmp_path / "out", initial, a2l)
    for record in records:
        assert record["start_distance"] == 0.0  # both processes started from the checkpoint's generator
        assert record["end_distance"] > 0.0  # and trained away from it
        assert record["predicted_error"] < 1e-4  # every training target came from the predictions ...
        assert record["truth_error"] > 0.1  # ... not from the clips' own landmarks
    (folder,) = (cache / "predicted_landmarks").iterdir()  # one checkpoint, one folder of predictions
    assert list(folder.glob("*.npy")) and not list(folder.glob("*.tmp"))
