"""Errors that name the offending input, so a batch job can record them per item."""

from pathlib import Path


class InputError(ValueError):
    """Bad input media or metadata: carries the path and a one-line reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights are required but absent; the message says which file and where to put it."""
