#!/usr/bin/env bash
# Set up everything mlffbench needs on a fresh machine with Python 3.11:
# a virtual environment in .venv with the core, the three built-in plugins and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned to the local CPU wheel (torch==2.13.0): an unpinned torch pulls CUDA builds.
.venv/bin/python -m pip install -q -e ".[jax,torch,test]" -e plugins/jat -e plugins/neuralil -e plugins/schnet
.venv/bin/mlffbench --version
