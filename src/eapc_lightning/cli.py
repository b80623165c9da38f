"""The `eapc` command line.

``eapc fit|validate|test|predict`` are LightningCLI subcommands (experiment YAML + dataset YAML);
the others are project tools. Each tool lives in ``eapc_lightning.commands.<name>`` (a ``-`` in the
command is a ``_`` in the module name) and exposes ``add_arguments(parser)`` and ``run(args) -> int``;
modules are imported only when their command runs, so ``eapc --help`` stays fast.
"""

import argparse
import importlib
import sys

from eapc_lightning import __version__

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")

TOOLS = {
    "synth": "Generate the synthetic MEAD-layout dataset (the embedded default)",
    "prepare": "Decode, detect landmarks and extract audio features into a training cache",
    "sweep": "Run experiment variants over seeds and write ablation tables",
    "generate": "Speech + a face photo -> a talking-face mp4 with sound",
    "evaluate": "Run the whole pipeline on a test split and write the paper's Table 1",
    "report": "Gather run folders into one markdown report",
    "strip": "Evenly spaced frames of a video as one PNG strip",
    "evaluate-render": "Does a rendered face follow its landmarks? Re-detect them, compare mouths",
    "audio-ceiling": "How much of each clip's mouth opening its audio features predict, learnt from the others",
    "pipeline": "The Makefile's jobs (a2l, vid2vid, ablation, demo): resumable chains of the commands above",
}


def _tool_module(name: str):
    return importlib.import_module(f"eapc_lightning.commands.{name.replace('-', '_')}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
        from eapc_lightning.commands.lightning import run_lightning_cli

        return run_lightning_cli(argv)

    parser = argparse.ArgumentParser(
        prog="eapc",
        description="EAPC talking-face framework. Training: eapc {fit,validate,test,predict} --config ...",
    )
    parser.add_argument("--version", action="version", version=f"eapc-lightning {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in LIGHTNING_SUBCOMMANDS:
        subparsers.add_parser(name, help=f"LightningCLI {name} (see `eapc {name} --help`)", add_help=False)
    wanted = argv[0] if argv and argv[0] in TOOLS else None
    for name, help_text in TOOLS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            _tool_module(name).add_arguments(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(_tool_module(args.command).run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
