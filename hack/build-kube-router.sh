#!/usr/bin/env bash
# Builds kube-router, the peer that `make bench-peer` measures kube-fence
# against, from its published source on the Go module proxy, and installs it
# as _output/bin/kube-router-<version>. Nothing of kube-router is committed:
# each version is built in a throwaway module under _output/kube-router/
# whose only requirement is github.com/cloudnativelabs/kube-router/v2 at that
# version (-mod=mod resolves the rest from kube-router's own go.mod).
#
# The default is v2.10.0. Of kube-router's v2 releases the module proxy serves
# only v2.10.0 and v2.1.0 whole (checked 2026-12-03): v2.11.1, the newest,
# answers its .info but 403 for its .mod and .zip, and no v2.6.x (the line K3s
# embeds) is served. v2.10.0 is the nearest served release to both; v2.1.0 is
# older than v2.6 and flagged for security issues. docs/benchmarks-peer.md
# says what that means for the comparison.
#
# A no-op for a version whose binary is already there, built by the same Go
# (recorded in _output/bin/kube-router-<version>.version). The cold build
# time is printed; Go's build cache makes a rebuild take seconds.
#
# Usage: hack/build-kube-router.sh [--force] [version ...]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/hack/lib.sh"
ensure_go

force=0
if [[ ${1:-} == --force ]]; then force=1; shift; fi
versions=("$@")
((${#versions[@]})) || versions=(v2.10.0)

# Static like kube-router's release images; no go.work from the caller.
export GOWORK=off GO111MODULE=on CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
mod=github.com/cloudnativelabs/kube-router/v2

# replaces VERSION prints the go.mod replace lines a version needs: a
# dependency pinned at a version the module proxy does not serve (403) is
# replaced by the nearest one it serves, as docs/benchmarks-peer.md says.
replaces() {
  case "$1" in
    v2.10.0)
      # kube-router pins netlink v1.3.2-0.20260505210927-99e979749d3e (not
      # served); the newest served pseudo-version before it:
      echo "replace github.com/vishvananda/netlink => github.com/vishvananda/netlink v1.3.2-0.20251022194116-03b8f90390d9"
      ;;
  esac
}

for version in "${versions[@]}"; do
  [[ $version == v* ]] || { echo "version '$version' must start with v" >&2; exit 2; }
  bin="$root/_output/bin/kube-router-$version"
  stamp="$bin.version"
  want="$mod $version
$(go version)"
  if [[ $force == 0 && -x $bin && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    echo "kube-router $version is up to date: $bin"
    continue
  fi
  dir="$root/_output/kube-router/$version"
  rm -rf "$dir"
  mkdir -p "$dir" "$(dirname "$bin")"
  cat > "$dir/go.mod" <<MOD
module kube-fence.local/peer-build

go 1.26

require $mod $version

$(replaces "$version")
MOD
  echo "building kube-router $version from the Go module proxy ..."
  start=$SECONDS
  (
    cd "$dir"
    # Resolves kube-router's module graph and writes go.sum here (throwaway).
    nice -n 10 go mod download "$mod@$version"
    nice -n 10 go get "$mod@$version"
    nice -n 10 go build -trimpath \
      -ldflags "-s -w -X $mod/pkg/version.Version=$version" \
      -o "$bin.tmp" "$mod/cmd/kube-router"
  )
  mv -f "$bin.tmp" "$bin"
  printf '%s\n' "$want" > "$stamp"
  echo "built $bin in $((SECONDS - start))s"
done
