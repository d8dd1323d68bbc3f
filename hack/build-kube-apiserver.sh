#!/usr/bin/env bash
# Builds the kube-apiserver that test/e2e runs into _output/bin, at the
# release pinned in hack/kube-apiserver/go.mod; a no-op when up to date.
# hack/build-kube.sh does the work (it builds the node's other binaries too).
#
# Usage: hack/build-kube-apiserver.sh [--force]
set -euo pipefail
case "${1:-}" in
  ""|--force) ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac
exec "$(dirname "${BASH_SOURCE[0]}")/build-kube.sh" "$@" kube-apiserver
