"""``eapc report``: several run folders gathered into one markdown report with pictures.

For each folder (an ``eapc fit`` run, its ``test/`` subfolder, or an ``eapc evaluate`` output folder):
the model class from ``config.yaml``; the final metrics of ``metrics.json`` (fit) and ``test/metrics.json``;
training curves plotted from the CSV logger's ``csv/metrics.csv``; ``table1.md`` when present; sample
frames: PNG grids (``grids/``, ``fig4_*.png``) and the middle frame of rendered mp4s (``renders/``,
``samples/``). Pictures are copied into ``<report>_assets/`` beside the report so it stays readable
after the runs are deleted. A folder that is missing or unreadable gets a line saying so; the others
are still reported. All files are written atomically.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import yaml

from eapc_lightning.fileio import atomic_write_bytes, write_png
from eapc_lightning.lit.run_records import plot_curves, read_metrics_csv

MAX_PICTURES = 4


@dataclass
class RunSection:
    run_dir: Path
    lines: list[str] = field(default_factory=list)
    pictures: int = 0
    ok: bool = True


def _slug(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(path).strip("/"))[-80:]


def middle_frame(video: Path) -> np.ndarray:
    """The middle decoded frame of a video as RGB uint8."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = stream.frames or 0
        target = max(frames // 2, 0)
        for index, frame in enumerate(container.decode(stream)):
            if index >= target:
                return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{video}: no video frames")


def _metrics_table(metrics: dict, title: str) -> list[str]:
    numbers = {k: v for k, v in sorted(metrics.items()) if isinstance(v, int | float)}
    if not numbers:
        return []
    lines = [f"**{title}**", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value:.4g} |" for name, value in numbers.items()]
    return lines + [""]


def _read_metrics(path: Path) -> dict:
    record = json.loads(path.read_text())
    return dict(record.get("metrics", record))


def _section(run_dir: Path, assets: Path, report_dir: Path) -> RunSection:
    section = RunSection(run_dir)
    lines = section.lines
    lines += [f"## {run_dir}", ""]
    if not run_dir.is_dir():
        section.ok = False
        lines += [f"*{run_dir}: not a folder; skipped.*", ""]
        return section
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        config = yaml.safe_load(config_path.read_text()) or {}
        model = (config.get("model") or {}).get("class_path", "?") if isinstance(config, dict) else "?"
        lines += [f"Model: `{model}`", ""]
    for title, path in (
        ("Final fit metrics", run_dir / "metrics.json"),
        ("Test metrics", run_dir / "test" / "metrics.json"),
    ):
        if path.is_file():
            try:
                lines += _metrics_table(_read_metrics(path), title)
            except (json.JSONDecodeError, AttributeError, TypeError) as error:
                lines += [f"*{path}: unreadable metrics ({error})*", ""]
    for csv_path in (run_dir / "csv" / "metrics.csv", run_dir / "test" / "csv" / "metrics.csv"):
        if not csv_path.is_file():
            continue
        series = read_metrics_csv(csv_path)
        curves = {k: v for k, v in series.items() if len(v) > 1}
        if curves:
            target = assets / f"{_slug(csv_path.parent)}_curves.png"
            plot_curves(curves, target)
            lines += [f"![curves of {csv_path}]({target.relative_to(report_dir)})", ""]
    table = run_dir / "table1.md"
    if table.is_file():
        body = table.read_text().splitlines()
        lines += ["### Table 1", ""] + [line for line in body if not line.startswith("# ")] + [""]
    pictures = sorted(run_dir.glob("fig4_*.png")) + sorted(run_dir.glob("grids/*.png"))
    videos = sorted(run_dir.glob("renders/*.mp4")) + sorted(run_dir.glob("samples/*.mp4"))
    for picture in pictures[:MAX_PICTURES]:
        target = assets / f"{_slug(picture)}"
        atomic_write_bytes(target, picture.read_bytes())
        lines += [f"![{picture.name}]({target.relative_to(report_dir)})", ""]
        section.pictures += 1
    for video in videos[: max(MAX_PICTURES - section.pictures, 1)]:
        try:
            frame = middle_frame(video)
        except (av.FFmpegError, ValueError, OSError, IndexError) as error:
            lines += [f"*{video}: no frame could be read ({error})*", ""]
            continue
        target = assets / f"{_slug(video)}.png"
        write_png(target, frame)
        lines += [f"![middle frame of {video.name}]({target.relative_to(report_dir)})", ""]
        section.pictures += 1
    if len(lines) <= 2:
        lines += ["*No metrics, curves, tables or samples found in this folder.*", ""]
    return section


def write_report(run_dirs: list[Path], out: Path) -> tuple[Path, list[RunSection]]:
    """Write the markdown report to ``out`` (pictures in ``<out stem>_assets/``); return it and the sections."""
    out = Path(out)
    report_dir = out.parent.resolve()
    assets = report_dir / f"{out.stem}_assets"
    assets.mkdir(parents=True, exist_ok=True)
    sections = [_section(Path(run_dir).resolve(), assets, report_dir) for run_dir in run_dirs]
    lines = ["# EAPC runs report", "", f"{len(sections)} run folder(s).", ""]
    for section in sections:
        lines += section.lines
    atomic_write_bytes(out, ("\n".join(lines) + "\n").encode())
    return out, sections
