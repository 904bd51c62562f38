#!/usr/bin/env bash
# Build the gateway image on a machine that reaches no container registry (CI, these VMs):
# buildah without a daemon (--isolation chroot), on a base made from Debian's own packages by
# mmdebstrap instead of Docker Hub's python:3.11-slim-bookworm. Same Dockerfile, same steps;
# only the base differs (Debian bookworm's Python 3.11 in a virtualenv at /opt/venv, on PATH).
# The result is a local test image, tagged localhost/distill/gateway:<version>-local and never
# pushed: release images are built on the official base by publish.sh (its tag policy).
#
#   deploy/image/build-local.sh [--smoke] [--refresh-base]
#     --smoke         then run it: `distill --version`, and `distill serve` with
#                     deploy/distill.yaml answering /healthz and /readyz on 127.0.0.1
#     --refresh-base  rebuild the Debian base even if one with the same recipe exists
#
# Needs root and the Debian packages buildah and mmdebstrap (scripts/setup.sh installs them
# when run as root). Reaches the Debian mirror and PyPI, nothing else.
# The base is kept in buildah's storage, tagged by a hash of its recipe, so later builds skip
# mmdebstrap. The host's CA bundle is mounted (read-only, not committed) over the image's
# during the build, so pip works behind a TLS-inspecting proxy the host trusts.
# STORAGE_DRIVER=vfs (read by buildah) where overlay mounts are not allowed.
# The last line on stdout is the image reference.
set -euo pipefail
cd "$(dirname "$0")/../.."

smoke=0
refresh=0
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    --refresh-base) refresh=1 ;;
    *) echo "usage: $0 [--smoke] [--refresh-base]" >&2; exit 2 ;;
  esac
done
for tool in buildah mmdebstrap; do
  if ! command -v "$tool" >/dev/null; then
    echo "needs $tool: apt-get install buildah mmdebstrap (or bash scripts/setup.sh as root)" >&2
    exit 3
  fi
done
if [ "$(id -u)" != 0 ]; then
  echo "needs root (mmdebstrap's root mode, buildah's system storage)" >&2
  exit 3
fi
log() { echo "build-local: $*" >&2; }

# --- The base: Debian bookworm minbase + Python 3.11 in /opt/venv ---------------------------
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
sources=(
  "deb $mirror bookworm main"
  "deb $mirror bookworm-updates main"
  "deb $security bookworm-security main"
)
# passwd: the Dockerfile's useradd. ca-certificates: TLS for pip and the gateway's upstreams.
packages=python3,python3-venv,ca-certificates,passwd
# No manuals, info or translations (copyright files stay).
dpkgopts=(
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
)
# pip in the venv verifies TLS with the system bundle (the default is pip's own certifi copy,
# which a host's proxy CA is not in).
hook='chroot "$1" python3 -m venv /opt/venv && printf "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n" > "$1/etc/pip.conf"'
recipe="bookworm minbase $packages ${sources[*]} ${dpkgopts[*]} $hook venv-path-v1"
base=localhost/distill-base:bookworm-$(printf '%s' "$recipe" | sha256sum | cut -c1-12)

if [ "$refresh" = 1 ] || ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  work=$(mktemp -d /var/tmp/distill-base.XXXXXX)
  container=""
  cleanup_base() {
    rm -rf "$work"
    [ -z "$container" ] || buildah rm "$container" >/dev/null 2>&1 || true
  }
  trap cleanup_base EXIT
  log "base: mmdebstrap bookworm ($packages)"
  start=$SECONDS
  mmdebstrap --quiet --variant=minbase --include="$packages" "${dpkgopts[@]}" \
    --customize-hook="$hook" bookworm "$work/rootfs.tar" "${sources[@]}"
  container=$(buildah from scratch)
  buildah add --quiet "$container" "$work/rootfs.tar" / >/dev/null
  buildah config \
    --env PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 \
    --label org.opencontainers.image.description="Debian bookworm minbase + Python 3.11 venv (distill local base)" \
    "$container"
  buildah commit --quiet --rm "$container" "$base" >/dev/null
  container=""
  cleanup_base
  trap - EXIT
  log "base: $base built in $((SECONDS - start)) s"
else
  log "base: $base (cached)"
fi

# --- The gateway image, from deploy/Dockerfile.gateway --------------------------------------
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -1)
sha=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
ref=localhost/distill/gateway:$version-local
ca=()
if [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  ca=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi
old=$(buildah images --quiet --no-trunc "$ref" 2>/dev/null || true)
log "image: buildah bud -> $ref"
start=$SECONDS
# --format docker keeps the HEALTHCHECK (the OCI format has no field for it).
buildah bud --quiet --isolation chroot --format docker "${ca[@]}" \
  -f deploy/Dockerfile.gateway --build-arg "BASE=$base" \
  --build-arg "VERSION=$version" --build-arg "REVISION=$sha" -t "$ref" . >/dev/null
new=$(buildah images --quiet --no-trunc "$ref")
if [ -n "$old" ] && [ "$old" != "$new" ]; then
  buildah rmi "$old" >/dev/null 2>&1 || true  # the previous build, now untagged
fi
log "image: $ref built in $((SECONDS - start)) s"

# --- Smoke run --------------------------------------------------------------------------------
if [ "$smoke" = 1 ]; then
  start=$SECONDS
  container=$(buildah from --quiet "$ref")
  server=""
  cleanup_run() {
    [ -z "$server" ] || { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
    buildah rm "$container" >/dev/null 2>&1 || true
  }
  trap cleanup_run EXIT
  buildah run --isolation chroot "$container" -- distill --version >&2
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # chroot isolation shares the host's network: the gateway listens on the host's loopback.
  buildah run --isolation chroot \
    -e DISTILL_ADMIN_TOKEN=smoke -e DISTILL_API_KEYS=smoke-key -e TEACHER_API_KEY=unused \
    -v "$PWD/deploy/distill.yaml:/etc/distill/distill.yaml:ro" "$container" -- \
    distill serve --config /etc/distill/distill.yaml --host 127.0.0.1 --port "$port" >&2 &
  server=$!
  python3 - "$port" <<'EOF' >&2
import sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
deadline = time.monotonic() + 60
while True:
    try:
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(base + path, timeout=2) as response:
                print(path, response.status, response.read().decode())
        break
    except OSError as error:
        if time.monotonic() > deadline:
            sys.exit(f"the gateway in the image did not answer on {base}: {error}")
        time.sleep(0.3)
EOF
  cleanup_run
  trap - EXIT
  log "smoke: distill serve answered /healthz and /readyz in the image ($((SECONDS - start)) s)"
fi
echo "$ref"
