"""The report of one audio-to-landmark run: its test metrics beside the held-still baseline.

The baseline (``test/baseline_*``, logged by the A2L module) predicts the reference landmarks for every
frame, i.e. a face that never moves; the relative improvement is ``(baseline - model) / baseline``.
"""

from pathlib import Path

from eapc_lightning.reporting.runs import test_metrics
from eapc_lightning.reporting.stats import mean_std
from eapc_lightning.reporting.tables import Table, tables_markdown, write_tables

LANDMARK_METRICS = ("M-LD", "M-LVD", "F-LD", "F-LVD")
EMOTION_METRIC = "emotion_acc"
REPORT_COLUMNS = [*LANDMARK_METRICS, "Emotion acc."]


def relative_improvement(model: float | None, baseline: float | None) -> float | None:
    """(baseline - model) / baseline: 0.3 means 30% below the baseline; None when undefined."""
    if model is None or baseline is None or baseline == 0:
        return None
    return (baseline - model) / baseline


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{100.0 * value:.1f}%"


def run_table(metrics: dict[str, float | None], title: str = "Test metrics") -> Table:
    """Rows: the model, the held-still baseline, the relative improvement (landmark errors in pixels)."""
    table = Table(
        title=title,
        columns=REPORT_COLUMNS,
        note="Landmark errors in pixels of the 256x256 aligned face frame (lower is better); "
        "emotion accuracy from audio (chance 0.125).",
    )
    model = [mean_std([metrics.get(name)]) for name in LANDMARK_METRICS]
    table.add("EAPC (this run)", [*model, mean_std([metrics.get(EMOTION_METRIC)])])
    baseline = [mean_std([metrics.get(f"baseline_{name}")]) for name in LANDMARK_METRICS]
    table.add("Reference held still", [*baseline, None])
    gains = [
        relative_improvement(metrics.get(name), metrics.get(f"baseline_{name}")) for name in LANDMARK_METRICS
    ]
    table.add("Improvement over held still", [*(_percent(gain) for gain in gains), None])
    return table


def run_report(run_dir: str | Path, write: bool = True) -> str:
    """Markdown report of one run's test metrics; also written to ``<run>/report.md`` and ``report.csv``."""
    run_dir = Path(run_dir)
    table = run_table(test_metrics(run_dir), title=f"Test metrics of {run_dir}")
    if write:
        write_tables([table], run_dir / "report.md", run_dir / "report.csv")
    return tables_markdown([table])
