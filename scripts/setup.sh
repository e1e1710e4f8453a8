#!/usr/bin/env bash
# Set up everything mlffbench needs on a fresh machine with Python 3.11:
# a virtual environment in .venv with the core, the model plugins (JAT, NeuralIL, SchNet, MACE in mace-torch, MACE/NequIP/ViSNet in mlip, ACE, SO3krates) and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned to the local CPU wheel (torch==2.13.0): an unpinned torch pulls CUDA builds.
.venv/bin/python -m pip install -q -e ".[jax,torch,test]" -e plugins/jat -e plugins/neuralil -e plugins/schnet \
  -e plugins/mace -e plugins/mlip -e plugins/ace -e plugins/so3krates
# A PostgreSQL server for the multi-worker tuning test (tests/test_tune_postgres.py starts its own
# cluster on loopback): Debian's package when the server programs are missing.
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  else
    echo "warning: no PostgreSQL server found; install it (Debian: apt-get install postgresql) to run tests/test_tune_postgres.py" >&2
  fi
fi
# Headless Chromium for the report test (tests/test_bench_compare.py renders report.html): Debian's
# package when it is missing; offline (apt fails) the test skips and setup goes on.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } ||
      echo "warning: could not install chromium (offline?); the report.html browser test will skip" >&2
  else
    echo "warning: no chromium found; install it (Debian: apt-get install chromium) to run the report.html browser test" >&2
  fi
fi
.venv/bin/mlffbench --version
