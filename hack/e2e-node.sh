#!/usr/bin/env bash
# The upstream network policy e2e suite, unmodified, against a real node with
# kube-fence installed from deploy/ (`make e2e-node`): builds what is missing,
# brings the node up, runs every spec matching `Netpol` except those needing
# SCTP sockets (the suite's own [Feature:SCTPConnectivity]; this kernel has
# none), and takes the node down again, also when something fails.
# The JUnit report and the suite's output go to _output/e2e-node/.
#
# Usage: hack/e2e-node.sh [--nodes N] [E2E.TEST ARGS...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/hack/lib.sh"
require_root
nodes=1
if [[ ${1:-} == --nodes ]]; then nodes="${2:?--nodes needs a number}"; shift 2; fi
out="$root/_output/e2e-node"
rm -rf "$out"; mkdir -p "$out"

"$root/hack/ci-deps.sh"
trap '"$root/hack/node.sh" down' EXIT
"$root/hack/node.sh" up --nodes "$nodes"
start=$SECONDS
set +e
"$root/hack/node.sh" e2e --report-dir="$out" --ginkgo.focus=Netpol \
  --ginkgo.skip='\[Feature:SCTPConnectivity\]' --ginkgo.timeout=3h "$@" 2>&1 | tee "$out/e2e.log"
status=${PIPESTATUS[0]}
set -e
echo "e2e-node: $nodes node(s), $((SECONDS - start))s, exit $status; report in $out"
exit "$status"
