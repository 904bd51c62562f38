#!/usr/bin/env bash
# Lint, type-check and run the whole test suite (real servers on 127.0.0.1, real vLLM).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
ruff check .
ruff format --check .
mypy
# pytest exits 5 when no test ran; that is a failure here, as any non-zero code is.
python -m pytest "$@"
