#!/usr/bin/env bash
# Builds the kube-apiserver that test/e2e runs, from the Go module proxy, at
# the release pinned in hack/kube-apiserver/go.mod (k8s.io/kubernetes with its
# staging modules replaced by their matching v0.x releases), and installs it
# as _output/bin/kube-apiserver.
#
# A no-op when the binary there was built from the same go.mod, go.sum and Go
# version (recorded in _output/bin/kube-apiserver.version). A cold build takes
# about 10 minutes on 2 cores; Go's build cache makes a rebuild take seconds.
#
# Usage: hack/build-kube-apiserver.sh [--force]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$root/hack/kube-apiserver"
bin="$root/_output/bin/kube-apiserver"
stamp="$bin.version"

force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

# The same build whatever the caller's environment says: the committed go.sum
# is the whole truth (-mod=readonly fails rather than fetch anything new), no
# go.work pulls in other modules, and the binary is static like upstream's.
export GOWORK=off GO111MODULE=on CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"

cd "$mod"
version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
date="$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
want="k8s.io/kubernetes $version
$(go version)
pin $(cat go.mod go.sum | sha256sum | cut -d' ' -f1)"

if [[ $force == 0 && -x $bin && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  echo "kube-apiserver $version is up to date: $bin"
  exit 0
fi

# The version the binary reports (/version, --version), as a release build
# stamps it; without it kube-apiserver calls itself v0.0.0-master.
major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
done

echo "building kube-apiserver $version (cold: about 10 minutes on 2 cores) ..."
start=$SECONDS
mkdir -p "$(dirname "$bin")"
go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-apiserver
got="$("$bin.tmp" --version)"
if [[ $got != "Kubernetes $version" ]]; then
  echo "built binary reports '$got', want 'Kubernetes $version'" >&2
  exit 1
fi
mv -f "$bin.tmp" "$bin"
printf '%s\n' "$want" > "$stamp"
echo "built $bin ($got) in $((SECONDS - start))s"
