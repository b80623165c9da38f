"""The ablation tables of the paper's section 5.4 from sweep results, as mean +- std over seeds.

Variants are named by their experiment file (``experiments/ablations/<variant>.yaml``):

- ``no_prior``: without the eq. 4 prior frame, without attention (Table 2 "w/o Audio i-1");
- ``prior``: with the prior frame, without attention (Table 2 "w Audio i-1" = Table 3 "w/o attention");
- ``prior_attention``: with the prior frame and the eq. 6-7 attention (Table 3 "w attention").

Each table also holds a row for the reference landmarks held still (the ``baseline_*`` test metrics),
averaged first over the variants of a seed (they share the test data) and then over seeds. Variants
outside this layout are listed in an extra table.
"""

from eapc_lightning.reporting.single_run import LANDMARK_METRICS
from eapc_lightning.reporting.stats import mean_std
from eapc_lightning.reporting.tables import Table

BASELINE_LABEL = "Reference held still"

# (title, ((row label, variant), ...)) in the order of the paper's Tables 2 and 3.
ABLATION_TABLES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Table 2: previous audio frame (eq. 4), both without attention",
        (("w/o Audio i-1", "no_prior"), ("w Audio i-1", "prior")),
    ),
    (
        "Table 3: attention (eqs. 6-7), both with the previous frame",
        (("w/o attention", "prior"), ("w attention", "prior_attention")),
    ),
)

Results = dict[str, dict[int, dict[str, float | None]]]


def _variant_cells(runs: dict[int, dict]) -> list:
    return [mean_std(metrics.get(name) for metrics in runs.values()) for name in LANDMARK_METRICS]


def _baseline_cells(results: Results) -> list:
    per_seed: dict[int, list[dict]] = {}
    for runs in results.values():
        for seed, metrics in runs.items():
            per_seed.setdefault(seed, []).append(metrics)
    cells = []
    for name in LANDMARK_METRICS:
        seed_means = []
        for seed_runs in per_seed.values():
            value = mean_std(metrics.get(f"baseline_{name}") for metrics in seed_runs).mean
            seed_means.append(value)
        cells.append(mean_std(seed_means))
    return cells


def ablation_tables(results: Results) -> list[Table]:
    """Tables 2 and 3 (plus "Other variants" when present) from {variant: {seed: test metrics}}."""
    note = "Mean ± sample std over seeds; landmark errors in pixels of the 256x256 aligned face frame."
    baseline = _baseline_cells(results)
    tables = []
    used = set()
    for title, rows in ABLATION_TABLES:
        table = Table(title=title, columns=list(LANDMARK_METRICS), note=note)
        for label, variant in rows:
            used.add(variant)
            table.add(f"{label} [{variant}]", _variant_cells(results.get(variant, {})))
        table.add(BASELINE_LABEL, baseline)
        tables.append(table)
    others = sorted(set(results) - used)
    if others:
        table = Table(title="Other variants", columns=list(LANDMARK_METRICS), note=note)
        for variant in others:
            table.add(f"[{variant}]", _variant_cells(results[variant]))
        tables.append(table)
    return tables
