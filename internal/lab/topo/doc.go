// Package topo builds the lab's network: one network namespace per node and
// one per pod, wired as a CNI plugin would (a bridge with br_netfilter like
// flannel on K3s, or point-to-point routes like Calico), and with several
// nodes a fabric namespace joining them, each node routing to the others'
// pod CIDRs. Everything is configured over rtnetlink handles opened in the
// namespaces; no `ip` binary, and nothing in the host's own namespace.
package topo
