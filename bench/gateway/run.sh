#!/usr/bin/env bash
# The gateway benchmark (bench/README.md, "Gateway"): `bench/gateway/run.sh [--quick] [...]`.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
exec python -m bench.gateway.run "$@"
