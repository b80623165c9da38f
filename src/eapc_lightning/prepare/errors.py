"""The errors that stop a prepare run before any work, in the library's terms.

Each carries what it is about as attributes, so that a front end (``eapc prepare``) can word the same
problem in its own terms (its flags); ``str()`` gives a one-line message naming the parameter or path.
"""

from pathlib import Path


class PrepareUsageError(ValueError):
    """Invalid arguments to prepare (the only errors that stop a run)."""


class ArgumentError(PrepareUsageError):
    """A parameter of ``prepare_dataset`` outside its range: its name, its value and the rule it breaks."""

    def __init__(self, name: str, value, rule: str):
        self.name = name
        self.value = value
        self.rule = rule  # what the value must be, e.g. "at least 1"
        super().__init__(f"{name} must be {rule}, not {value!r}")


class NothingSelectedError(PrepareUsageError):
    """The root holds clips, but the filters keep none of them."""

    def __init__(self, root: str | Path, found: int, filters: dict[str, list[str]], available: str):
        self.root = root
        self.found = found  # clips in the root before filtering
        self.filters = filters  # filter name ("speakers", "emotions", "views") -> the values asked for
        self.available = available  # what the filters could have selected
        wanted = "; ".join(f"{name} {','.join(values)}" for name, values in filters.items())
        super().__init__(f"{self.root}: {found} clip(s) found, but none matches {wanted} (found {available})")


class CacheFolderError(PrepareUsageError):
    """The cache folder cannot be created or written: names the folder and why."""

    def __init__(self, out: str | Path, reason: str):
        self.out = Path(out)
        self.reason = reason
        super().__init__(f"{self.out}: {reason}")
