"""Every shipped experiment YAML, composed the way the README, the docs and the Makefile compose it, runs
through the real ``eapc`` command with the loggers and callbacks it ships (CSV, W&B offline).

Each stack trains one batch, validates one batch and leaves a complete run folder, on a tiny cache made
by the real ``eapc synth`` + ``eapc prepare``. ``fast_dev_run`` is not used: it swaps the configured
loggers for a dummy one, which would hide a logger-only failure such as a hyper-parameter clash between
the module and the DataModule. Paper-scale configs keep their structure and have their sizes shrunk by
command-line overrides (the widths a CPU can step in seconds).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO_ROOT
from eapc_lightning.audio.features import AudioFeatureConfig

EXPERIMENTS = REPO_ROOT / "experiments"
NATIVE_NOTICES = ("inference_feedback_manager.cc", "XNNPACK delegate", "absl::InitializeLog")
DATA_MODULES = REPO_ROOT / "data_modules"

ONE_STEP = [
    "--trainer.limit_train_batches=1",
    "--trainer.max_epochs=1",
    "--trainer.limit_val_batches=1",
    "--trainer.limit_test_batches=1",
    "--trainer.check_val_every_n_epoch=1",
    "--trainer.num_sanity_val_steps=0",
    "--trainer.log_every_n_steps=1",
]
ON_CPU = ["--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.strategy=auto"]
SMALL_A2L = [
    "--model.init_args.network.audio_hidden=16",
    "--model.init_args.network.llf_hidden=16",
    "--model.init_args.network.landmark_hidden=16",
    "--model.init_args.network.attention_dim=16",
    "--model.init_args.network.reference_dim=8",
]
# The vid2vid network options are dicts, and a dotted command-line override of a dict entry arrives as a
# string: the shrunk widths go in as one YAML file (written per test), the flat settings as flags.
SMALL_VID2VID_NETWORKS = {
    "model": {
        "init_args": {
            "generator": {
                "base_channels": 8,
                "max_channels": 16,
                "num_downsamples": 3,
                "num_adaptive_blocks": 2,
                "spade_hidden_channels": 8,
                "weight_mlp_hidden": 8,
                "attention_channels": 8,
                "flow_base_channels": 8,
                "flow_num_downsamples": 2,
                "flow_residual_blocks": 1,
            },
            "image_discriminator": {"base_channels": 8, "max_channels": 16},
            "mouth_discriminator_options": {"crop_size": 16, "base_channels": 8, "num_layers": 2},
        }
    }
}
SMALL_VID2VID = [
    "--data.init_args.image_size=64",
    "--model.init_args.perceptual_weight=0",  # VGG19 weights are a user download
    "--model.init_args.fid_extractor=none",  # Inception on CPU: minutes
    "--data.init_args.sequence_length=2",
    "--data.init_args.eval_sequence_length=2",
    "--data.init_args.samples_per_clip=1",
    "--data.init_args.batch_size=2",
    "--data.init_args.num_workers=0",
    "--data.init_args.persistent_workers=false",
    "--data.init_args.pin_memory=false",
    "--trainer.precision=32-true",
]


def _a2l(*files: str) -> list[str]:
    return ["experiments/a2l.yaml", *files]


# name -> (config files in order (a dict: a YAML override written for the test), flags, logs to W&B)
STACKS: dict[str, tuple[list, list[str], bool]] = {
    # the README's and `make train-a2l DATA=...`'s compositions: a2l.yaml + each dataset file
    **{
        f"a2l+{data.stem}": (_a2l(f"data_modules/{data.name}"), [], True)
        for data in sorted(DATA_MODULES.glob("*.yaml"))
        if data.stem != "real_speech"
    },
    # `make eval-real-speech ARGS=--finetune` (init_weights, which it also sets, is tested in
    # test_emotion_control.py); the held-out clips renamed to the tiny cache's speakers
    "a2l_finetune_real": (
        _a2l(
            "data_modules/real_speech.yaml",
            "experiments/a2l_finetune_real.yaml",
            {"data": {"init_args": {"test_speakers": ["M103"], "val_speakers": ["W104"]}}},
        ),
        [],
        True,
    ),
    # paper scale (`make train-a2l DATA=mead|crema_d` adds them after the dataset file), widths shrunk
    "a2l_mead": (_a2l("data_modules/mead.yaml", "experiments/a2l_mead.yaml"), SMALL_A2L, True),
    "a2l_crema_d": (_a2l("data_modules/crema_d.yaml", "experiments/a2l_crema_d.yaml"), SMALL_A2L, True),
    # `make sweep-ablation`: base + data + CPU budget + one variant per table row
    **{
        f"ablation/{variant.stem}": (
            _a2l(
                "data_modules/synthetic.yaml",
                "experiments/a2l_sweep_cpu.yaml",
                f"experiments/ablations/{variant.name}",
            ),
            [],
            True,
        )
        for variant in sorted((EXPERIMENTS / "ablations").glob("*.yaml"))
    },
    # `make demo`
    "demo_a2l": (_a2l("data_modules/synthetic.yaml", "experiments/demo_a2l.yaml"), [], False),
    "vid2vid": (["experiments/vid2vid.yaml"], [], True),
    "vid2vid_k3": (["experiments/vid2vid.yaml", "experiments/vid2vid_k3.yaml"], [], True),
    "vid2vid_no_mesh_flow": (
        ["experiments/vid2vid.yaml", "experiments/vid2vid_no_mesh_flow.yaml"],
        [],
        True,
    ),
    "demo_vid2vid": (["experiments/vid2vid.yaml", "experiments/demo_vid2vid.yaml"], [], False),
    "vid2vid_mead": (["experiments/vid2vid_mead.yaml", SMALL_VID2VID_NETWORKS], SMALL_VID2VID + ON_CPU, True),
    # `make paper`'s fine-tuning step (paper section 3.1), from the one-step checkpoints of the base stacks
    "vid2vid_finetune": (
        ["experiments/vid2vid.yaml", "experiments/vid2vid_finetune.yaml"],
        ["--model.init_args.init_weights={vid2vid}", "--data.init_args.predicted_landmarks={a2l+synthetic}"],
        True,
    ),
    "vid2vid_finetune_mead": (
        ["experiments/vid2vid_mead.yaml", SMALL_VID2VID_NETWORKS, "experiments/vid2vid_finetune_mead.yaml"],
        SMALL_VID2VID
        + ON_CPU
        + [
            "--model.init_args.init_weights={vid2vid_mead}",
            "--data.init_args.predicted_landmarks={a2l+synthetic}",
        ],
        True,
    ),
}
# "{stack}" in a flag: the last.ckpt of that stack's one-step fit on the tiny cache (made once per module)
STACK_CHECKPOINT = re.compile(r"\{([^{}]+)\}")


def test_every_shipped_experiment_file_is_in_a_stack():
    shipped = {
        str(path.relative_to(REPO_ROOT))
        for path in EXPERIMENTS.rglob("*.yaml")
        if path.parent.name not in ("sweeps", "evaluation")  # evaluation/: protocols (test_protocols.py)
    }
    shipped |= {str(path.relative_to(REPO_ROOT)) for path in DATA_MODULES.glob("*.yaml")}
    covered = {name for files, _, _ in STACKS.values() for name in files if isinstance(name, str)}
    assert shipped <= covered, f"not run by any stack: {sorted(shipped - covered)}"


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory) -> Path:
    """Four synthetic speakers, two clips each, through the real synth and prepare commands (~25 s)."""
    root = tmp_path_factory.mktemp("tiny_synthetic")
    eapc(
        ["synth", "--out", str(root / "raw"), "--preset", "tiny", "--speakers", "4"]
        + ["--emotions", "angry,happy", "--seconds", "1.6", "--size", "128"],
        root,
    )
    prepared = eapc(
        ["prepare", "--dataset", "mead", "--root", str(root / "raw"), "--out", str(root / "cache")]
        + ["--crop-size", "64", "--no-progress"],
        root,
    )
    assert not [line for line in prepared.stderr.splitlines() if any(n in line for n in NATIVE_NOTICES)]
    return root / "cache"


@pytest.fixture(scope="module")
def stack_checkpoints(tiny_cache, tmp_path_factory):
    """Flags with every ``{stack}`` replaced by the checkpoint of that stack's one-step fit (fitted on
    first use)."""
    made: dict[str, Path] = {}

    def checkpoint(stack: str) -> str:
        if stack not in made:
            folder = tmp_path_factory.mktemp("checkpoint_of_" + re.sub(r"\W", "_", stack))
            files, overrides, _ = STACKS[stack]
            argv = ["fit", *config_arguments(files, folder), f"--data.init_args.cache_dir={tiny_cache}"]
            eapc(argv + [*ONE_STEP, *overrides, f"--run.dir={folder / 'run'}"], folder)
            made[stack] = folder / "run" / "checkpoints" / "last.ckpt"
        return str(made[stack])

    def resolve(flags: list[str]) -> list[str]:
        return [STACK_CHECKPOINT.sub(lambda match: checkpoint(match.group(1)), flag) for flag in flags]

    return resolve


def eapc(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    environment.pop("WANDB_API_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "eapc_lightning.cli", *argv],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"eapc {' '.join(argv)} failed:\n{result.stderr[-4000:]}"
    return result


def config_arguments(files: list, folder: Path) -> list[str]:
    arguments = []
    for index, entry in enumerate(files):
        path = REPO_ROOT / entry if isinstance(entry, str) else folder / f"override{index}.yaml"
        if not isinstance(entry, str):
            path.write_text(yaml.safe_dump(entry))
        arguments += ["--config", str(path)]
    return arguments


@pytest.mark.slow
@pytest.mark.parametrize("stack", sorted(STACKS), ids=str)
def test_shipped_stack_trains_one_step_with_its_loggers(stack, tiny_cache, stack_checkpoints, tmp_path):
    files, overrides, uses_wandb = STACKS[stack]
    overrides = stack_checkpoints(overrides)
    run_dir = tmp_path / "run"
    argv = ["fit", *config_arguments(files, tmp_path), f"--data.init_args.cache_dir={tiny_cache}"]
    result = eapc(argv + [*ONE_STEP, *overrides, f"--run.dir={run_dir}"], tmp_path)

    # stdout is a pipe here, as in a log file: plain progress lines, no warnings of ours
    assert re.search(r"^epoch 1/1 · step \d+ · train/\S+ [-\d.e]+ ", result.stdout, re.MULTILINE)
    assert re.search(r"^fit finished: \d+ steps in ", result.stdout, re.MULTILINE)
    output = result.stdout + result.stderr
    assert "wandb: WARNING" not in output
    assert not [line for line in output.splitlines() if any(notice in line for notice in NATIVE_NOTICES)]
    for record_file in ("config.yaml", "versions.json", "git.json"):  # the CLI's always-on run records
        assert (run_dir / record_file).is_file(), record_file
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    record = json.loads((run_dir / "metrics.json").read_text())
    assert any(key.startswith("val/") for key in record["metrics"])
    header = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert any(column.startswith("val/") for column in header.split(","))
    offline_runs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert bool(offline_runs) == uses_wandb
    if "init_weights" in " ".join(overrides):  # fine-tuning: on predictions the fit made in the cache
        assert list((tiny_cache / "predicted_landmarks").glob("*/*.npy"))


@pytest.mark.slow
@pytest.mark.parametrize("stack", ["a2l+synthetic", "vid2vid"])
def test_main_stacks_evaluate_their_checkpoint(stack, tiny_cache, tmp_path):
    files, overrides, _ = STACKS[stack]
    run_dir = tmp_path / "run"
    common = [
        *config_arguments(files, tmp_path),
        f"--data.init_args.cache_dir={tiny_cache}",
        *ONE_STEP,
        *overrides,
    ]
    eapc(["fit", *common, f"--run.dir={run_dir}"], tmp_path)
    eapc(["test", *common, f"--ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"], tmp_path)
    record = json.loads((run_dir / "test" / "metrics.json").read_text())
    assert any(key.startswith("test/") for key in record["metrics"])
    if stack == "vid2vid":  # the shipped Vid2VidRenders callback: a validation grid and the test video
        assert list((run_dir / "grids").glob("val_epoch*.png"))
        assert (run_dir / "test" / "samples" / "test_sample.mp4").stat().st_size > 0
    else:  # the checkpoint carries the cache's audio feature settings (prepare's defaults)
        checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        assert checkpoint["audio_features"] == AudioFeatureConfig().to_dict()
