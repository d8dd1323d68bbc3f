package nlrules

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Conn is a netlink socket to nf_tables in one network namespace.
type Conn struct {
	nl *netlink.Conn
}

// Dial opens a netlink socket to nf_tables. netnsFD < 0 means the calling
// thread's namespace; otherwise it is a file descriptor of a network
// namespace (for example one opened from /proc/PID/ns/net or /run/netns/NAME).
func Dial(netnsFD int) (*Conn, error) {
	cfg := &netlink.Config{}
	if netnsFD >= 0 {
		cfg.NetNS = netnsFD
	}
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("open nf_tables netlink socket: %w", err)
	}
	// Large rulesets come back in many parts; a bigger buffer avoids ENOBUFS.
	_ = nl.SetReadBuffer(4 << 20)
	return &Conn{nl: nl}, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.nl.Close() }

func msgType(t int) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | t)
}

// nfgen is the nfgenmsg header every nf_tables message starts with.
func nfgen(family byte, resID uint16) []byte {
	b := []byte{family, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(b[2:], resID)
	return b
}

func (c *Conn) dump(t int, family byte) ([]netlink.Message, error) {
	req := netlink.Message{
		Header: netlink.Header{Type: msgType(t), Flags: netlink.Request | netlink.Dump},
		Data:   nfgen(family, 0),
	}
	var lastErr error
	// A dump is interrupted (EINTR / NLM_F_DUMP_INTR) when the ruleset
	// changes during it; retrying gives a consistent view.
	for try := 0; try < 5; try++ {
		msgs, err := c.nl.Execute(req)
		if err == nil {
			return msgs, nil
		}
		lastErr = err
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	return nil, lastErr
}

// Generation returns the ruleset generation id; it changes with every
// committed transaction.
func (c *Conn) Generation() (uint32, error) {
	req := netlink.Message{
		Header: netlink.Header{Type: msgType(unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   nfgen(unix.AF_UNSPEC, 0),
	}
	msgs, err := c.nl.Execute(req)
	if err != nil {
		return 0, fmt.Errorf("get nf_tables generation: %w", err)
	}
	for _, m := range msgs {
		ad, err := decoder(m.Data)
		if err != nil {
			return 0, err
		}
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("get nf_tables generation: no id in answer")
}

func decoder(data []byte) (*netlink.AttributeDecoder, error) {
	if len(data) < 4 {
		return nil, errors.New("short nf_tables message")
	}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	return ad, nil
}
