// Package framework gives end-to-end tests a real Kubernetes control plane:
// Debian's etcd and a kube-apiserver built by hack/build-kube-apiserver.sh,
// both running inside a network namespace the test creates, on that
// namespace's loopback.
//
// Nothing touches the host's network: the processes are children started
// inside an anonymous namespace, the test's clients dial through that
// namespace, and every process is killed by process group and waited for in
// t.Cleanup, whether the test passed or failed.
//
// No kubelet, scheduler or controller-manager runs. Tests create the Node and
// Pods through the API and set their status themselves (CreateNode,
// SetPodRunning); pods must name their node at creation, deletions are
// immediate (grace period 0) and namespaces are finalized by the framework.
//
// Helpers that take a testing.TB fail the test on error and use t.Context(),
// which is cancelled before cleanups run: call them from the test body, not
// from a t.Cleanup function.
package framework
