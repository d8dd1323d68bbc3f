#!/usr/bin/env bash
# The network-policy-api conformance suite (sigs.k8s.io/network-policy-api at
# the version hack/npapi-conformance/go.mod pins, its `conformance` package's
# tests: ClusterNetworkPolicy, admin and baseline tiers) against a real node
# with kube-fence installed from deploy/ (`make e2e-npapi`). Builds what is
# missing, brings the node up, installs the ClusterNetworkPolicy CRD from
# that module's config/crd/experimental, runs the suite from node-1's network
# namespace, and takes the node down again, also when something fails.
#
# This kernel has no SCTP sockets: hack/npapi-conformance/conformance_test.go
# says how the suite's own options leave SCTP out. The suite's pods run
# agnhost:2.45 through /bin/bash; that image is the node's agnhost (built at
# the pinned Kubernetes release) with Debian 12's bash added.
#
# Output in _output/e2e-npapi/: the suite's log (suite.log), its test2json
# events (events.json) and results.md, a row per test and subtest with its
# result, seconds and, for a failure, the probe that failed.
#
# Usage: hack/e2e-npapi.sh [--nodes N (default 2)] [--up-only] [TEST BINARY ARGS...]
#   e.g. hack/e2e-npapi.sh -test.run 'TestNetworkPolicyAPIConformance/CNPAdminTierEgressTCP'
#   --up-only: leave the node up with the CRD and the image, print the
#   command that runs the suite, and return (hack/node.sh down ends it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/hack/lib.sh"
require_root
ensure_go
# Two nodes at least: the suite's host-network StatefulSet (centaur) has
# two replicas holding the same host ports, one per node.
nodes=2 up_only=0
while (($#)); do
  case "$1" in
    --nodes) nodes="${2:?--nodes needs a number}"; shift 2
      ((nodes >= 2)) || { echo "$0: --nodes $nodes: the suite needs two nodes at least" >&2; exit 2; } ;;
    --up-only) up_only=1; shift ;;
    *) break ;;
  esac
done
S="${KUBE_FENCE_NODE_DIR:-$root/_output/node}"
out="$root/_output/e2e-npapi"
mod="$root/hack/npapi-conformance"
test_bin="$root/_output/bin/npapi-conformance.test"
agnhost_245=registry.k8s.io/e2e-test-images/agnhost:2.45
rm -rf "$out"
mkdir -p "$out"

"$root/hack/ci-deps.sh"
apt_install jq
start=$SECONDS
(cd "$mod" && GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" nice -n 10 go test -c -o "$test_bin" .)
npapi="$(cd "$mod" && GOWORK=off go list -m -f '{{.Dir}}' sigs.k8s.io/network-policy-api)"
echo "e2e-npapi: built the suite ($(cd "$mod" && GOWORK=off go list -m -f '{{.Path}} {{.Version}}' sigs.k8s.io/network-policy-api)) in $((SECONDS - start))s"

# The node's logs are kept for a failed run's diagnosis; down removes $S.
((up_only)) || trap 'mkdir -p "$out/node-logs"; cp "$S"/*.log "$out/node-logs/" 2>/dev/null; "$root/hack/node.sh" down' EXIT
"$root/hack/node.sh" up --nodes "$nodes" >/dev/null

# agnhost:2.45 as the suite names it: /agnhost and Debian 12's bash.
files="$root/_output/npapi-image/files" debs="$root/_output/npapi-image/debs"
rm -rf "$root/_output/npapi-image"
mkdir -p "$files" "$debs"
debian_download bookworm "$debs" bash libtinfo6 libc6
for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$files"; done
rm -rf "$files"/usr/share/{doc,man,locale,info,lintian}
"$root/_output/images/images" -kind agnhost -ref "$agnhost_245" -bin "$root/_output/bin/agnhost" \
  -root "$files" -o "$S/images/agnhost-2.45.tar"
"$root/hack/node.sh" import "$S/images/agnhost-2.45.tar"

# The CRD, then the agents restarted so they start with it installed,
# whenever they look for it.
crd="$npapi/config/crd/experimental/policy.networking.k8s.io_clusternetworkpolicies.yaml"
"$root/hack/node.sh" kubectl apply -f "$crd" >/dev/null
# Not `kubectl wait --for=condition=Established`: asked before the API server
# wrote the CRD's first status it fails ("<nil> is of the type <nil>")
# instead of waiting.
for ((i = 0; ; i++)); do
  established="$("$root/hack/node.sh" kubectl get crd clusternetworkpolicies.policy.networking.k8s.io \
    -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')"
  [[ "$established" == True ]] && break
  ((i < 60)) || { echo "e2e-npapi: the ClusterNetworkPolicy CRD is not Established after 60s" >&2; exit 1; }
  sleep 1
done
"$root/hack/node.sh" kubectl -n kube-system rollout restart daemonset/kube-fence >/dev/null
"$root/hack/node.sh" kubectl -n kube-system rollout status daemonset/kube-fence --timeout=180s >/dev/null

# -all-features: the experimental features too (named ports, node peers).
run=("$root/hack/node.sh" exec "$test_bin" -test.timeout=120m
  -test.run '^TestNetworkPolicyAPIConformance$' -kubeconfig="$S/pki/admin.kubeconfig" -all-features "$@")
if ((up_only)); then
  echo "e2e-npapi: the node is up; run the suite (one test: add -test.run '^TestNetworkPolicyAPIConformance$/CNPAdminTierEgressTCP') with:"
  printf ' %q' "${run[@]}" -test.v; echo
  exit 0
fi
start=$SECONDS
set +e
"${run[@]}" -test.v=test2json 2>&1 | go tool test2json -t -p npapi-conformance > "$out/events.json"
status=${PIPESTATUS[0]}
set -e
jq -j 'select(.Action == "output") | .Output' "$out/events.json" > "$out/suite.log"
"$root/hack/e2e-npapi-table.sh" "$out/events.json" > "$out/results.md"
count() { grep -c "| $1 |" "$out/results.md" || true; }
failed="$(count fail)"
echo "e2e-npapi: $nodes node(s), $((SECONDS - start))s, suite exit $status;" \
  "$(count pass) passed, $failed failed, $(count 'fail (no SCTP)') failed on an SCTP probe (no SCTP here)," \
  "$(count 'skipped (SCTP)') SCTP tests skipped, $(count skipped) skipped (features); table: $out/results.md"
# Failures at an SCTP probe are this kernel's; any other failure, or a
# suite that did not run to its end, fails the command.
if [[ $failed != 0 ]] || ! jq -se 'any(.[]; .Test == null and (.Action == "pass" or .Action == "fail"))' "$out/events.json" >/dev/null; then
  exit 1
fi
