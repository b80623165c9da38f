#!/usr/bin/env bash
# Run uv (https://docs.astral.sh/uv/) from the project root, installing it first when it is missing:
#   bash scripts/uv.sh lock                        # re-resolve uv.lock after changing pyproject.toml
#   bash scripts/uv.sh lock --upgrade-package X    # move one pinned package to its newest allowed release
# uv is looked up on PATH, then in Python's user scripts folder, where `pip install --user` puts it.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=$(command -v uv || true)
if [ -z "$uv" ]; then
  uv="$(python3 -m site --user-base)/bin/uv"
  if [ ! -x "$uv" ]; then
    echo "[uv] uv not found; installing it with: python3 -m pip install --user uv" >&2
    log=$(mktemp)
    if ! python3 -m pip install --quiet --user uv >"$log" 2>&1; then
      # pip's output is shown only when it fails (some index configurations are chatty)
      cat "$log" >&2
      rm -f "$log"
      echo "[uv] could not install uv; install it by any other means (https://docs.astral.sh/uv/) and retry" >&2
      exit 1
    fi
    rm -f "$log"
  fi
fi
exec "$uv" "$@"
