// Package node runs kube-fence on a real node: hack/node.sh brings up a
// kubelet with containerd, CNI and kube-proxy beside a control plane, in
// namespaces of its own, and installs kube-fence with `kubectl apply -k
// deploy/`. The test checks the agent's pod as the kubelet runs it (Ready by
// its probes, confined as the DaemonSet says, its table in the node's network
// namespace) and runs a fixed subset of the upstream network policy e2e
// suite against it; `make e2e-node` runs the whole suite. It needs root and
// what hack/ci-deps.sh installs and builds; see docs/testing-e2e.md.
package node
