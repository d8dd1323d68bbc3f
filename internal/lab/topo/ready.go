package topo

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/netns"
)

// waitReady waits until every link of ns that is up is operational and no
// IPv6 address in ns is tentative. Both depend on the kernel's link watcher,
// which may batch events for up to a second: until it has run, a veth
// drops what it is given to send and IPv6 neighbour discovery fails.
func waitReady(ctx context.Context, ns *netns.NS) error {
	h, err := ns.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	for {
		pending, err := notReady(h)
		if err != nil {
			return err
		}
		if pending == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", pending, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// notReady names something in the namespace that is not ready yet, or
// returns "". Links without carrier (a bridge with no port yet) cannot
// become ready and are left out.
func notReady(h *netlink.Handle) (string, error) {
	links, err := h.LinkList()
	if err != nil {
		return "", fmt.Errorf("list links: %w", err)
	}
	carrier := map[int]bool{}
	for _, l := range links {
		a := l.Attrs()
		if a.RawFlags&unix.IFF_LOWER_UP == 0 || a.Flags&net.FlagLoopback != 0 {
			continue
		}
		// Bridges and dummies report no operational state ("unknown").
		if a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown {
			return fmt.Sprintf("link %s to be operational (%s)", a.Name, a.OperState), nil
		}
		carrier[a.Index] = true
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		return "", fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if carrier[a.LinkIndex] && a.Flags&unix.IFA_F_TENTATIVE != 0 {
			return fmt.Sprintf("address %s to leave the tentative state", a.IP), nil
		}
	}
	return "", nil
}
