package probe

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/netns"
)

// Server answers for one pod on every declared port of every one of its
// addresses.
type Server struct {
	identity string
	closers  []io.Closer
	wg       sync.WaitGroup
}

// Serve starts the servers of a pod inside ns: for each address and declared
// port, a TCP listener that writes identity and closes, or a UDP socket that
// answers every datagram with identity; for SCTP ports, one raw receiver per
// address that reports INITs to probes waiting on this Net.
func (n *Net) Serve(ns *netns.NS, identity string, ips []netip.Addr, ports []cluster.ContainerPort) (*Server, error) {
	s := &Server{identity: identity}
	var sctpPorts []uint16
	for _, p := range uniquePorts(ports) {
		for _, ip := range ips {
			var err error
			switch p.Protocol {
			case corev1.ProtocolTCP:
				err = s.serveTCP(ns, netip.AddrPortFrom(ip, uint16(p.Port)))
			case corev1.ProtocolUDP:
				err = s.serveUDP(ns, netip.AddrPortFrom(ip, uint16(p.Port)))
			case corev1.ProtocolSCTP:
				if !slices.Contains(sctpPorts, uint16(p.Port)) {
					sctpPorts = append(sctpPorts, uint16(p.Port))
				}
			default:
				err = fmt.Errorf("protocol %q is not served", p.Protocol)
			}
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("serve %s %s/%d on %s: %w", identity, p.Protocol, p.Port, ip, err)
			}
		}
	}
	if len(sctpPorts) > 0 {
		for _, ip := range ips {
			if err := s.receiveSCTP(n, ns, ip, sctpPorts); err != nil {
				s.Close()
				return nil, fmt.Errorf("serve %s SCTP on %s: %w", identity, ip, err)
			}
		}
	}
	return s, nil
}

// Close stops every server of the pod and waits for their goroutines.
func (s *Server) Close() error {
	var errs []error
	for _, c := range s.closers {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// uniquePorts drops repeated protocol/port pairs: two containers may
// declare the same port, and one socket serves both.
func uniquePorts(ports []cluster.ContainerPort) []cluster.ContainerPort {
	var out []cluster.ContainerPort
	for _, p := range ports {
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if !slices.ContainsFunc(out, func(q cluster.ContainerPort) bool { return q.Protocol == p.Protocol && q.Port == p.Port }) {
			out = append(out, p)
		}
	}
	return out
}

func (s *Server) serveTCP(ns *netns.NS, addr netip.AddrPort) error {
	var ln *net.TCPListener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		return err
	}); err != nil {
		return err
	}
	s.closers = append(s.closers, ln)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				time.Sleep(10 * time.Millisecond) // out of descriptors, say: try again
				continue
			}
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(c, s.identity+"\n")
			_ = c.Close()
		}
	}()
	return nil
}

func (s *Server) serveUDP(ns *netns.NS, addr netip.AddrPort) error {
	var conn *net.UDPConn
	if err := ns.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	}); err != nil {
		return err
	}
	s.closers = append(s.closers, conn)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 512)
		for {
			_, from, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue // an ICMP error queued on the socket, say
			}
			_, _ = conn.WriteToUDPAddrPort([]byte(s.identity), from)
		}
	}()
	return nil
}

// receiveSCTP opens a raw IP socket for protocol 132 bound to ip: with no
// SCTP in the kernel, raw sockets still get every SCTP packet delivered to
// the namespace, and having one stops the kernel answering "protocol
// unreachable". An INIT for a served port wakes the probe waiting for it.
func (s *Server) receiveSCTP(n *Net, ns *netns.NS, ip netip.Addr, ports []uint16) error {
	network := "ip4:132"
	if ip.Is6() {
		network = "ip6:132"
	}
	var conn *net.IPConn
	if err := ns.Do(func() error {
		var err error
		conn, err = net.ListenIP(network, &net.IPAddr{IP: ip.AsSlice()})
		return err
	}); err != nil {
		return err
	}
	s.closers = append(s.closers, conn)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 2048)
		for {
			nr, _, err := conn.ReadFromIP(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			srcPort, dstPort, tag, ok := parseINIT(buf[:nr])
			if ok && slices.Contains(ports, dstPort) {
				n.seen(initKey{dst: ip, dstPort: dstPort, srcPort: srcPort, tag: tag})
			}
		}
	}()
	return nil
}
