#!/usr/bin/env bash
# Lint, format and type checks (part of the test command and of .ci/run): ruff check, ruff format --check, mypy.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
