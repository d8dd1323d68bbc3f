package netns

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// Netlink returns a rtnetlink handle whose sockets live in the namespace, so
// links, addresses and routes can be configured without entering it.
func (n *NS) Netlink() (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(n.handle)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink in namespace: %w", err)
	}
	return h, nil
}

func bringUpLoopback() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	return nil
}
