"""Reading the final metrics of run folders (``<run>/<stage>/metrics.json``, see lit.run_records.FinalMetrics)."""

import json
import re
from pathlib import Path

from eapc_lightning.errors import InputError

METRICS_FILENAME = "metrics.json"
SEED_FOLDER = re.compile(r"^seed(\d+)$")


def read_stage_metrics(run_dir: str | Path, stage: str = "test") -> dict[str, float | None]:
    """All metrics of ``<run_dir>/<stage>/metrics.json`` (the run folder itself for ``stage="fit"``)."""
    folder = Path(run_dir) if stage == "fit" else Path(run_dir) / stage
    path = folder / METRICS_FILENAME
    if not path.is_file():
        raise InputError(path, f"no {stage} metrics; run `eapc {stage}` for this run folder first")
    try:
        record = json.loads(path.read_text())
        return dict(record["metrics"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise InputError(path, f"not a metrics file written by FinalMetrics ({error})") from error


def test_metrics(run_dir: str | Path) -> dict[str, float | None]:
    """Test metrics of a run with the ``test/`` prefix removed (``M-LD``, ``baseline_M-LD``, ...)."""
    metrics = read_stage_metrics(run_dir, "test")
    return {key.removeprefix("test/"): value for key, value in metrics.items() if key.startswith("test/")}


def collect_sweep(runs_root: str | Path) -> dict[str, dict[int, dict[str, float | None]]]:
    """{variant: {seed: test metrics}} of every finished run under ``<runs_root>/<variant>/seed<k>/``."""
    results: dict[str, dict[int, dict]] = {}
    root = Path(runs_root)
    if not root.is_dir():
        return results
    for variant_dir in sorted(path for path in root.iterdir() if path.is_dir()):
        for run_dir in sorted(variant_dir.iterdir()):
            match = SEED_FOLDER.match(run_dir.name)
            if match and (run_dir / "test" / METRICS_FILENAME).is_file():
                results.setdefault(variant_dir.name, {})[int(match.group(1))] = test_metrics(run_dir)
    return results
