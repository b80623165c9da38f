"""``eapc evaluate``: the whole pipeline on a test split -> the paper's Table 1 (docs/generate.md).

    eapc evaluate --data data_modules/synthetic.yaml [--protocol eapc|eat|PATH] [--a2l CKPT]
                  [--vid2vid CKPT [--vid2vid-name NAME] ... | --landmarks-only] [--cache-dir DIR]
                  [--split test|all] [--out tables]
                  [--quoted MEAD|CREMA-D|all] [--seed 0] [--wandb] [--emotion-control happy,sad]

The protocol (``experiments/evaluation/<name>.yaml``, docs/evaluation.md) fixes the detector, the
alignment, the crop, the frame matching and the image-metric settings; its name and settings head every
table written.
The test split is the one the data YAML's ``LandmarkDataModule`` makes (same seed and speaker fractions
as training). ``--split all`` scores every clip of the cache instead (footage no model trained on, e.g.
docs/real_speech.md); no speaker split is made then, so a cache of one or two speakers works.
``--emotion-control FIRST,SECOND`` also writes ``emotion_control.md``/``.csv``: the LLF encoder's emotion
reading of each clip and how far forcing FIRST instead of SECOND moves mouth corners and brows
(``eapc_lightning.evaluation.emotion_control``).
``--vid2vid`` given several times scores each landmark-to-video model as its own full-pipeline row, on
the same clips and the same a2l landmarks (``eapc pipeline paper``: trained on ground-truth landmarks vs
fine-tuned on predicted ones); ``--vid2vid-name`` (once per model, in order) names the rows.
Checkpoints default to the newest under ``runs/``.
"""

import argparse
import sys
from pathlib import Path

QUOTED_CHOICES = ("MEAD", "CREMA-D", "all")
SPLIT_CHOICES = ("test", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="dataset YAML (data_modules/*.yaml)")
    parser.add_argument("--cache-dir", default=None, help="override the YAML's data.init_args.cache_dir")
    parser.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        default="test",
        help="clips to score: the test split (default) or every clip of the cache",
    )
    parser.add_argument(
        "--a2l", type=Path, default=None, help="audio-to-landmark checkpoint (default: newest)"
    )
    parser.add_argument(
        "--vid2vid",
        type=Path,
        action="append",
        default=None,
        help="landmark-to-video checkpoint (default: newest); repeat for one full-pipeline row per model",
    )
    parser.add_argument(
        "--vid2vid-name",
        action="append",
        default=None,
        metavar="NAME",
        help="method name of the row of each --vid2vid, in order (default: 'EAPC (ours, full pipeline)')",
    )
    parser.add_argument("--landmarks-only", action="store_true", help="score the a2l stage alone (no frames)")
    parser.add_argument(
        "--protocol",
        default="eapc",
        help="evaluation protocol: a name in experiments/evaluation/ (eapc, eat) or a YAML path",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals (default 0)")
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also log Table 1, the breakdowns and per-clip values as W&B tables (offline without a key)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("tables"), help="folder for table1.md/.csv, per_clip.csv"
    )
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="where to look for checkpoints")
    parser.add_argument(
        "--label", default=None, help="dataset name in our rows (default: the YAML's file stem)"
    )
    parser.add_argument(
        "--quoted", choices=QUOTED_CHOICES, default="all", help="which published rows to quote"
    )
    parser.add_argument(
        "--emotion-control",
        type=_emotion_pair,
        default=None,
        metavar="FIRST,SECOND",
        help="also measure what forcing emotion FIRST instead of SECOND does to the landmarks, e.g. happy,sad",
    )
    parser.add_argument("--fid-extractor", default="auto", choices=("auto", "official", "offline", "none"))
    parser.add_argument("--max-clips", type=int, default=None, help="evaluate only the first N clips")
    parser.add_argument("--device", default="cpu", help="torch device")


def _emotion_pair(text: str) -> tuple[str, str]:
    from eapc_lightning.constants import EMOTIONS

    names = tuple(name.strip() for name in text.split(","))
    if len(names) != 2 or any(name not in EMOTIONS for name in names) or names[0] == names[1]:
        raise argparse.ArgumentTypeError(
            f"expected two different emotions FIRST,SECOND from {', '.join(EMOTIONS)}; got {text!r}"
        )
    return names


def datamodule_from_yaml(path: Path, cache_dir: str | None, setup: bool = True):
    """The LandmarkDataModule a dataset YAML describes, parsed and checked as ``eapc fit`` does, set up
    (split and standardised) unless ``setup`` is false."""
    from jsonargparse import ActionConfigFile
    from lightning.pytorch.cli import LightningArgumentParser

    from eapc_lightning.commands.lightning import explain_parse_error
    from eapc_lightning.data.datamodule import LandmarkDataModule
    from eapc_lightning.errors import InputError

    if not path.is_file():
        raise InputError(path, "dataset YAML not found")
    parser = LightningArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_lightning_class_args(LandmarkDataModule, "data", subclass_mode=True, required=True)
    argv = ["--config", str(path)] + (
        [] if cache_dir is None else [f"--data.init_args.cache_dir={cache_dir}"]
    )
    try:
        datamodule = parser.instantiate_classes(parser.parse_args(argv)).data
    except argparse.ArgumentError as error:
        reason = explain_parse_error(str(error), argv).removeprefix(f"{path}: ")
        raise InputError(
            path, f"{reason} (expected a LandmarkDataModule config, e.g. data_modules/synthetic.yaml)"
        ) from None
    if setup:
        datamodule.setup("test")
    return datamodule


def _clips_to_score(args: argparse.Namespace):
    """(records, their audio feature settings, cache folder) for ``--split``; InputError when none."""
    from eapc_lightning.data.index import list_clips
    from eapc_lightning.errors import InputError

    if args.split == "test":
        datamodule = datamodule_from_yaml(args.data, args.cache_dir)
        records = datamodule.test_clips()[: args.max_clips]
        if not records:
            raise InputError(args.data, "the test split is empty")
        return records, datamodule.audio_features, datamodule.cache_dir
    datamodule = datamodule_from_yaml(args.data, args.cache_dir, setup=False)
    everything = list_clips(datamodule.cache_dir)
    for record in everything[1:]:
        if record.audio_features != everything[0].audio_features:
            raise InputError(
                record.path,
                f"prepared with other audio feature settings than {everything[0].path.name}: "
                "prepare the whole cache with one set of settings",
            )
    return everything[: args.max_clips], everything[0].audio_features, datamodule.cache_dir


def _video_models(found: list, names: list[str], a2l_found, device: str):
    """The loaded vid2vid models: None for none, the module for one unnamed, else one VideoModel per row
    (keys ``pipeline``, ``pipeline_2``, ...); InputError when they make frames of different sizes."""
    from eapc_lightning.errors import InputError
    from eapc_lightning.evaluation.clip_eval import PIPELINE_ROW, VideoModel
    from eapc_lightning.inference.checkpoints import load_module

    modules = [load_module("vid2vid", item, device) for item in found]
    if not modules:
        return None
    if len(modules) == 1 and not names:
        return modules[0]
    for item, module in zip(found[1:], modules[1:], strict=True):
        if module.hparams.image_size != modules[0].hparams.image_size:
            raise InputError(
                item.path,
                f"generates {module.hparams.image_size}-px frames, {found[0].path} "
                f"{modules[0].hparams.image_size}-px ones: the rows of one table need one size",
            )
    rows = []
    for index, (item, module) in enumerate(zip(found, modules, strict=True)):
        key = PIPELINE_ROW if index == 0 else f"{PIPELINE_ROW}_{index + 1}"
        name = names[index] if index < len(names) else f"EAPC (ours, full pipeline, {item.path})"
        rows.append(VideoModel(key, module, name, f"measured: {a2l_found.path} + {item.path}"))
    return rows


def run(args: argparse.Namespace) -> int:
    from eapc_lightning.errors import InputError, MissingWeightsError
    from eapc_lightning.evaluation.protocol import load_protocol
    from eapc_lightning.evaluation.run import evaluate_split
    from eapc_lightning.inference.checkpoints import MissingCheckpointError, load_module, resolve_checkpoint

    try:
        protocol = load_protocol(args.protocol)
        if args.landmarks_only and protocol.detector != "mediapipe":
            raise InputError(
                args.protocol,
                f"the {protocol.name} protocol measures rendered frames with {protocol.detector}; "
                "--landmarks-only needs a MediaPipe protocol (the cache's landmarks are MediaPipe's)",
            )
        if protocol.detector == "dlib" and not args.landmarks_only:
            from eapc_lightning.landmarks.dlib_detect import DlibLandmarkDetector

            DlibLandmarkDetector()  # the predictor file is checked before any clip runs
        records, audio_features, cache_dir = _clips_to_score(args)
        a2l_found = resolve_checkpoint("a2l", args.a2l, args.runs)
        vid2vid_paths = [] if args.landmarks_only else (args.vid2vid or [None])
        names = args.vid2vid_name or []
        if len(names) > len(vid2vid_paths):
            raise ValueError(
                f"--vid2vid-name given {len(names)} times for {len(vid2vid_paths)} landmark-to-video models"
            )
        vid2vid_found = [resolve_checkpoint("vid2vid", path, args.runs) for path in vid2vid_paths]
        a2l = load_module("a2l", a2l_found, args.device)
        if a2l.audio_features != audio_features:
            raise InputError(
                a2l_found.path,
                f"trained on audio features computed with other settings than the cache "
                f"{cache_dir} holds ({audio_features.digest()}): prepare the data with "
                "the model's settings, or evaluate a model trained on this cache",
            )
        vid2vid = _video_models(vid2vid_found, names, a2l_found, args.device)
    except (InputError, MissingCheckpointError, MissingWeightsError, ValueError) as error:
        print(f"eapc evaluate: {error}", file=sys.stderr)
        return 1
    print(protocol.header().replace("**", ""))
    print(f"audio-to-landmark checkpoint: {a2l_found.path}")
    for found in vid2vid_found:
        print(f"landmark-to-video checkpoint: {found.path}")
    label = args.label or args.data.stem
    source = f"measured: {a2l_found.path}" + "".join(f" + {found.path}" for found in vid2vid_found)
    from rich.progress import Progress

    with Progress() as bar:
        clips = "test clips" if args.split == "test" else "clips"
        task = bar.add_task(f"evaluating {len(records)} {clips}", total=len(records))
        result = evaluate_split(
            records,
            a2l,
            vid2vid,
            args.out,
            label,
            source,
            protocol,
            fid_extractor=args.fid_extractor,
            quoted_dataset=None if args.quoted == "all" else args.quoted,
            progress=lambda done, total: bar.update(task, completed=done),
            seed=args.seed,
        )
    for clip_id, error in result.failures.items():
        print(f"clip {clip_id} failed: {error}", file=sys.stderr)
    written = [result.table_markdown, result.table_csv, result.landmark_stage_csv, result.breakdown_csv]
    written += [result.breakdown_csv.with_suffix(".md"), result.per_clip_csv]
    print("wrote " + ", ".join(str(path) for path in written if path is not None))
    print(result.table_markdown.read_text())
    if result.figure is not None:
        print(f"wrote {result.figure}")
    if args.emotion_control is not None:
        from eapc_lightning.evaluation.emotion_control import emotion_control, write_emotion_control

        summary = emotion_control(records, a2l, *args.emotion_control)
        markdown = write_emotion_control(summary, label, args.out)
        print(f"wrote {markdown}, {markdown.with_suffix('.csv')}")
        print(markdown.read_text())
    if args.wandb:
        from eapc_lightning.evaluation.run import log_to_wandb

        folder = log_to_wandb(result, protocol, label, args.out)
        print(f"W&B tables: {folder} (offline runs: wandb sync {folder})")
    return 0
