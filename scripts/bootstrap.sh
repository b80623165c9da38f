#!/usr/bin/env bash
# Create or update the project's Python environment, .venv, from the committed uv.lock.
#
# `uv sync --frozen` installs exactly the locked set (with the dev and fid extras, which the tests use)
# and this checkout as an editable package, whose `eapc` command comes from [project.scripts].
# uv unpacks every wheel once into its global cache (~/.cache/uv, or $UV_CACHE_DIR) and hard-links
# the files into each environment, so a second clone on the same machine sets up in seconds.
# The interpreter: $PYTHON when set, else python3.11 (the verified version) when on PATH, else any
# Python that pyproject.toml's requires-python accepts. It is passed to uv by name, not by path:
# uv rebuilds a .venv whose interpreter is not the exact path it was asked for (a pyenv shim, say).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-}
if [ -z "$python" ] && command -v python3.11 >/dev/null 2>&1; then
  python=python3.11
fi
# a .venv made by the earlier bootstrap reads packages from a shared folder through .pth files;
# uv would install beside it, so it is replaced
if compgen -G ".venv/lib/python*/site-packages/_eapc_shared_venv.pth" >/dev/null; then
  echo "[bootstrap] replacing the .venv of the earlier bootstrap"
  rm -rf .venv
fi
bash scripts/uv.sh sync --frozen --extra dev --extra fid --extra eval ${python:+--python "$python"}
