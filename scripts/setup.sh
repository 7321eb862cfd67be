#!/usr/bin/env bash
# Creates .venv and installs recbole-mmkd with what it needs. Idempotent; `make` calls it.
#   EXTRAS=dev,text scripts/setup.sh   # optional extras (text = offline sentence encoder)
# torch: a torch already importable in .venv is kept (bring your own CUDA build); otherwise
# torch==2.13.0 is installed first, so no resolver ever pulls a newer (CUDA) build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=${EXTRAS:-dev}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q "$TORCH_SPEC"
.venv/bin/pip install -q -e ".[${EXTRAS}]"
# recbole's metadata pins ray<=2.6.3; its real requirements are in pyproject.toml.
.venv/bin/pip install -q --no-deps recbole==1.2.1
.venv/bin/python -c "import recbole_mmkd.compat, recbole; print('recbole-mmkd env ready: recbole', recbole.__version__)"
