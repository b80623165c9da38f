"""``eapc fit|validate|test|predict``: LightningCLI over any LightningModule / LightningDataModule.

Experiments choose their classes by ``class_path`` in YAML (``experiments/*.yaml`` for the model and
trainer, ``data_modules/*.yaml`` for the data), so one entry point serves both stages::

    eapc fit  --config experiments/a2l.yaml --config data_modules/synthetic.yaml --seed_everything 1
    eapc test --config experiments/a2l.yaml --config data_modules/synthetic.yaml \\
              --ckpt_path runs/a2l/20261126-101500-seed1/checkpoints/best.ckpt

Run folders. Every command writes into its own folder ``<run.root>/<run.name>/<timestamp>[-seed<k>]``
(``run.dir`` sets it outright; DDP workers launched by rank 0 on one node inherit rank 0's folder,
multi-node launches should pass ``--run.dir``). ``fit`` writes there; ``validate``/``test``/``predict`` write into a
``<subcommand>/`` subfolder, of the run the checkpoint came from when ``--ckpt_path`` points into a run
folder's ``checkpoints/``. The CLI fills in the output locations of the configured loggers and
checkpoint callbacks (``save_dir``, ``dirpath``), so YAML never names a folder:

    config.yaml        the resolved configuration (every default filled in)
    versions.json      package versions; git.json: revision and dirty flag (RunMetadata, always on)
    checkpoints/       best.ckpt (by the monitored metric) and last.ckpt (fit)
    csv/metrics.csv    CSVLogger output; wandb/: W&B files (offline unless an API key is configured)
    metrics.json       final metric values (FinalMetrics, always on)

W&B: a WandbLogger runs offline when ``WANDB_MODE`` is unset and no API key is configured
(``WANDB_API_KEY`` or ``wandb login``); upload later with ``wandb sync <run>/wandb/offline-run-*``.
"""

import argparse
import difflib
import importlib
import inspect
import netrc
import os
import re
import sys
import warnings
from datetime import datetime
from pathlib import Path

import yaml
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info

from eapc_lightning.data.index import require_clips
from eapc_lightning.errors import InputError

CONFIG_FILENAME = "config.yaml"
CHECKPOINT_FOLDER = "checkpoints"
CSV_FOLDER = "csv"
RUN_DIR_ENV = "EAPC_RUN_DIR"
# the vid2vid stage's label-map contract (Vid2VidDataModule draws the maps, Vid2VidModule at inference)
DATA_TO_MODEL_LINKS = ("image_size", "num_references", "label_thickness")


def wandb_api_key_configured() -> bool:
    """True when W&B could upload: ``WANDB_API_KEY`` is set or ``wandb login`` stored a key in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)


def run_folder_of_checkpoint(ckpt_path: str | None) -> Path | None:
    """The run folder holding ``ckpt_path`` (``<run>/checkpoints/x.ckpt`` with ``<run>/config.yaml``)."""
    if not ckpt_path or ckpt_path in ("best", "last", "hpc", "registry"):
        return None
    path = Path(ckpt_path).resolve()
    if path.parent.name == CHECKPOINT_FOLDER and (path.parent.parent / CONFIG_FILENAME).is_file():
        return path.parent.parent
    return None


def new_run_folder(root: str, name: str, seed: int | bool | None) -> Path:
    """``root/name/<YYYYmmdd-HHMMSS>[-seed<k>]``, with a counter appended if that folder exists."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = f"-seed{seed}" if isinstance(seed, int) and not isinstance(seed, bool) else ""
    folder = Path(root) / name / f"{stamp}{suffix}"
    counter = 1
    while folder.exists():
        folder = Path(root) / name / f"{stamp}{suffix}-{counter}"
        counter += 1
    return folder


class RunConfigSaver(SaveConfigCallback):
    """Saves the resolved config as ``config.yaml`` in the run's output folder (``trainer.default_root_dir``)."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        if trainer.is_global_zero:
            folder = Path(trainer.default_root_dir)
            folder.mkdir(parents=True, exist_ok=True)
            self.parser.save(
                self.config,
                str(folder / self.config_filename),
                skip_none=False,
                overwrite=True,
                multifile=False,
            )
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)


def _entries(value) -> list:
    if value is None or isinstance(value, bool):
        return []
    return list(value) if isinstance(value, list) else [value]


def _class_name(entry) -> str:
    class_path = entry.get("class_path", "") if hasattr(entry, "get") else ""
    return str(class_path).rsplit(".", 1)[-1]


class EAPCLightningCLI(LightningCLI):
    """LightningCLI that gives every command its own run folder and points loggers/checkpoints into it.

    Every run gets ``RunMetadata`` (versions.json, git.json) and ``FinalMetrics`` (metrics.json) without
    listing them: experiment YAMLs list only the callbacks that are theirs. Its parsers raise instead of printing a usage dump, so :func:`run_lightning_cli` can lead the error
    with the line that matters (:func:`explain_parse_error`). Inputs that can be checked from the config
    alone (the cache folder) are checked before any run folder or logger exists.
    """

    def instantiate_trainer(self, **kwargs) -> Trainer:
        """The configured Trainer plus the callbacks every run has (run records), unless already listed.

        When stdout is not a terminal (a log file), the progress bar gives way to
        :class:`~eapc_lightning.lit.progress.LineProgress`, which prints plain lines a log can hold.
        """
        from lightning.pytorch.callbacks import ProgressBar
        from lightning.pytorch.loggers import WandbLogger

        from eapc_lightning.lit.progress import LineProgress
        from eapc_lightning.lit.run_records import FinalMetrics, RunMetadata

        trainer = super().instantiate_trainer(**kwargs)
        for always_on in (RunMetadata, FinalMetrics):
            if not any(isinstance(callback, always_on) for callback in trainer.callbacks):
                trainer.callbacks.append(always_on())
        if not sys.stdout.isatty():
            trainer.callbacks = [
                LineProgress() if isinstance(callback, ProgressBar) else callback
                for callback in trainer.callbacks
            ]
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and logger._wandb_init.get("anonymous") is None:
                # Lightning always passes `anonymous`, and wandb warns that the setting has no effect
                logger._wandb_init.pop("anonymous", None)
        return trainer

    def init_parser(self, **kwargs) -> LightningArgumentParser:
        parser = super().init_parser(**kwargs)
        parser.exit_on_error = False
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Stage contracts: settings both the data and the model depend on are set once, on the data, and
        # linked into the model (a pair of classes without the key is left alone).
        for key in DATA_TO_MODEL_LINKS:
            parser.link_arguments(f"data.init_args.{key}", f"model.init_args.{key}", apply_on="parse")
        parser.add_argument("--run.root", type=str, default="runs", help="Folder holding all run folders.")
        parser.add_argument(
            "--run.name", type=str, default="default", help="Experiment name: runs go to <root>/<name>/."
        )
        parser.add_argument(
            "--run.dir",
            type=str | None,
            default=None,
            help="Use exactly this run folder (sweeps); otherwise <root>/<name>/<timestamp>[-seed<k>].",
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        cache_dir = (config.get("data") or {}).get("init_args", {}).get("cache_dir")
        if cache_dir is not None:
            require_clips(cache_dir)
        run_dir = self._resolve_run_folder(config)
        output_dir = run_dir if self.subcommand in (None, "fit") else run_dir / self.subcommand
        self.run_dir, self.output_dir = run_dir, output_dir
        config.trainer.default_root_dir = str(output_dir)
        # made now, before the loggers start: W&B looks for the git repository from its folder
        output_dir.mkdir(parents=True, exist_ok=True)
        self._point_loggers_into(config, run_dir, output_dir)
        for callback in _entries(config.trainer.callbacks):
            if _class_name(callback) == "ModelCheckpoint":
                callback.init_args.dirpath = str(run_dir / CHECKPOINT_FOLDER)
        rank_zero_info(f"Run folder: {output_dir}")

    def _resolve_run_folder(self, config) -> Path:
        if config.run.dir:
            return Path(config.run.dir)
        if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get(RUN_DIR_ENV):
            return Path(os.environ[RUN_DIR_ENV])  # a DDP worker started by rank 0: same folder
        checkpoint_run = run_folder_of_checkpoint(config.get("ckpt_path"))
        if checkpoint_run is not None and self.subcommand != "fit":
            folder = checkpoint_run
        else:
            folder = new_run_folder(config.run.root, config.run.name, config.seed_everything)
        os.environ[RUN_DIR_ENV] = str(folder)  # inherited by the DDP worker processes rank 0 launches
        return folder

    def _point_loggers_into(self, config, run_dir: Path, output_dir: Path) -> None:
        offline = os.environ.get("WANDB_MODE") is None and not wandb_api_key_configured()
        for logger in _entries(config.trainer.logger):
            name = _class_name(logger)
            if name == "CSVLogger":
                logger.init_args.save_dir = str(output_dir)
                logger.init_args.name = ""
                logger.init_args.version = CSV_FOLDER
            elif name == "WandbLogger":
                args = logger.init_args
                args.save_dir = str(output_dir)
                if not args.get("name"):
                    suffix = "" if output_dir == run_dir else f"-{self.subcommand}"
                    args.name = f"{config.run.name}/{run_dir.name}{suffix}"
                if not args.get("group"):
                    args.group = config.run.name
                if offline and not args.get("offline"):
                    args.offline = True
                    rank_zero_info(
                        "W&B: no API key and WANDB_MODE unset, logging offline; upload later with "
                        f"`wandb sync {output_dir}/wandb/offline-run-*`"
                    )


TOP_LEVEL_KEYS = (
    "seed_everything",
    "trainer",
    "model",
    "data",
    "optimizer",
    "lr_scheduler",
    "ckpt_path",
    "run",
)


def _config_files(argv: list[str]) -> list[Path]:
    files = []
    for index, argument in enumerate(argv):
        if argument in ("--config", "-c") and index + 1 < len(argv):
            files.append(Path(argv[index + 1]))
        elif argument.startswith("--config="):
            files.append(Path(argument.split("=", 1)[1]))
    return files


def _key_paths(tree, prefix: str = ""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            path = f"{prefix}{key}"
            yield path
            yield from _key_paths(value, f"{path}.")
    elif isinstance(tree, list):
        for value in tree:
            yield from _key_paths(value, prefix)


def _where_set(key: str, argv: list[str]) -> tuple[str, str]:
    """Where an unknown key was given: (the last config file, or "the command line"; its full key path)."""
    for argument in argv:
        dotted = argument.lstrip("-").split("=")[0]
        if dotted.split(".")[-1] == key:
            return "the command line", dotted
    for path in reversed(_config_files(argv)):
        try:
            tree = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        for dotted in _key_paths(tree):
            if dotted.split(".")[-1] == key:
                return str(path), dotted
    return "the configuration", key


def _accepted_names(owner: str) -> list[str]:
    """Parameter names of a class given by import path, or of a top-level section."""
    if owner == "":
        return list(TOP_LEVEL_KEYS)
    if owner == "trainer":
        return list(inspect.signature(Trainer.__init__).parameters)[1:]
    module_name, _, class_name = owner.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), class_name)
        return [name for name in inspect.signature(target).parameters if name not in ("args", "kwargs")]
    except (ImportError, AttributeError, ValueError, TypeError):
        return []


def explain_parse_error(message: str, argv: list[str]) -> str:
    """The one line that matters in a LightningCLI parse error: file, unknown key, nearest valid key."""
    unknown = re.findall(r"class_path '([\w.]+)':\s*\n\s*Option '(\w+)' is not accepted", message)
    if unknown:
        owner, key = unknown[-1]
    else:
        match = re.search(r"does not accept option '([\w.]+)'|unrecognized arguments: --([\w.]+)", message)
        if match is None:  # not an unknown key (a wrong type, say): the parser's first two lines, joined
            return " ".join(line.strip() for line in message.strip().splitlines()[:2])
        dotted = match.group(1) or match.group(2)
        owner, _, key = dotted.rpartition(".")
    where, dotted = _where_set(key, argv)
    nearest = difflib.get_close_matches(key, _accepted_names(owner), n=1, cutoff=0.6)
    owner_name = owner.rsplit(".", 1)[-1] or "the top level"
    hint = f"; did you mean '{nearest[0]}'?" if nearest else ""
    return f"{where}: unknown key '{dotted}' ({owner_name} has no '{key}'){hint}"


def run_lightning_cli(argv: list[str]) -> int:
    """Run ``eapc <subcommand> ...`` with ``argv`` (the arguments after ``eapc``).

    A parse error exits with status 2 and an input error (a missing cache, say) with 1, each led by one
    line naming the file and the problem; the parser's own explanation follows a parse error.
    """
    subcommand = argv[0] if argv else ""
    try:
        with warnings.catch_warnings():
            # argv is given explicitly on purpose (the dispatcher strips nothing, tests call in-process)
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
            EAPCLightningCLI(
                LightningModule,
                LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_callback=RunConfigSaver,
                save_config_kwargs={"overwrite": True, "config_filename": CONFIG_FILENAME},
                args=argv,
            )
    except argparse.ArgumentError as error:
        message = str(error)
        print(f"eapc {subcommand}: {explain_parse_error(message, argv)}", file=sys.stderr)
        print(f"{message.rstrip()}\n(all options: eapc {subcommand} --help)", file=sys.stderr)
        raise SystemExit(2) from None
    except InputError as error:
        print(f"eapc {subcommand}: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    return 0
