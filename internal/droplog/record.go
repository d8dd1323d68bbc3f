package droplog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Side is where in the table a packet was dropped.
type Side string

const (
	// SideEgress: the source pod's egress policies denied it.
	SideEgress Side = "egress"
	// SideIngress: the destination pod's ingress policies denied it.
	SideIngress Side = "ingress"
	// SideUnknownAddress: the source was an address of the node's pod
	// CIDRs that belongs to no known pod (--default-deny-unknown).
	SideUnknownAddress Side = "unknown-address"
)

// prefixTag starts every prefix the table writes, so records of other
// programs sharing the group are told apart.
const prefixTag = "kube-fence "

// Prefix is the NFLOG prefix of a drop on side; audit marks a packet that an
// audit-mode policy would drop and that is let through.
func Prefix(side Side, audit bool) string {
	if audit {
		return prefixTag + "would-deny " + string(side)
	}
	return prefixTag + "deny " + string(side)
}

// ParsePrefix reverses Prefix.
func ParsePrefix(p string) (side Side, audit bool, err error) {
	rest, ok := strings.CutPrefix(p, prefixTag)
	if !ok {
		return "", false, fmt.Errorf("prefix %q: %w", p, ErrForeign)
	}
	verb, s, _ := strings.Cut(rest, " ")
	switch verb {
	case "deny":
	case "would-deny":
		audit = true
	default:
		return "", false, fmt.Errorf("prefix %q: unknown verdict %q", p, verb)
	}
	switch side = Side(s); side {
	case SideEgress, SideIngress, SideUnknownAddress:
		return side, audit, nil
	}
	return "", false, fmt.Errorf("prefix %q: unknown side %q", p, s)
}

// Record is one dropped (or, audit, would-be-dropped) packet.
type Record struct {
	Time     time.Time
	Side     Side
	Audit    bool
	Protocol uint8 // IP protocol number
	Src, Dst netip.Addr
	// SrcPort and DstPort are set for TCP, UDP and SCTP, when the packet
	// carries the transport header (not a later fragment).
	SrcPort, DstPort uint16
}

// ErrForeign is returned for a record another program logged to the group.
var ErrForeign = errors.New("not a kube-fence record")

// ErrNotIP is returned for a payload that is no IPv4 or IPv6 packet.
var ErrNotIP = errors.New("payload is not an IP packet")

// Decode builds a Record from an NFLOG record's prefix, packet (from the
// network header on) and time.
func Decode(prefix string, packet []byte, at time.Time) (Record, error) {
	side, audit, err := ParsePrefix(prefix)
	if err != nil {
		return Record{}, err
	}
	r := Record{Time: at, Side: side, Audit: audit}
	var transport []byte
	if len(packet) == 0 {
		return Record{}, ErrNotIP
	}
	switch packet[0] >> 4 {
	case 4:
		transport, err = decode4(&r, packet)
	case 6:
		transport, err = decode6(&r, packet)
	default:
		return Record{}, ErrNotIP
	}
	if err != nil {
		return Record{}, err
	}
	switch r.Protocol {
	case 6, 17, 132: // TCP, UDP and SCTP all start with source and destination port
		if len(transport) >= 4 {
			r.SrcPort = binary.BigEndian.Uint16(transport[0:2])
			r.DstPort = binary.BigEndian.Uint16(transport[2:4])
		}
	}
	return r, nil
}

func decode4(r *Record, p []byte) ([]byte, error) {
	if len(p) < 20 {
		return nil, fmt.Errorf("IPv4 packet of %d bytes: %w", len(p), ErrNotIP)
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 || ihl > len(p) {
		return nil, fmt.Errorf("IPv4 header length %d: %w", ihl, ErrNotIP)
	}
	r.Protocol = p[9]
	r.Src = netip.AddrFrom4([4]byte(p[12:16]))
	r.Dst = netip.AddrFrom4([4]byte(p[16:20]))
	if binary.BigEndian.Uint16(p[6:8])&0x1fff != 0 { // a later fragment: no transport header
		return nil, nil
	}
	return p[ihl:], nil
}

// IPv6 extension headers walked to reach the transport header.
const (
	hopByHop    = 0
	routing     = 43
	fragment    = 44
	destOptions = 60
)

func decode6(r *Record, p []byte) ([]byte, error) {
	if len(p) < 40 {
		return nil, fmt.Errorf("IPv6 packet of %d bytes: %w", len(p), ErrNotIP)
	}
	r.Src = netip.AddrFrom16([16]byte(p[8:24]))
	r.Dst = netip.AddrFrom16([16]byte(p[24:40]))
	next, rest := p[6], p[40:]
	for {
		switch next {
		case hopByHop, routing, destOptions:
			if len(rest) < 8 {
				r.Protocol = next
				return nil, nil
			}
			n := (int(rest[1]) + 1) * 8
			if n > len(rest) {
				r.Protocol = next
				return nil, nil
			}
			next, rest = rest[0], rest[n:]
		case fragment:
			if len(rest) < 8 {
				r.Protocol = next
				return nil, nil
			}
			offset := binary.BigEndian.Uint16(rest[2:4]) >> 3
			next, rest = rest[0], rest[8:]
			if offset != 0 {
				r.Protocol = next
				return nil, nil
			}
		default:
			r.Protocol = next
			return rest, nil
		}
	}
}
