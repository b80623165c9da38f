"""Mean and standard deviation over seeds, and how they are printed."""

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation (n - 1 in the denominator) of ``count`` values.

    ``std`` is None for a single value (the spread of one seed is unknown) and ``mean`` is None for none.
    """

    mean: float | None
    std: float | None
    count: int

    def format(self, digits: int = 2) -> str:
        if self.mean is None:
            return "-"
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def mean_std(values: Iterable[float | None]) -> MeanStd:
    """Mean +- sample standard deviation of the finite values (None and NaN are left out)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return MeanStd(None, None, 0)
    mean = sum(finite) / len(finite)
    if len(finite) == 1:
        return MeanStd(mean, None, 1)
    variance = sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    return MeanStd(mean, math.sqrt(variance), len(finite))
