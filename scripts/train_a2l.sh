#!/usr/bin/env bash
# make train-a2l: synth (if missing) -> prepare (if stale) -> fit -> test (best checkpoint) -> report.
#   DATA=synthetic (default) | mead | crema_d | folder; ROOT=<raw dataset folder> for the real ones.
#   SEED (default 0), RUNS (default runs), WORKERS (default 2), A2L_ARGS (extra LightningCLI overrides,
#   e.g. A2L_ARGS="--trainer.max_epochs=3").
# Real datasets use the paper-scale override experiments/a2l_<DATA>.yaml (500 epochs: meant for a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-synthetic}
SEED=${SEED:-0}
RUNS=${RUNS:-runs}
EAPC=${EAPC:-.venv/bin/eapc}
PY=${PY:-.venv/bin/python}
export WANDB_MODE=${WANDB_MODE:-offline}
started=$SECONDS

source scripts/a2l_data.sh
prepare_a2l_data
prepared=$SECONDS

configs=(--config experiments/a2l.yaml --config "$DATA_CONFIG")
if [[ -n "$PAPER_CONFIG" ]]; then
  configs+=(--config "$PAPER_CONFIG")
fi
name=a2l
[[ "$DATA" != "synthetic" ]] && name="a2l_$DATA"
run_dir="$RUNS/$name/$(date +%Y%m%d-%H%M%S)-seed$SEED"
# shellcheck disable=SC2206
extra=(${A2L_ARGS:-})
common=("${configs[@]}" --data.init_args.cache_dir "$CACHE" --seed_everything "$SEED" "${extra[@]}")

echo "==> fit: $run_dir"
"$EAPC" fit "${common[@]}" --run.dir "$run_dir"
fitted=$SECONDS

best="$run_dir/checkpoints/best.ckpt"
if [[ ! -f "$best" ]]; then
  echo "error: fit finished without $best (see $run_dir)" >&2
  exit 1
fi
echo "==> test: $best"
"$EAPC" test "${common[@]}" --ckpt_path "$best"
tested=$SECONDS

echo "==> report"
"$PY" -m eapc_lightning.reporting run "$run_dir"
echo
echo "run folder: $run_dir"
echo "  config.yaml, versions.json, git.json, checkpoints/{best,last}.ckpt, csv/metrics.csv, curves.png,"
echo "  test/metrics.json, test/renders/*.mp4, report.md, report.csv, wandb/ (offline: wandb sync $run_dir/wandb/offline-run-*)"
echo "time: data $((prepared - started)) s, fit $((fitted - prepared)) s, test $((tested - fitted)) s, total $((SECONDS - started)) s"
