package nlrules

import (
	"context"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Changes delivers one value per committed nf_tables transaction in the
// namespace (each NFT_MSG_NEWGEN notification), until ctx ends. It listens
// to the NFNLGRP_NFTABLES multicast group on its own socket and decodes
// nothing else, so a rule nobody can parse cannot break the watch.
// An error on the channel (for example ENOBUFS after a burst) means events
// were lost: the caller should re-read the ruleset anyway.
func Changes(ctx context.Context, netnsFD int) (<-chan error, error) {
	cfg := &netlink.Config{}
	if netnsFD >= 0 {
		cfg.NetNS = netnsFD
	}
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("open nf_tables notification socket: %w", err)
	}
	if err := nl.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		nl.Close()
		return nil, fmt.Errorf("join nf_tables notifications: %w", err)
	}
	out := make(chan error, 1)
	go func() {
		<-ctx.Done()
		nl.Close()
	}()
	go func() {
		defer close(out)
		for {
			msgs, err := nl.Receive()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				select {
				case out <- err:
				default:
				}
				continue
			}
			for _, m := range msgs {
				if m.Header.Type == msgType(unix.NFT_MSG_NEWGEN) {
					select {
					case out <- nil:
					default: // one pending notice is enough: the reader rescans
					}
				}
			}
		}
	}()
	return out, nil
}
