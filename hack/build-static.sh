#!/usr/bin/env bash
# Builds kube-fence as the container image ships it: a static binary
# (CGO_ENABLED=0, so no libc and no dynamic loader), stripped, with the
# version stamped, and checks that it is static. (No -trimpath: the e2e
# tests build with this script, and -trimpath would make that build miss the
# compile cache `go test` fills.)
# deploy/Dockerfile and the e2e tests (test/e2e/framework) both build with it.
#
# Usage: VERSION=v0.1.0 hack/build-static.sh [OUTPUT]   (default _output/bin/kube-fence)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/_output/bin/kube-fence}"
version="${VERSION:-dev}"
. "$root/hack/lib.sh"
ensure_go

cd "$root"
CGO_ENABLED=0 GOWORK=off GOFLAGS="-mod=readonly" go build \
  -ldflags "-s -w -X github.com/kube-fence/kube-fence/internal/version.Version=${version}" \
  -o "$out" ./cmd/kube-fence

# A static ELF has no program interpreter (PT_INTERP): nothing to load at
# run time, so it runs on distroless/static or scratch.
if command -v readelf >/dev/null 2>&1; then
  if readelf -l "$out" | grep -q 'program interpreter'; then
    echo "$out is dynamically linked; the image has no libc to run it" >&2
    exit 1
  fi
elif command -v file >/dev/null 2>&1; then
  if ! file -L "$out" | grep -q 'statically linked'; then
    echo "$out is not statically linked: $(file -L "$out")" >&2
    exit 1
  fi
fi
echo "built $out (static, version $version)"
