#!/usr/bin/env bash
# The upstream network policy e2e suite, unmodified, against a real node with
# kube-fence installed from deploy/ (`make e2e-netpol`, the first half of
# `make e2e-node`; hack/e2e-npapi.sh is the second): builds what is missing,
# brings the node up, runs every spec matching `Netpol` except those needing
# SCTP sockets (the suite's own [Feature:SCTPConnectivity]; this kernel has
# none), and takes the node down again, also when something fails.
# The JUnit report, the suite's output and results.md (a table per spec, as
# in docs/conformance.md) go to _output/e2e-node/.
#
# Usage: hack/e2e-node.sh [--nodes N] [--ipv6] [E2E.TEST ARGS...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/hack/lib.sh"
require_root
nodes=1 up=()
while (($#)); do
  case "$1" in
    --nodes) nodes="${2:?--nodes needs a number}"; shift 2 ;;
    --ipv6) up+=(--ipv6); shift ;;
    *) break ;;
  esac
done
out="$root/_output/e2e-node"
rm -rf "$out"; mkdir -p "$out"

"$root/hack/ci-deps.sh"
trap '"$root/hack/node.sh" down' EXIT
"$root/hack/node.sh" up --nodes "$nodes" "${up[@]}"
start=$SECONDS
set +e
"$root/hack/node.sh" e2e --report-dir="$out" --ginkgo.focus=Netpol \
  --ginkgo.skip='\[Feature:SCTPConnectivity\]' --ginkgo.timeout=3h "$@" 2>&1 | tee "$out/e2e.log"
status=${PIPESTATUS[0]}
set -e
if [[ -f $out/junit_01.xml ]]; then
  "$root/hack/e2e-node-table.sh" "$nodes node(s)=$out/junit_01.xml" > "$out/results.md"
fi
echo "e2e-node: $nodes node(s), $((SECONDS - start))s, exit $status; report in $out (results.md: the table of docs/conformance.md)"
exit "$status"
