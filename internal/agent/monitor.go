package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nft"
)

// watchNftables reports, on notify, every nftables transaction in the
// namespace that another process committed and that touched kube-fence's
// table: with the table's owner flag no other process can change it, but
// without (ownership off or an old kernel) this is what turns `nft delete
// table` into a repair within milliseconds instead of at the next
// verification. Our own transactions, recognised by the netlink port that
// sent them (ownPort), and other programs' changes to their own tables
// (kube-proxy, flannel and iptables-nft write often) are ignored. A broken
// subscription is reported too and then re-established.
func watchNftables(ctx context.Context, log *slog.Logger, netnsFD int, ownPort uint32, notify chan<- struct{}) {
	for ctx.Err() == nil {
		err := monitorOnce(ctx, netnsFD, ownPort, notify)
		if ctx.Err() != nil {
			return
		}
		log.Warn("nftables notifications interrupted; verifying the table and subscribing again", "err", err)
		signal(notify)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// monitorBuffer is the notification socket's receive buffer. A burst of
// foreign notifications (an iptables-restore of kube-proxy's rules) must not
// overflow it; when one does anyway, the table is verified.
const monitorBuffer = 4 << 20

// monitorOnce reads the nftables notification group directly: every message
// names its table in attribute 1 and carries the sending socket's port in
// its header, which is all the filter needs. Decoding rule expressions, as a
// general monitor would, would cost work on every foreign change.
func monitorOnce(ctx context.Context, netnsFD int, ownPort uint32, notify chan<- struct{}) error {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netnsFD})
	if err != nil {
		return fmt.Errorf("open nftables notification socket: %w", err)
	}
	defer conn.Close()
	growReceiveBuffer(conn, monitorBuffer)
	if err := conn.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("subscribe to nftables notifications: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	pending := false // the transaction being reported touched our table
	for {
		msgs, err := conn.Receive()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.ENOBUFS):
			signal(notify) // notifications were lost: verify rather than guess
			continue
		case err != nil:
			return fmt.Errorf("receive nftables notifications: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES {
				continue
			}
			if m.Header.Type&0xff == unix.NFT_MSG_NEWGEN {
				// The end of one transaction's notifications.
				if pending {
					signal(notify)
				}
				pending = false
				continue
			}
			pending = pending || concernsUs(m, ownPort)
		}
	}
}

// concernsUs reports whether one change notification comes from another
// socket than ownPort and may concern kube-fence's table. The kernel stamps
// each notification with the netlink port ID of the socket that sent the
// transaction. A process ID would not do: the kernel reports the global one,
// which a process in a container cannot find under its own /proc.
func concernsUs(m netlink.Message, ownPort uint32) bool {
	if ownPort != 0 && m.Header.PID == ownPort {
		return false
	}
	family, table, ok := tableOf(m)
	return !ok || (family == unix.NFPROTO_INET && table == nft.TableName)
}

// tableOf returns the family and table a notification is about. Every
// nf_tables object message (table, chain, rule, set, element list, object,
// flowtable) carries the table name as attribute 1 after the 4-byte nfgenmsg
// header whose first byte is the family.
func tableOf(m netlink.Message) (family byte, table string, ok bool) {
	if len(m.Data) < 4 {
		return 0, "", false
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return 0, "", false
	}
	for ad.Next() {
		if ad.Type() == 1 {
			return m.Data[0], ad.String(), true
		}
	}
	return 0, "", false
}

// growReceiveBuffer raises the socket's receive buffer beyond the system
// limit (SO_RCVBUFFORCE, which CAP_NET_ADMIN allows), or as far as the limit
// goes without it. A smaller buffer only means an earlier verification.
func growReceiveBuffer(conn *netlink.Conn, size int) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	})
}

func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
