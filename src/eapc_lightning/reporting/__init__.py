"""Metric tables from run folders: one run against its held-still baseline, and ablations over seeds.

Run folders are those written by ``eapc fit`` / ``eapc test`` (eapc_lightning.commands.lightning); the
numbers come from ``<run>/test/metrics.json`` (eapc_lightning.lit.run_records.FinalMetrics). Tables are
written as markdown and CSV, atomically.
"""

from eapc_lightning.reporting.ablation import ABLATION_TABLES, ablation_tables
from eapc_lightning.reporting.runs import read_stage_metrics, test_metrics
from eapc_lightning.reporting.single_run import run_report
from eapc_lightning.reporting.stats import MeanStd, mean_std
from eapc_lightning.reporting.tables import Table, write_tables

__all__ = [
    "ABLATION_TABLES",
    "MeanStd",
    "Table",
    "ablation_tables",
    "mean_std",
    "read_stage_metrics",
    "run_report",
    "test_metrics",
    "write_tables",
]
