package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/netns"
)

// MethodSCTPInit marks probes made by sending a crafted SCTP INIT from a raw
// socket and watching for it with a raw socket at the destination: connected
// means the INIT arrived, not that an association was set up.
const MethodSCTPInit = "sctp-init"

// Target is one probe: from a pod to one address, protocol and port of
// another.
type Target struct {
	From     string          `json:"from"` // namespace/name
	To       string          `json:"to"`
	Family   corev1.IPFamily `json:"family"`
	IP       netip.Addr      `json:"ip"`
	Protocol corev1.Protocol `json:"protocol"`
	Port     int32           `json:"port"`
}

// Result is what a probe saw.
type Result struct {
	Target
	Connected bool `json:"connected"`
	// Method is MethodSCTPInit for SCTP probes, empty for TCP (connect and
	// read the identity) and UDP (send and await the identity, once retried).
	Method string `json:"method,omitempty"`
	// Problem is set when something other than the destination answered,
	// which points at the lab's wiring rather than at policy.
	Problem string `json:"problem,omitempty"`
	// DroppedBy is, for a blocked probe, where the kernel logged that its
	// packets were dropped: "egress", "ingress" or "unknown-address"; empty
	// when nothing logged a drop (or the enforcer does not log drops).
	DroppedBy string `json:"dropped_by,omitempty"`
	// AuditDenied is set on a connected probe that NetworkPolicies in audit
	// mode would deny: the kernel logged it as "would deny".
	AuditDenied bool `json:"audit_denied,omitempty"`
}

// Net connects the servers and probes of one lab: SCTP receivers report the
// INITs they see to the probes waiting for them, and UDP probes take their
// source ports from it.
type Net struct {
	mu       sync.Mutex
	waiters  map[initKey]chan struct{}
	udpPorts map[udpFlow]uint16
}

// udpFlow is what a UDP probe's conntrack entry is keyed on, less the
// source port (the source address follows from the pod and the family).
type udpFlow struct {
	from string
	dst  netip.AddrPort
}

// The Linux ephemeral port range, where UDP probes take their source ports.
const (
	firstEphemeral = 32768
	ephemeralPorts = 60999 - firstEphemeral + 1
)

type initKey struct {
	dst              netip.Addr
	dstPort, srcPort uint16
	tag              uint32
}

// NewNet returns an empty Net.
func NewNet() *Net {
	return &Net{waiters: map[initKey]chan struct{}{}, udpPorts: map[udpFlow]uint16{}}
}

// nextUDPPort returns the source port for the next UDP probe of a flow.
//
// A UDP probe must be a new flow to conntrack. Once a probe was answered,
// its conntrack entry is established for 30 s (nf_conntrack_udp_timeout),
// and a later probe that happened to get the same source port from the
// kernel's random choice would pass as part of it, even after a policy
// change denied the flow: a "connected" that no new connection would see.
// So each flow walks the ephemeral range in turn from a random start, and
// repeats a port only after 28232 probes of that very flow.
func (n *Net) nextUDPPort(f udpFlow) uint16 {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.udpPorts[f]
	if !ok {
		p = uint16(firstEphemeral + rand.IntN(ephemeralPorts))
	}
	next := p + 1
	if next >= firstEphemeral+ephemeralPorts {
		next = firstEphemeral
	}
	n.udpPorts[f] = next
	return p
}

func (n *Net) expect(k initKey) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	n.mu.Lock()
	n.waiters[k] = ch
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		if n.waiters[k] == ch {
			delete(n.waiters, k)
		}
		n.mu.Unlock()
	}
}

func (n *Net) seen(k initKey) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch, ok := n.waiters[k]; ok {
		close(ch)
		delete(n.waiters, k)
	}
}

// Probe runs one probe from inside src. timeout bounds the whole probe; UDP
// and SCTP send a second time halfway through it. The error is for failures
// of the lab itself (a socket that cannot be made, ctx cancelled), never for
// a connection that did not happen.
func (n *Net) Probe(ctx context.Context, src *netns.NS, t Target, timeout time.Duration) (Result, error) {
	deadline := time.Now().Add(timeout)
	var r Result
	var err error
	switch t.Protocol {
	case corev1.ProtocolTCP:
		r, err = probeTCP(ctx, src, t, deadline)
	case corev1.ProtocolUDP:
		r, err = n.probeUDP(ctx, src, t, deadline)
	case corev1.ProtocolSCTP:
		r, err = n.probeSCTP(ctx, src, t, deadline)
	default:
		return Result{Target: t}, fmt.Errorf("probe %s -> %s: protocol %q cannot be probed", t.From, t.To, t.Protocol)
	}
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	if err != nil {
		return r, fmt.Errorf("probe %s -> %s %s/%d (%s): %w", t.From, t.To, t.Protocol, t.Port, t.IP, err)
	}
	return r, nil
}

// checkAnswer records whether the destination itself answered.
func (r *Result) checkAnswer(answer []byte) {
	got := strings.TrimSpace(string(answer))
	if got == r.To {
		r.Connected = true
		return
	}
	r.Problem = fmt.Sprintf("%q answered instead of %s", got, r.To)
}

func probeTCP(ctx context.Context, src *netns.NS, t Target, deadline time.Time) (Result, error) {
	r := Result{Target: t}
	f, err := tcpSocket(src, t.IP)
	if err != nil {
		return r, err
	}
	defer f.Close()
	if err := f.SetDeadline(deadline); err != nil {
		return r, fmt.Errorf("socket is not pollable: %w", err)
	}
	defer context.AfterFunc(ctx, func() { _ = f.SetDeadline(time.Unix(1, 0)) })()
	rc, err := f.SyscallConn()
	if err != nil {
		return r, err
	}
	if !connect(rc, netip.AddrPortFrom(t.IP, uint16(t.Port))) {
		return r, nil
	}
	answer := make([]byte, 0, 256)
	buf := make([]byte, 256)
	for len(answer) < 256 {
		nr, err := f.Read(buf)
		answer = append(answer, buf[:nr]...)
		if err != nil {
			break // EOF once the server closed, or the deadline
		}
	}
	r.checkAnswer(answer)
	return r, nil
}

// tcpSocket makes a non-blocking TCP socket inside ns and hands it to the
// runtime poller, so the connect can be waited for outside the namespace.
func tcpSocket(ns *netns.NS, ip netip.Addr) (*os.File, error) {
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	var fd int
	if err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		return nil, fmt.Errorf("tcp socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "tcp-probe"), nil
}

// connect starts a non-blocking connect and waits until it completes, fails
// or reaches the file's deadline; it reports whether it completed.
func connect(rc interface {
	Control(func(uintptr)) error
	Write(func(uintptr) bool) error
}, dst netip.AddrPort) bool {
	var cerr error
	_ = rc.Control(func(fd uintptr) { cerr = unix.Connect(int(fd), sockaddr(dst)) })
	if cerr != nil && !errors.Is(cerr, unix.EINPROGRESS) {
		return false // unreachable at once
	}
	connected := false
	err := rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil || v != 0 {
			return true // refused, unreachable
		}
		if _, err := unix.Getpeername(int(fd)); err != nil {
			return false // still connecting: wait for writability
		}
		connected = true
		return true
	})
	return err == nil && connected
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func (n *Net) probeUDP(ctx context.Context, src *netns.NS, t Target, deadline time.Time) (Result, error) {
	r := Result{Target: t}
	dst := netip.AddrPortFrom(t.IP, uint16(t.Port))
	var conn *net.UDPConn
	if err := src.Do(func() error {
		var err error
		// A port another probe of this pod holds right now is skipped.
		for range 64 {
			local := &net.UDPAddr{Port: int(n.nextUDPPort(udpFlow{from: t.From, dst: dst}))}
			conn, err = net.DialUDP("udp", local, net.UDPAddrFromAddrPort(dst))
			if !errors.Is(err, unix.EADDRINUSE) {
				break
			}
		}
		return err
	}); err != nil {
		return r, fmt.Errorf("udp socket: %w", err)
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })()
	buf := make([]byte, 512)
	for attempt, wait := range halves(deadline) {
		if _, err := conn.Write([]byte("probe " + t.From)); err != nil {
			return r, nil // ICMP unreachable from an earlier attempt, say
		}
		_ = conn.SetReadDeadline(wait)
		nr, err := conn.Read(buf)
		if err == nil {
			r.checkAnswer(buf[:nr])
			return r, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || attempt == 1 || ctx.Err() != nil {
			return r, nil // refused (ICMP port unreachable), or out of time
		}
	}
	return r, nil
}

// halves splits the time left into two attempts: the first ends halfway.
func halves(deadline time.Time) []time.Time {
	left := time.Until(deadline)
	return []time.Time{time.Now().Add(left / 2), deadline}
}

func (n *Net) probeSCTP(ctx context.Context, src *netns.NS, t Target, deadline time.Time) (Result, error) {
	r := Result{Target: t, Method: MethodSCTPInit}
	network := "ip4:132"
	if t.IP.Is6() {
		network = "ip6:132"
	}
	var conn *net.IPConn
	if err := src.Do(func() error {
		var err error
		conn, err = net.DialIP(network, nil, &net.IPAddr{IP: t.IP.AsSlice()})
		return err
	}); err != nil {
		return r, fmt.Errorf("raw SCTP socket: %w", err)
	}
	defer conn.Close()
	k := initKey{
		dst: t.IP, dstPort: uint16(t.Port),
		srcPort: uint16(32768 + rand.IntN(28232)), // the Linux ephemeral range
		tag:     rand.Uint32() | 1,                // never 0
	}
	arrived, cancel := n.expect(k)
	defer cancel()
	pkt := buildINIT(k.srcPort, k.dstPort, k.tag)
	for _, wait := range halves(deadline) {
		// A lost INIT is retransmitted unchanged, as SCTP itself does.
		if _, err := conn.Write(pkt); err != nil {
			return r, nil // unreachable
		}
		timer := time.NewTimer(time.Until(wait))
		select {
		case <-arrived:
			timer.Stop()
			r.Connected = true
			return r, nil
		case <-ctx.Done():
			timer.Stop()
			return r, ctx.Err()
		case <-timer.C:
		}
	}
	return r, nil
}
