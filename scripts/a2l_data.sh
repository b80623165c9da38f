# Sourced by train_a2l.sh and sweep_ablation.sh: make sure the clip cache of $DATA exists and is current.
# In:  DATA (synthetic | mead | crema_d | folder), ROOT (raw dataset folder; not for synthetic), EAPC,
#      WORKERS, SYNTH_PRESET (synthetic only; default "default").
# Out: CACHE (the cache folder), DATA_CONFIG (data_modules/<file>.yaml), PAPER_CONFIG (paper-scale
#      experiment override for real datasets, empty otherwise).

prepare_a2l_data() {
  WORKERS=${WORKERS:-2}
  PAPER_CONFIG=""
  case "$DATA" in
    synthetic)
      local preset=${SYNTH_PRESET:-default}
      local raw=data/raw/synthetic
      CACHE=data/cache/synthetic
      if [[ "$preset" != "default" ]]; then
        raw="data/raw/synthetic_$preset"
        CACHE="data/cache/synthetic_$preset"
      fi
      DATA_CONFIG=data_modules/synthetic.yaml
      if [[ ! -f "$raw/synth_info.json" ]]; then
        echo "==> synthetic dataset ($preset preset) missing: generating it into $raw"
        "$EAPC" synth --out "$raw" --preset "$preset" --seed 0 --workers "$WORKERS"
      else
        echo "==> synthetic dataset found in $raw"
      fi
      echo "==> preparing $raw -> $CACHE (up-to-date clips are skipped)"
      "$EAPC" prepare --dataset mead --root "$raw" --out "$CACHE" --workers "$WORKERS"
      ;;
    mead | crema_d | folder)
      if [[ -z "${ROOT:-}" ]]; then
        echo "error: DATA=$DATA needs ROOT=<folder of the raw $DATA dataset>, e.g. make train-a2l DATA=$DATA ROOT=/data/$DATA" >&2
        return 2
      fi
      if [[ ! -d "$ROOT" ]]; then
        echo "error: ROOT=$ROOT is not a folder (the raw $DATA dataset is expected there)" >&2
        return 2
      fi
      CACHE=data/cache/$DATA
      DATA_CONFIG=data_modules/$DATA.yaml
      if [[ "$DATA" != "folder" ]]; then
        PAPER_CONFIG=experiments/a2l_$DATA.yaml
      fi
      echo "==> preparing $ROOT -> $CACHE (up-to-date clips are skipped)"
      "$EAPC" prepare --dataset "$DATA" --root "$ROOT" --out "$CACHE" --workers "$WORKERS"
      ;;
    *)
      echo "error: DATA=$DATA is not one of synthetic, mead, crema_d, folder" >&2
      return 2
      ;;
  esac
}
