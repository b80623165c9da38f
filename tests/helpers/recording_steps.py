"""Steps that record the eapc commands of a pipeline job instead of running them."""

from pathlib import Path

from eapc_lightning.commands.pipeline import Steps


class RecordingSteps(Steps):
    """Records each eapc command instead of running it; a fit leaves what a finished fit leaves."""

    def __init__(self):
        super().__init__(env={})
        self.commands: list[list[str]] = []

    def eapc(self, step, *arguments):
        command = [str(argument) for argument in arguments]
        self.commands.append(command)
        if command[0] == "fit":
            run_dir = Path(command[command.index("--run.dir") + 1])
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            (run_dir / "checkpoints" / "best.ckpt").write_bytes(b"x")
            (run_dir / "metrics.json").write_text("{}")
