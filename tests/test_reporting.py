"""Metric tables from fake run folders with known numbers (expectations computed by hand)."""

import csv
import io
import json
import math

import pytest

from eapc_lightning.errors import InputError
from eapc_lightning.reporting import ablation_tables, mean_std, run_report, write_tables
from eapc_lightning.reporting.__main__ import main as reporting_main
from eapc_lightning.reporting.runs import collect_sweep


def _write_run(folder, metrics: dict) -> None:
    (folder / "test").mkdir(parents=True)
    record = {"stage": "test", "epoch": 0, "metrics": {f"test/{k}": v for k, v in metrics.items()}}
    (folder / "test" / "metrics.json").write_text(json.dumps(record))


def _landmarks(m_ld, m_lvd, f_ld, f_lvd, baseline_m_ld):
    return {
        "M-LD": m_ld,
        "M-LVD": m_lvd,
        "F-LD": f_ld,
        "F-LVD": f_lvd,
        "baseline_M-LD": baseline_m_ld,
        "baseline_M-LVD": 1.0,
        "baseline_F-LD": 4.0,
        "baseline_F-LVD": 1.0,
    }


@pytest.fixture
def sweep_runs(tmp_path):
    root = tmp_path / "runs"
    # prior: M-LD 2.0, 2.2, 2.4 -> mean 2.2, sample std sqrt((0.04 + 0 + 0.04) / 2) = 0.2
    for seed, value in enumerate((2.0, 2.2, 2.4)):
        _write_run(root / "prior" / f"seed{seed}", _landmarks(value, 0.5, 1.0, 0.4, 5.0 + seed))
    # no_prior: M-LD 3.0, 3.0, 3.3 -> mean 3.1, std sqrt((0.01 + 0.01 + 0.04) / 2) = 0.1732
    for seed, value in enumerate((3.0, 3.0, 3.3)):
        _write_run(root / "no_prior" / f"seed{seed}", _landmarks(value, 0.6, 1.2, 0.5, 5.0 + seed))
    # prior_attention: seed 2 never finished (no metrics file): M-LD 1.0, 1.5 -> 1.25 +- 0.3536
    for seed, value in enumerate((1.0, 1.5)):
        _write_run(root / "prior_attention" / f"seed{seed}", _landmarks(value, 0.4, 0.9, 0.3, 5.0 + seed))
    (root / "prior_attention" / "seed2").mkdir()
    _write_run(root / "wider" / "seed0", _landmarks(9.0, 9.0, 9.0, 9.0, 5.0))
    return root


def test_mean_std_by_hand():
    assert mean_std([2.0, 2.2, 2.4]).mean == pytest.approx(2.2)
    assert mean_std([2.0, 2.2, 2.4]).std == pytest.approx(0.2)
    assert mean_std([3.0, 3.0, 3.3]).std == pytest.approx(math.sqrt(0.03))
    single = mean_std([1.5, None, float("nan")])
    assert (single.mean, single.std, single.count) == (1.5, None, 1)
    assert single.format() == "1.50" and mean_std([]).format() == "-"
    assert mean_std([1.0, 1.5]).format() == "1.25 ± 0.35"


def test_collect_sweep_reads_only_finished_runs(sweep_runs):
    results = collect_sweep(sweep_runs)
    assert sorted(results) == ["no_prior", "prior", "prior_attention", "wider"]
    assert sorted(results["prior_attention"]) == [0, 1]
    assert results["prior"][1]["M-LD"] == 2.2 and results["prior"][1]["baseline_M-LD"] == 6.0


def test_ablation_tables_layout_and_values(sweep_runs, tmp_path):
    tables = ablation_tables(collect_sweep(sweep_runs))
    assert [t.title.split(":")[0] for t in tables] == ["Table 2", "Table 3", "Other variants"]
    table2 = tables[0].markdown()
    assert "| w/o Audio i-1 [no_prior] | 3.10 ± 0.17 | 0.60 ± 0.00 | 1.20 ± 0.00 | 0.50 ± 0.00 |" in table2
    assert "| w Audio i-1 [prior] | 2.20 ± 0.20 | 0.50 ± 0.00 | 1.00 ± 0.00 | 0.40 ± 0.00 |" in table2
    # baseline per seed: 5, 6, 7 (identical across variants) -> 6.00 +- 1.00
    assert "| Reference held still | 6.00 ± 1.00 | 1.00 ± 0.00 | 4.00 ± 0.00 | 1.00 ± 0.00 |" in table2
    table3 = tables[1].markdown()
    assert "| w/o attention [prior] | 2.20 ± 0.20 |" in table3
    assert "| w attention [prior_attention] | 1.25 ± 0.35 |" in table3
    assert "| [wider] | 9.00 | 9.00 | 9.00 | 9.00 |" in tables[2].markdown()  # one seed: no spread

    write_tables(tables, tmp_path / "tables" / "ablation.md", tmp_path / "tables" / "ablation.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "tables" / "ablation.csv").read_text())))
    attention = next(r for r in rows if r["method"] == "w attention [prior_attention]")
    assert float(attention["M-LD_mean"]) == pytest.approx(1.25)
    assert float(attention["M-LD_std"]) == pytest.approx(math.sqrt(0.125))
    assert attention["M-LD_n"] == "2"
    wider = next(r for r in rows if r["method"] == "[wider]")
    assert wider["M-LD_std"] == "" and wider["M-LD_n"] == "1"
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["ablation.csv", "ablation.md"]


def test_missing_variant_leaves_row_empty(tmp_path):
    _write_run(tmp_path / "runs" / "prior" / "seed0", _landmarks(2.0, 0.5, 1.0, 0.4, 5.0))
    markdown = ablation_tables(collect_sweep(tmp_path / "runs"))[0].markdown()
    assert "| w/o Audio i-1 [no_prior] | - | - | - | - |" in markdown


def test_single_run_report_with_baseline_and_improvement(tmp_path):
    run = tmp_path / "run"
    metrics = {**_landmarks(2.0, 0.5, 3.0, 0.8, 4.0), "emotion_acc": 0.75, "loss": 0.1}
    _write_run(run, metrics)
    markdown = run_report(run)
    assert "| EAPC (this run) | 2.00 | 0.50 | 3.00 | 0.80 | 0.75 |" in markdown
    assert "| Reference held still | 4.00 | 1.00 | 4.00 | 1.00 | - |" in markdown
    # (4 - 2) / 4 = 50%, (1 - 0.5) / 1 = 50%, (4 - 3) / 4 = 25%, (1 - 0.8) / 1 = 20%
    assert "| Improvement over held still | 50.0% | 50.0% | 25.0% | 20.0% | - |" in markdown
    assert (run / "report.md").read_text().count("EAPC (this run)") == 1
    rows = list(csv.DictReader(io.StringIO((run / "report.csv").read_text())))
    assert float(rows[0]["Emotion acc._mean"]) == 0.75 and rows[2]["M-LD"] == "50.0%"


def test_missing_metrics_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(InputError, match="no test metrics"):
        run_report(tmp_path / "nowhere")
    assert reporting_main(["run", str(tmp_path / "nowhere")]) == 1
    assert "metrics.json" in capsys.readouterr().err


def test_reporting_command_writes_ablation_tables(sweep_runs, tmp_path, capsys):
    assert reporting_main(["ablation", str(sweep_runs), "--out", str(tmp_path / "out")]) == 0
    assert "w attention [prior_attention]" in (tmp_path / "out" / "ablation.md").read_text()
    assert "Table 2" in capsys.readouterr().out
