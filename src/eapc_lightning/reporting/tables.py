"""A small table model rendered as markdown and as CSV rows, and atomic writing of both."""

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from eapc_lightning.fileio import atomic_write_bytes
from eapc_lightning.reporting.stats import MeanStd


@dataclass
class Table:
    """Rows of cells under named columns; a cell is a MeanStd, a plain string or None (empty)."""

    title: str
    columns: list[str]
    rows: list[tuple[str, list]] = field(default_factory=list)
    note: str = ""

    def add(self, label: str, cells: list) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row {label!r} has {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append((label, cells))

    def markdown(self, digits: int = 2) -> str:
        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| Method | " + " | ".join(self.columns) + " |")
        lines.append("| --- | " + " | ".join("---:" for _ in self.columns) + " |")
        for label, cells in self.rows:
            lines.append(f"| {label} | " + " | ".join(_text(cell, digits) for cell in cells) + " |")
        return "\n".join(lines) + "\n"

    def csv_rows(self) -> list[dict]:
        """One dict per row: table, method, then <column>_mean, <column>_std, <column>_n (or <column>)."""
        records = []
        for label, cells in self.rows:
            record = {"table": self.title, "method": label}
            for column, cell in zip(self.columns, cells):
                if isinstance(cell, MeanStd):
                    record[f"{column}_mean"] = cell.mean
                    record[f"{column}_std"] = cell.std
                    record[f"{column}_n"] = cell.count
                else:
                    record[column] = cell
            records.append(record)
        return records


def _text(cell, digits: int) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, MeanStd):
        return cell.format(digits)
    return str(cell)


def tables_markdown(tables: list[Table], heading: str = "", footer: str = "", digits: int = 2) -> str:
    parts = [f"# {heading}\n"] if heading else []
    parts += [table.markdown(digits) for table in tables]
    if footer:
        parts.append(footer.rstrip() + "\n")
    return "\n".join(parts)


def tables_csv(tables: list[Table]) -> str:
    records = [record for table in tables for record in table.csv_rows()]
    fieldnames: list[str] = []
    for record in records:
        fieldnames += [key for key in record if key not in fieldnames]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({key: ("" if value is None else value) for key, value in record.items()})
    return buffer.getvalue()


def write_tables(
    tables: list[Table], markdown_path: str | Path, csv_path: str | Path, heading: str = "", footer: str = ""
) -> None:
    """Write the tables as one markdown file and one CSV file (each atomically)."""
    atomic_write_bytes(markdown_path, tables_markdown(tables, heading, footer).encode())
    atomic_write_bytes(csv_path, tables_csv(tables).encode())
