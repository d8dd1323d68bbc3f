#!/usr/bin/env bash
# Builds Kubernetes binaries from the Go module proxy at the release pinned in
# hack/kube-apiserver/go.mod (k8s.io/kubernetes with its staging modules
# replaced by their matching v0.x releases) into _output/bin:
#
#   kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet
#   kubectl    the node hack/node.sh runs
#   agnhost    k8s.io/kubernetes/test/images/agnhost, the e2e suite's image
#   e2e.test   the upstream end-to-end suite (k8s.io/kubernetes/test/e2e)
#
# Each binary is a no-op when it was built from the same go.mod, go.sum and Go
# version (recorded in _output/bin/NAME.version); the ones out of date are
# built by one `go build`, so shared packages compile once. Cold times on 2
# cores are in docs/testing-e2e.md; Go's build cache makes a rebuild take
# seconds.
#
# Usage: hack/build-kube.sh [--force] NAME...   (no NAME: all of them)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$root/hack/kube-apiserver"
out="$root/_output/bin"
. "$root/hack/lib.sh"
ensure_go

all=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl agnhost e2e.test)
force=0
names=()
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy|kubelet|kubectl|agnhost|e2e.test) names+=("$a") ;;
    *) echo "usage: $0 [--force] [${all[*]}]..." >&2; exit 2 ;;
  esac
done
((${#names[@]})) || names=("${all[@]}")

pkg() {
  case "$1" in
    agnhost) echo k8s.io/kubernetes/test/images/agnhost ;;
    e2e.test) echo k8s.io/kubernetes/test/e2e ;;
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
  esac
}

# The same build whatever the caller's environment says: the committed go.sum
# is the whole truth (-mod=readonly fails rather than fetch anything new), no
# go.work pulls in other modules, and the binaries are static like upstream's.
export GOWORK=off GO111MODULE=on CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"

cd "$mod"
version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
date="$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
want="k8s.io/kubernetes $version
$(go version)
pin $(cat go.mod go.sum | sha256sum | cut -d' ' -f1)"

stale=()
for n in "${names[@]}"; do
  if [[ $force == 0 && -x $out/$n && -f $out/$n.version && "$(cat "$out/$n.version")" == "$want" ]]; then
    echo "$n $version is up to date: $out/$n"
  else
    stale+=("$n")
  fi
done
((${#stale[@]})) || exit 0

# The version the binaries report (/version, --version), as a release build
# stamps it; without it they call themselves v0.0.0-master, and the kubelet
# and the e2e suite compare versions.
major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=$major -X $p.gitMinor=$minor"
  ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
done

mkdir -p "$out"
tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cmds=()
e2e=0
for n in "${stale[@]}"; do
  if [[ $n == e2e.test ]]; then e2e=1; else cmds+=("$(pkg "$n")"); fi
done

start=$SECONDS
if ((${#cmds[@]})); then
  echo "building ${cmds[*]##*/} at $version (cold: see docs/testing-e2e.md) ..."
  go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${cmds[@]}"
fi
if ((e2e)); then
  echo "building e2e.test at $version (cold: see docs/testing-e2e.md) ..."
  go test -c -vet=off -trimpath -ldflags "$ldflags" -o "$tmp/e2e.test" k8s.io/kubernetes/test/e2e
fi

for n in "${stale[@]}"; do
  # The whole output, then its first line: `| head -1` would end the
  # binary with SIGPIPE now and then, and pipefail would fail the build.
  case "$n" in
    agnhost) got="$("$tmp/$n" --version 2>&1 || true)"; check="" ;;
    kubectl) got="$("$tmp/$n" version --client 2>&1)"; check="$version" ;;
    *) got="$("$tmp/$n" --version 2>&1)"; check="$version" ;;
  esac
  got="${got%%$'\n'*}"
  if [[ -n $check && $got != *"$check"* ]]; then
    echo "built $n reports '$got', want $check" >&2
    exit 1
  fi
  mv -f "$tmp/$n" "$out/$n"
  printf '%s\n' "$want" > "$out/$n.version"
  echo "built $out/$n ($got)"
done
echo "built ${stale[*]} in $((SECONDS - start))s"
