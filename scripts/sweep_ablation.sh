#!/usr/bin/env bash
# make sweep-ablation: the paper's Tables 2 and 3 (section 5.4) as mean ± std over seeds.
#   DATA=synthetic (default) | mead | crema_d | folder; ROOT=<raw dataset folder> for the real ones.
#   SEEDS (default "0 1 2"), JOBS (runs at once, default 2: each run uses one thread), OUT (tables folder, default tables),
#   SWEEP_CONFIG (budget override; default experiments/a2l_sweep_cpu.yaml on synthetic data and the
#   paper-scale experiments/a2l_<DATA>.yaml on real data), SWEEP_ARGS (extra `eapc sweep` arguments).
# Finished runs under runs/sweeps/ablation_<DATA>/ are reused, so an interrupted sweep resumes.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-synthetic}
SEEDS=${SEEDS:-0 1 2}
JOBS=${JOBS:-2}
OUT=${OUT:-tables}
EAPC=${EAPC:-.venv/bin/eapc}
export WANDB_MODE=${WANDB_MODE:-offline}
started=$SECONDS

source scripts/a2l_data.sh
prepare_a2l_data

budget=${SWEEP_CONFIG:-}
if [[ -z "$budget" ]]; then
  budget=${PAPER_CONFIG:-experiments/a2l_sweep_cpu.yaml}
fi
# shellcheck disable=SC2206
seeds=($SEEDS)
# shellcheck disable=SC2206
extra=(${SWEEP_ARGS:-})

echo "==> sweep: variants $(ls experiments/ablations/*.yaml | xargs -n1 basename | tr '\n' ' ')x seeds ${seeds[*]}"
status=0
"$EAPC" sweep --base experiments/a2l.yaml --data "$DATA_CONFIG" \
  --variants experiments/ablations/*.yaml --seeds "${seeds[@]}" \
  --config "$budget" --set "data.init_args.cache_dir=$CACHE" \
  --runs "runs/sweeps/ablation_$DATA" --out "$OUT" --jobs "$JOBS" "${extra[@]}" || status=$?
echo "tables: $OUT/ablation.md, $OUT/ablation.csv (total $((SECONDS - started)) s)"
if [[ $status -ne 0 ]]; then
  echo "some runs failed (listed at the end of $OUT/ablation.md); run again to retry them" >&2
fi
exit $status
