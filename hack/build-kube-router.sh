#!/usr/bin/env bash
# Builds kube-router, the peer that `make bench-peer` measures kube-fence
# against, from its published source on the Go module proxy, and installs it
# as _output/bin/kube-router-<version>. Nothing of kube-router is committed:
# each version is built in a throwaway module under _output/kube-router/
# whose only requirement is github.com/cloudnativelabs/kube-router/v2 at that
# version (-mod=mod resolves the rest from kube-router's own go.mod).
#
# A version is either upstream's (v2.10.0) or MODULE@VERSION for a fork that
# keeps upstream's module path in its go.mod, as K3s's does:
# github.com/k3s-io/kube-router/v2@v2.6.3-k3s1 is the kube-router K3s embeds
# (K3s's go.mod replaces github.com/cloudnativelabs/kube-router/v2 with it),
# and its go.mod still says `module github.com/cloudnativelabs/kube-router/v2`.
# So a fork is built the way K3s builds it: upstream's path, replaced by the
# fork. The binary is named by the version alone (kube-router-v2.6.3-k3s1).
#
# The defaults are those two. What the module proxy serves (checked
# 2026-12-03): of upstream's v2 releases only v2.10.0 and v2.1.0 whole;
# v2.11.1, the newest, answers its .info but 403 for its .mod and .zip, and
# no upstream v2.6.x is served. The k3s-io fork's v2.6.3-k3s1 is served whole.
# docs/benchmarks-peer.md says what that means for the comparison.
#
# A no-op for a version whose binary is already there, built from the same
# module by the same Go (recorded in _output/bin/kube-router-<version>.version).
# The cold build time is printed; Go's build cache makes a rebuild take seconds.
#
# Usage: hack/build-kube-router.sh [--force] [[module@]version ...]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/hack/lib.sh"
ensure_go

force=0
if [[ ${1:-} == --force ]]; then force=1; shift; fi
versions=("$@")
((${#versions[@]})) || versions=(github.com/k3s-io/kube-router/v2@v2.6.3-k3s1 v2.10.0)

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

for arg in "${versions[@]}"; do
  # MODULE@VERSION builds a fork: upstream's path, replaced by MODULE.
  source=$mod version=$arg
  if [[ $arg == *@* ]]; then source=${arg%@*} version=${arg##*@}; fi
  [[ $version == v* ]] || { echo "version '$version' (from '$arg') must start with v" >&2; exit 2; }
  bin="$root/_output/bin/kube-router-$version"
  stamp="$bin.version"
  want="$source $version
$(go version)"
  if [[ $force == 0 && -x $bin && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    echo "kube-router $version ($source) is up to date: $bin"
    continue
  fi
  dir="$root/_output/kube-router/$version"
  rm -rf "$dir"
  mkdir -p "$dir" "$(dirname "$bin")"
  fork=""
  [[ $source == "$mod" ]] || fork="replace $mod => $source $version"
  cat > "$dir/go.mod" <<MOD
module kube-fence.local/peer-build

go 1.26

require $mod $version

$fork
$(replaces "$version")
MOD
  echo "building kube-router $version ($source) from the Go module proxy ..."
  start=$SECONDS
  (
    cd "$dir"
    # Resolves kube-router's module graph and writes go.sum here (throwaway).
    nice -n 10 go mod download "$source@$version"
    nice -n 10 go get "$mod@$version"
    nice -n 10 go build -trimpath \
      -ldflags "-s -w -X $mod/pkg/version.Version=$version" \
      -o "$bin.tmp" "$mod/cmd/kube-router"
  )
  mv -f "$bin.tmp" "$bin"
  printf '%s\n' "$want" > "$stamp"
  echo "built $bin in $((SECONDS - start))s"
done
