"""A 2-process DDP run of the vid2vid module on CPU (gloo backend) takes two training steps."""

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers.vid2vid_cache import write_synthetic_cache

TESTS_DIR = Path(__file__).parent
SCRIPT = TESTS_DIR / "helpers" / "vid2vid_ddp_run.py"


def test_two_process_ddp_takes_two_steps_with_synchronised_generators(tmp_path):
    cache = write_synthetic_cache(tmp_path / "cache", num_frames=10, crop_size=32)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(cache), str(out)],
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
