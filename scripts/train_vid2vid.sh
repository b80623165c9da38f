#!/usr/bin/env bash
# Landmark-to-video training (few-shot vid2vid): raw media -> cache -> fit -> test.
#
#   DATA=synthetic (default): generate the embedded synthetic MEAD-layout set if missing
#                             (eapc synth --out data/raw/synthetic), cache it in data/cache/synthetic
#   DATA=mead|crema_d|folder: ROOT=<raw dataset folder> is required; cache in data/cache/$DATA
#   CONFIG=<experiment yaml>  default experiments/vid2vid.yaml (CPU-sized); experiments/vid2vid_mead.yaml
#                             is the paper-scale GPU setting
#
# `eapc prepare` skips clips that are already up to date, so re-running is cheap. The run folder is
# runs/vid2vid/<timestamp>/: checkpoints, csv + W&B logs, grids/, and test/ (metrics.json and
# samples/test_sample.mp4, reference | generated | real of a held-out test clip).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-synthetic}
ROOT=${ROOT:-}
CONFIG=${CONFIG:-experiments/vid2vid.yaml}
EAPC=${EAPC:-.venv/bin/eapc}
PY=${PY:-.venv/bin/python}
export WANDB_MODE=${WANDB_MODE:-offline}
CACHE=data/cache/$DATA

case "$DATA" in
  synthetic)
    RAW=${ROOT:-data/raw/synthetic}
    DATASET=mead
    if [ ! -d "$RAW" ]; then
      echo "== synthesising the embedded dataset into $RAW"
      "$EAPC" synth --out "$RAW"
    fi
    ;;
  mead | crema_d | folder)
    if [ -z "$ROOT" ]; then
      echo "DATA=$DATA needs ROOT=<folder of the raw dataset>" >&2
      exit 2
    fi
    RAW=$ROOT
    DATASET=$DATA
    ;;
  *)
    echo "unknown DATA=$DATA (synthetic, mead, crema_d or folder)" >&2
    exit 2
    ;;
esac

echo "== preparing $RAW -> $CACHE"
"$EAPC" prepare --dataset "$DATASET" --root "$RAW" --out "$CACHE"

# One intra-op thread per process for training/testing unless set: on a busy 2-core machine two OpenMP
# threads per process made a CPU training step ~16x slower than one (benchmarks/README.md).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUN_DIR=runs/vid2vid/$(date +%Y%m%d-%H%M%S)
echo "== training ($CONFIG) in $RUN_DIR"
"$EAPC" fit --config "$CONFIG" --data.init_args.cache_dir "$CACHE" --run.dir "$RUN_DIR"

CKPT=$RUN_DIR/checkpoints/best.ckpt
[ -f "$CKPT" ] || CKPT=$RUN_DIR/checkpoints/last.ckpt
echo "== testing $CKPT"
"$EAPC" test --config "$CONFIG" --data.init_args.cache_dir "$CACHE" --ckpt_path "$CKPT"

"$PY" - "$RUN_DIR/test/metrics.json" <<'PYEOF'
import json
import sys

metrics = json.load(open(sys.argv[1]))["metrics"]
psnr, copy = metrics.get("test/psnr"), metrics.get("test/psnr_copy_reference")
print(f"test PSNR {psnr:.2f} dB vs copying the reference {copy:.2f} dB; SSIM {metrics.get('test/ssim'):.3f}; "
      f"FID {metrics.get('test/fid', 'not computed')}")
print("generated frames beat the copied reference" if psnr > copy else "generated frames do NOT beat the copied reference")
PYEOF
echo "== sample video: $RUN_DIR/test/samples/test_sample.mp4"
