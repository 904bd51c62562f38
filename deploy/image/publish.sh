#!/usr/bin/env sh
# Build the gateway and trainer images and (with --push) publish them, on a machine with a
# container engine (docker buildx, or buildah/podman) and registry access.
#
# Tag policy: <registry>/gateway:<version>, <version> = pyproject.toml's version = the Helm
# chart's appVersion (tests/deploy/test_image.py keeps them equal). A release tag is
# immutable: --push refuses when the registry already has it (bump the version instead);
# each build is also tagged <version>-<git short sha> for tracing. `latest` is never used.
#
#   deploy/image/publish.sh [--push] [--dry-run]     REGISTRY=ghcr.io/distill by default
set -eu
cd "$(dirname "$0")/../.."
push=0; dry=0
for arg in "$@"; do
  case "$arg" in
    --push) push=1 ;;
    --dry-run) dry=1 ;;
    *) echo "usage: $0 [--push] [--dry-run]" >&2; exit 2 ;;
  esac
done
registry=${REGISTRY:-ghcr.io/distill}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -1)
app=$(sed -n 's/^appVersion: "\(.*\)"$/\1/p' helm/distill/Chart.yaml)
if [ "$version" != "$app" ]; then
  echo "pyproject version $version != chart appVersion $app: make them equal first" >&2
  exit 1
fi
sha=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
run() { echo "+ $*"; [ "$dry" = 1 ] || "$@"; }
if command -v docker >/dev/null 2>&1; then engine=docker; else engine=buildah; fi
for image in gateway trainer; do
  extras=""; [ "$image" = trainer ] && extras="[train]"
  ref="$registry/$image:$version"
  if [ "$push" = 1 ] && [ "$dry" = 0 ] && "$engine" manifest inspect "$ref" >/dev/null 2>&1; then
    echo "$ref is already published: release tags are immutable; bump the version" >&2
    exit 1
  fi
  # buildah: --format docker keeps the HEALTHCHECK (the OCI format has no field for it).
  build="bud --format docker"; [ "$engine" = docker ] && build=build
  # shellcheck disable=SC2086 # $build is the subcommand and its options
  run "$engine" $build -f deploy/Dockerfile.gateway --build-arg "EXTRAS=$extras" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$sha" \
    -t "$ref" -t "$registry/$image:$version-$sha" .
  if [ "$push" = 1 ]; then
    run "$engine" push "$ref"
    run "$engine" push "$registry/$image:$version-$sha"
  fi
done
