package doctor

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/netns"
)

// namespace is the network namespace a scan or repair works in: another
// one opened by path, or nil for the caller's own. The caller's own is
// never entered with setns, which needs CAP_SYS_ADMIN: the guard runs with
// CAP_NET_ADMIN only.
type namespace struct{ ns *netns.NS }

func openNamespace(path string) (*namespace, error) {
	if path == "" {
		return &namespace{}, nil
	}
	ns, err := netns.Open(path)
	if err != nil {
		return nil, err
	}
	// Any file opens; only a network namespace can be scanned.
	if t, err := unix.IoctlRetInt(ns.FD(), unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		ns.Close()
		return nil, fmt.Errorf("open network namespace %s: not a network namespace", path)
	}
	return &namespace{ns: ns}, nil
}

// fd is the descriptor netlink sockets are opened in, -1 for the caller's own.
func (n *namespace) fd() int {
	if n.ns == nil {
		return -1
	}
	return n.ns.FD()
}

// do runs f inside the namespace; an error entering, in f or leaving is
// returned, joined.
func (n *namespace) do(f func() error) error {
	if n.ns == nil {
		return f()
	}
	return n.ns.Do(f)
}

func (n *namespace) close() error {
	if n.ns == nil {
		return nil
	}
	return n.ns.Close()
}
