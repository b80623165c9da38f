"""`eapc fit|validate|test|predict`: config parsing, clear errors, and the run folder each command leaves.

The run-folder tests use a tiny regression module defined here (the CLI is model-agnostic); the
experiment files are parsed with the real classes they name.
"""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
import yaml
from lightning.pytorch import LightningDataModule, LightningModule
from torch.utils.data import DataLoader, TensorDataset

from conftest import REPO_ROOT
from eapc_lightning.commands.lightning import run_lightning_cli

EXPERIMENT_FILES = sorted((REPO_ROOT / "experiments").glob("*.yaml")) + sorted(
    (REPO_ROOT / "experiments" / "ablations").glob("*.yaml")
)
DATA_MODULE_FILES = sorted((REPO_ROOT / "data_modules").glob("*.yaml"))


class ToyRegression(LightningModule):
    """y = x @ w fitted by SGD; logs under the names the A2L checkpoints monitor."""

    def __init__(self, features: int = 4, lr: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.linear = torch.nn.Linear(features, 1)

    def _loss(self, batch):
        inputs, targets = batch
        return torch.nn.functional.mse_loss(self.linear(inputs), targets)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/M-LD", self._loss(batch))

    def test_step(self, batch, batch_idx):
        self.log("test/M-LD", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class ToyData(LightningDataModule):
    def __init__(self, samples: int = 64, batch_size: int = 16):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        inputs = torch.randn(samples, 4, generator=generator)
        self.data = TensorDataset(inputs, inputs @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]))
        self.batch_size = batch_size

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.data, batch_size=self.batch_size)

    def test_dataloader(self):
        return DataLoader(self.data, batch_size=self.batch_size)


TOY_CONFIG = {
    "seed_everything": 3,
    "run": {"name": "toy"},
    "model": {"class_path": "test_cli.ToyRegression"},
    "data": {"class_path": "test_cli.ToyData"},
    "trainer": {
        "max_epochs": 3,
        "accelerator": "cpu",
        "log_every_n_steps": 1,
        "enable_model_summary": False,
        "logger": [
            {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "ignored"}},
            {"class_path": "lightning.pytorch.loggers.WandbLogger", "init_args": {"project": "eapc-test"}},
        ],
        "callbacks": [
            {
                "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {
                    "monitor": "val/M-LD",
                    "mode": "min",
                    "filename": "best",
                    "save_last": True,
                    "enable_version_counter": False,
                },
            },
            {"class_path": "eapc_lightning.lit.run_records.TorchThreads", "init_args": {"num_threads": 1}},
            {"class_path": "eapc_lightning.lit.run_records.MetricCurves"},
        ],
    },
}


@pytest.fixture
def toy_config(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc: no W&B key anywhere
    monkeypatch.setenv("WANDB_SILENT", "true")
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(TOY_CONFIG))
    return path


def _only_run_folder(root: Path) -> Path:
    folders = [path for path in (root / "toy").iterdir() if path.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def test_fit_then_test_leave_a_complete_run_folder(toy_config, tmp_path):
    runs = tmp_path / "runs"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_lightning_cli(
            ["fit", "--config", str(toy_config), "--run.root", str(runs), "--seed_everything", "7"]
        )
        assert torch.get_num_threads() == 1  # TorchThreads callback
    finally:
        torch.set_num_threads(threads)
    run = _only_run_folder(runs)
    assert run.name.endswith("-seed7")

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["seed_everything"] == 7 and config["model"]["init_args"]["lr"] == 0.1
    versions = json.loads((run / "versions.json").read_text())
    assert torch.__version__.split("+")[0] == versions["packages"]["torch"]
    revision = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    assert json.loads((run / "git.json").read_text())["revision"] == revision.stdout.strip()
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert list((run / "wandb").glob("offline-run-*")), "W&B must log offline without an API key"

    with open(run / "csv" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    val_values = [float(row["val/M-LD"]) for row in rows if row.get("val/M-LD")]
    assert len(val_values) == 3
    fit_record = json.loads((run / "metrics.json").read_text())
    assert fit_record["best_model_score"] == pytest.approx(min(val_values))
    assert Path(fit_record["best_model_path"]) == run / "checkpoints" / "best.ckpt"
    curves = cv2.imread(str(run / "curves.png"))
    assert curves is not None and curves.shape[0] > 100

    best = run / "checkpoints" / "best.ckpt"
    run_lightning_cli(
        ["test", "--config", str(toy_config), "--run.root", str(runs), "--ckpt_path", str(best)]
    )
    assert _only_run_folder(runs) == run, "test of a run's checkpoint writes into that run"
    test_record = json.loads((run / "test" / "metrics.json").read_text())
    # the test data equal the validation data, so the best checkpoint scores its best validation value
    assert test_record["metrics"]["test/M-LD"] == pytest.approx(min(val_values), rel=1e-5)
    assert (run / "test" / "config.yaml").is_file() and (run / "test" / "versions.json").is_file()


def test_explicit_run_dir_and_resume_from_last(toy_config, tmp_path):
    first = tmp_path / "first"
    run_lightning_cli(
        ["fit", "--config", str(toy_config), "--run.dir", str(first), "--trainer.max_epochs", "2"]
    )
    assert (first / "checkpoints" / "last.ckpt").is_file()
    resumed = tmp_path / "resumed"
    last = first / "checkpoints" / "last.ckpt"
    argv = ["fit", "--config", str(toy_config), "--run.dir", str(resumed), "--ckpt_path", str(last)]
    run_lightning_cli(argv)
    record = json.loads((resumed / "metrics.json").read_text())
    assert record["epoch"] == 3  # continued after the two finished epochs up to max_epochs=3
    state = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["epoch"] == 2 and state["global_step"] == 12  # 3 epochs x 4 batches in total


def _cli_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_lightning_cli(argv)
    assert exit_info.value.code != 0
    return capsys.readouterr().err


def test_misspelt_keys_are_named_in_the_error(toy_config, tmp_path, capsys):
    error = _cli_error(["fit", "--config", str(toy_config), "--trainer.max_epochz", "3"], capsys)
    assert "max_epochz" in error
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"model": {"init_args": {"leraning_rate": 0.1}}}))
    error = _cli_error(["fit", "--config", str(toy_config), "--config", str(typo)], capsys)
    assert "leraning_rate" in error
    assert not (tmp_path / "runs").exists()


def _print_config(configs: list[Path], capsys) -> dict:
    argv = ["fit"] + [arg for path in configs for arg in ("--config", str(path))] + ["--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        run_lightning_cli(argv)
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    return yaml.safe_load(captured.out)


def _a2l_available() -> bool:
    try:
        from eapc_lightning.lit.a2l import A2LModule  # noqa: F401
    except ImportError:
        return False
    return True


needs_a2l = pytest.mark.skipif(
    not _a2l_available(), reason="eapc_lightning.lit.a2l.A2LModule is not in place"
)


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def _config_stack(experiment: Path) -> list[Path]:
    """How an experiment file is used: overrides (no explicit seed) go after their base experiment
    (vid2vid.yaml for vid2vid files, a2l.yaml otherwise); a dataset file goes in when none names the data."""
    stack = [experiment]
    if "seed_everything" not in _load(experiment):
        base = "vid2vid.yaml" if "vid2vid" in experiment.name else "a2l.yaml"
        stack.insert(0, REPO_ROOT / "experiments" / base)
    if not any("class_path" in (_load(path).get("data") or {}) for path in stack):
        stack.insert(1, REPO_ROOT / "data_modules" / "synthetic.yaml")
    return stack


@needs_a2l
@pytest.mark.parametrize("experiment", EXPERIMENT_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_experiment_file_parses(experiment, capsys):
    config = _print_config(_config_stack(experiment), capsys)
    assert config["model"]["class_path"].startswith("eapc_lightning.lit.")
    assert config["data"]["class_path"].startswith("eapc_lightning.data.")
    assert isinstance(config["seed_everything"], int) and not isinstance(config["seed_everything"], bool)
    if experiment.parent.name == "ablations":
        network = config["model"]["init_args"]["network"]
        expected = _load(experiment)["model"]["init_args"]["network"]
        assert {key: network[key] for key in expected} == expected


@needs_a2l
@pytest.mark.parametrize("data_module", DATA_MODULE_FILES, ids=lambda p: p.name)
def test_every_data_module_file_parses_with_the_experiment(data_module, capsys):
    config = _print_config([REPO_ROOT / "experiments" / "a2l.yaml", data_module], capsys)
    cache = yaml.safe_load(data_module.read_text())["data"]["init_args"]["cache_dir"]
    assert config["data"]["init_args"]["cache_dir"] == cache


def test_experiment_files_exist():
    names = {path.name for path in EXPERIMENT_FILES}
    assert {"a2l.yaml", "a2l_mead.yaml", "a2l_crema_d.yaml", "no_prior.yaml", "prior.yaml"} <= names


@needs_a2l
def test_wandb_sweep_file_runs_valid_cli_arguments(capsys):
    sweep = _load(REPO_ROOT / "experiments" / "sweeps" / "ablation_wandb.yaml")
    assert sweep["command"][:3] == ["${env}", "eapc", "fit"] and sweep["command"][-1] == "${args}"
    configs = [REPO_ROOT / value for value in sweep["command"][3:-1] if value != "--config"]
    variants = sweep["parameters"]["config"]["values"]
    assert {Path(v).stem for v in variants} == {"no_prior", "prior", "prior_attention"}
    # W&B passes each parameter as --name=value after the fixed arguments
    seed = sweep["parameters"]["seed_everything"]["values"][1]
    argv = ["fit"] + [a for p in configs for a in ("--config", str(p))]
    argv += [f"--config={REPO_ROOT / variants[0]}", f"--seed_everything={seed}", "--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        run_lightning_cli(argv)
    config = yaml.safe_load(capsys.readouterr().out)
    assert exit_info.value.code == 0 and config["seed_everything"] == seed
    assert config["model"]["init_args"]["network"]["prior_skip"] is False


def _eapc(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, "-m", "eapc_lightning.cli", *argv],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
    )


A2L_STACK = [
    "--config",
    str(REPO_ROOT / "experiments/a2l.yaml"),
    "--config",
    str(REPO_ROOT / "data_modules/synthetic.yaml"),
]


@needs_a2l
def test_missing_cache_fails_before_any_run_folder_or_logger(tmp_path):
    missing = tmp_path / "no_cache"
    result = _eapc(
        ["fit", *A2L_STACK, f"--data.init_args.cache_dir={missing}", f"--run.root={tmp_path / 'runs'}"],
        tmp_path,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"eapc fit: {missing / 'clips'}: no prepared clips") and "eapc prepare" in last
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() and not list(tmp_path.rglob("wandb"))


@needs_a2l
@pytest.mark.parametrize(
    ("yaml_text", "key", "nearest"),
    [
        (
            "model:\n  init_args:\n    network:\n      audio_hiden: 8\n",
            "model.init_args.network.audio_hiden",
            "audio_hidden",
        ),
        ("data:\n  init_args:\n    batch_sise: 3\n", "data.init_args.batch_sise", "batch_size"),
        ("trainer:\n  max_epochz: 3\n", "trainer.max_epochz", "max_epochs"),
        ("seed_everythin: 3\n", "seed_everythin", "seed_everything"),
    ],
)
def test_mistyped_yaml_key_error_leads_with_file_key_and_nearest_valid_key(yaml_text, key, nearest, tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml_text)
    result = _eapc(["fit", *A2L_STACK, "--config", str(typo), f"--run.root={tmp_path / 'runs'}"], tmp_path)
    assert result.returncode == 2
    lead = result.stderr.splitlines()[0]
    assert lead.startswith(f"eapc fit: {typo}: unknown key '{key}'") and f"did you mean '{nearest}'" in lead
    assert "usage:" not in result.stderr and len(result.stderr.splitlines()) < 25
    assert not (tmp_path / "runs").exists()


def test_mistyped_command_line_key_is_attributed_to_the_command_line(tmp_path):
    result = _eapc(["fit", *A2L_STACK, "--trainer.max_epochz", "3"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "eapc fit: the command line: unknown key 'trainer.max_epochz' (trainer has no 'max_epochz'); "
        "did you mean 'max_epochs'?"
    )


def test_version_flag(tmp_path):
    result = _eapc(["--version"], tmp_path)
    package = (REPO_ROOT / "src" / "eapc_lightning" / "__init__.py").read_text()
    declared = re.search(r'__version__ = "([^"]+)"', package).group(1)
    assert result.returncode == 0 and result.stdout.strip() == f"eapc-lightning {declared}"
