#!/usr/bin/env bash
# Create (or reuse) the virtual environment at .venv and install everything the repo needs.
# torch goes in first: resolving it through requirements.txt would pull a multi-GB CUDA build on
# machines that have no GPU. Set TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) to pick
# a wheel index for torch; set VENV to use another environment directory.
# Usage: source scripts/setup.sh   (or bash scripts/setup.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment at $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  echo "[setup] installing torch==$TORCH_VERSION"
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${PIP[@]}" "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
  else
    "${PIP[@]}" "torch==$TORCH_VERSION"
  fi
fi

# Reinstall the rest only when a requirements file changed since the last successful install.
STAMP="$VENV/.requirements.sha256"
WANT="$(cd "$ROOT" && shopt -s nullglob && cat requirements.txt ./*/requirements.txt badam/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "[setup] installing requirements.txt"
  (cd "$ROOT" && "${PIP[@]}" -r requirements.txt "torch==$TORCH_VERSION")
  # roberta-superglue uses jiant 2.2.0, whose 2021 pins (transformers 4.5, numpy 1.18) cannot install here.
  "${PIP[@]}" --no-deps jiant==2.2.0
  echo "$WANT" > "$STAMP"
fi
echo "[setup] environment ready: $VENV"
