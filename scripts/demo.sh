#!/usr/bin/env bash
# make demo: speech + a face photo -> a talking-face mp4 with sound.
# When runs/ holds no trained models, tiny ones are trained first on the embedded synthetic set
# (a few minutes each on 2 CPU cores). Inputs need nothing from outside this checkout:
# the face is scikit-image's bundled astronaut photo, the speech a synthetic sentence.
set -euo pipefail
cd "$(dirname "$0")/.."
EAPC=${EAPC:-.venv/bin/eapc}
PY=${PY:-.venv/bin/python}
WORK=${DEMO_DIR:-data/demo}
RUNS=${RUNS:-runs}
mkdir -p "$WORK"

has_checkpoint() {  # has_checkpoint a2l|vid2vid
  "$PY" -c "import sys; from eapc_lightning.inference.checkpoints import find_checkpoint
try: find_checkpoint('$1', '$RUNS')
except FileNotFoundError: sys.exit(1)"
}

prepare_data() {
  if [ ! -f "$WORK/cache/summary.json" ]; then
    "$EAPC" synth --out "$WORK/synthetic" --preset small --size 128 --workers 2
    "$EAPC" prepare --dataset mead --root "$WORK/synthetic" --out "$WORK/cache" --crop-size 128 --workers 2
  fi
}

if ! has_checkpoint a2l; then
  echo "== no audio-to-landmark checkpoint in $RUNS/: training a tiny one"
  prepare_data
  "$EAPC" fit --config experiments/a2l.yaml --config data_modules/synthetic.yaml \
    --config experiments/demo_a2l.yaml --data.init_args.cache_dir "$WORK/cache" --run.root "$RUNS"
fi
if ! has_checkpoint vid2vid; then
  echo "== no landmark-to-video checkpoint in $RUNS/: training a tiny one"
  prepare_data
  "$EAPC" fit --config experiments/vid2vid.yaml --config experiments/demo_vid2vid.yaml \
    --data.init_args.cache_dir "$WORK/cache" --run.root "$RUNS"
fi

# Demo inputs: the astronaut photo and a synthetic sentence (6 s) from a fresh synthetic speaker.
"$PY" - "$WORK" <<'PYTHON'
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from eapc_lightning.data.synthetic import generate_dataset

work = Path(sys.argv[1])
cv2.imwrite(str(work / "face.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
records = generate_dataset(work / "speech", preset="tiny", seed=7, speakers=1, emotions=["happy"], seconds=6.0, size=128)
audio = Path(records[0]["audio"])
(work / "speech_path.txt").write_text(str(audio))
PYTHON

"$EAPC" generate --audio "$(cat "$WORK/speech_path.txt")" --face "$WORK/face.png" --runs "$RUNS" --out "$WORK/demo.mp4"
echo "demo video: $(realpath "$WORK/demo.mp4")"
