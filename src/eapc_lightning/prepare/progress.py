"""The progress bar of a prepare run."""


class ItemProgress:
    """A rich progress bar counting prepared items, with ok / failed tallies."""

    def __init__(self, total: int, skipped: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.ok = self.failed = 0
        self.skipped = skipped
        self._progress = Progress(
            TextColumn("[bold]prepare[/bold] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self._task = self._progress.add_task(self._describe(), total=total)
        self._progress.start()

    def _describe(self) -> str:
        return f"ok {self.ok} · failed {self.failed} · up to date {self.skipped}"

    def advance(self, record: dict) -> None:
        self.ok += record["status"] == "ok"
        self.failed += record["status"] == "failed"
        self._progress.update(self._task, advance=1, description=self._describe())

    def stop(self) -> None:
        self._progress.stop()
