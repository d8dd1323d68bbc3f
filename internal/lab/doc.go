// Package lab proves NetworkPolicy enforcement with real packets: it builds
// a cluster's nodes and pods as network namespaces (package topo), starts a
// server in each pod for every declared port and probes every ordered pair
// of pods (package probe), while an Enforcer programs each node: for the
// real thing KernelEnforcer, the agent's own enforce.Pipeline per node, fed
// each step's object changes.
//
// A Lab is driven through a small API: New from a snapshot, Update to apply
// a change while traffic is tested, Probe for the reachability matrix, and
// Close, which leaves nothing behind. The scenario package reads snapshots
// from Kubernetes YAML; the report package prints the results.
//
// The lab never touches the host's own network namespace or firewall.
package lab
