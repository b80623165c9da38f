"""The paper's Table 1 layout, with its published rows quoted beside ours.

Columns: M-LD, M-LVD, F-LD, F-LVD (landmark quality, lower is better) and PSNR, SSIM (higher is better),
FID (lower is better). The published rows are copied from the EAPC paper's Table 1 (MEAD and CREMA-D
blocks) and always carry ``source = "quoted: EAPC paper, Table 1"``; our rows carry the run they come from.
"""

import csv
import io
import math
from dataclasses import dataclass, field

from eapc_lightning.fileio import atomic_write_bytes

METRIC_COLUMNS = ("M-LD", "M-LVD", "F-LD", "F-LVD", "PSNR", "SSIM", "FID")
LOWER_IS_BETTER = {"M-LD", "M-LVD", "F-LD", "F-LVD", "FID"}
QUOTED_SOURCE = "quoted: EAPC paper, Table 1"

# Values from the EAPC paper's Table 1 (section 5.2), by dataset; method names as printed there.
PAPER_TABLE1: dict[str, list[tuple[str, tuple[float, ...]]]] = {
    "MEAD": [
        ("MEAD (Wang et al., 2020)", (2.52, 2.28, 3.16, 2.01, 28.61, 0.68, 22.52)),
        ("EVP (Ji et al., 2021)", (2.45, 1.78, 3.01, 1.56, 29.53, 0.71, 7.99)),
        ("(Sinha et al., 2022)", (2.18, 0.77, 1.24, 0.50, 30.06, 0.77, 35.41)),
        ("EAPC", (2.01, 1.25, 1.85, 1.24, 32.03, 0.79, 22.67)),
    ],
    "CREMA-D": [
        ("(Vougioukas et al., 2019)", (2.90, 0.42, 2.80, 0.34, 23.57, 0.70, 71.12)),
        ("(Eskimez et al., 2021)", (6.14, 0.49, 5.89, 0.40, 30.91, 0.85, 218.59)),
        ("(Sinha et al., 2022)", (2.41, 0.69, 1.35, 0.46, 31.07, 0.90, 68.45)),
        ("EAPC", (1.45, 1.16, 1.33, 1.11, 33.49, 0.855, 17.31)),
    ],
}


@dataclass
class TableRow:
    dataset: str
    method: str
    values: dict[str, float | None]
    source: str
    notes: str = ""
    quoted: bool = field(default=False)
    intervals: dict[str, tuple[float, float] | None] = field(default_factory=dict)  # 95% bootstrap CI


def quoted_rows(dataset: str | None = None) -> list[TableRow]:
    """The paper's published rows (all datasets, or one of ``PAPER_TABLE1``'s keys)."""
    rows = []
    for name, entries in PAPER_TABLE1.items():
        if dataset is not None and name != dataset:
            continue
        for method, values in entries:
            rows.append(TableRow(name, method, dict(zip(METRIC_COLUMNS, values)), QUOTED_SOURCE, quoted=True))
    return rows


def format_value(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"


def _cell(row: TableRow, name: str) -> str:
    interval = row.intervals.get(name)
    text = format_value(row.values.get(name))
    return text if interval is None else f"{text} [{format_value(interval[0])}, {format_value(interval[1])}]"


def table1_markdown(ours: list[TableRow], quoted: list[TableRow], protocol_header: str = "") -> str:
    """Markdown in the paper's layout: the ``protocol_header``, our rows (value and 95% interval over
    clips), then the quoted rows of the paper's datasets."""
    header = "| Dataset | Method | " + " | ".join(
        f"{name} {'↓' if name in LOWER_IS_BETTER else '↑'}" for name in METRIC_COLUMNS
    )
    lines = [
        "# Table 1: landmark quality and texture quality",
        "",
        "Rows marked *quoted* are copied from the EAPC paper's Table 1; they were measured on the real",
        "MEAD / CREMA-D test sets, not by this code, under a protocol the paper does not fully state. Our",
        "rows are measured here (see the notes column), each value with its 95% bootstrap interval over clips.",
        "",
        *([protocol_header, ""] if protocol_header else []),
        header + " | Source |",
        "|" + "---|" * (len(METRIC_COLUMNS) + 3),
    ]
    for row in ours + quoted:
        method = f"{row.method} *(quoted)*" if row.quoted else f"**{row.method}**"
        cells = " | ".join(_cell(row, name) for name in METRIC_COLUMNS)
        source = row.source + (f"; {row.notes}" if row.notes else "")
        lines.append(f"| {row.dataset} | {method} | {cells} | {source} |")
    return "\n".join(lines) + "\n"


def table1_csv(rows: list[TableRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    bounds = [f"{name}_ci_{side}" for name in METRIC_COLUMNS for side in ("low", "high")]
    writer.writerow(["dataset", "method", *METRIC_COLUMNS, *bounds, "quoted", "source", "notes"])
    for row in rows:
        values = [
            "" if row.values.get(name) is None else f"{row.values[name]:.6g}" for name in METRIC_COLUMNS
        ]
        intervals = []
        for name in METRIC_COLUMNS:
            interval = row.intervals.get(name)
            intervals += ["", ""] if interval is None else [f"{interval[0]:.6g}", f"{interval[1]:.6g}"]
        writer.writerow(
            [row.dataset, row.method, *values, *intervals, int(row.quoted), row.source, row.notes]
        )
    return buffer.getvalue()


def write_table1(
    folder, ours: list[TableRow], quoted: list[TableRow], appendix: str = "", protocol_header: str = ""
) -> tuple:
    """Write ``table1.md`` (then ``appendix``, markdown) and ``table1.csv`` into ``folder`` atomically;
    return their paths."""
    from pathlib import Path

    folder = Path(folder)
    markdown, table = folder / "table1.md", folder / "table1.csv"
    text = table1_markdown(ours, quoted, protocol_header) + (f"\n{appendix}" if appendix else "")
    atomic_write_bytes(markdown, text.encode())
    atomic_write_bytes(table, table1_csv(ours + quoted).encode())
    return markdown, table
