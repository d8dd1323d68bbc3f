package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// flowPort is the UDP port the flow prober uses. No pod declares it, so only
// policies without a port list (all ports) decide these flows.
const flowPort = 7777

// flowInterval is the gap between two datagrams of one flow: 500 per second.
const flowInterval = 2 * time.Millisecond

// A flow is a stream of UDP datagrams from one pod to another, each datagram
// a fresh policy decision: nothing ever answers, so the connection-tracking
// entry never becomes established and no datagram can ride on an earlier
// verdict. Unlike connection probes, which take a probe timeout each, a flow
// notices a single packet let through for a millisecond.
type flow struct {
	from, to podSpec
	allowed  bool // what the policy in force says

	mu       sync.Mutex
	sent     int
	received int
	last     time.Time     // last datagram received
	maxGap   time.Duration // longest silence between two received datagrams
}

func (f *flow) String() string {
	return fmt.Sprintf("%s -> %s (%s)", f.from.key(), f.to.key(), map[bool]string{true: "allowed", false: "denied"}[f.allowed])
}

// flowCounts is what a flow had seen at one instant.
type flowCounts struct{ sent, received int }

// prober runs flows until stopped.
type prober struct {
	t         *testing.T
	flows     []*flow
	receivers []*net.UDPConn
	senders   []*net.UDPConn
	stop      chan struct{}
	sending   sync.WaitGroup
	receiving sync.WaitGroup
}

// startProber opens a receiver in every destination pod and a sender in
// every source pod (sockets made inside the pods' network namespaces) and
// starts sending. The prober is stopped in t.Cleanup at the latest.
func (c *env) startProber(flows ...*flow) *prober {
	c.t.Helper()
	p := &prober{t: c.t, flows: flows, stop: make(chan struct{})}
	c.t.Cleanup(p.close)
	receivers := map[string]bool{}
	for _, f := range flows {
		if receivers[f.to.key()] {
			continue
		}
		receivers[f.to.key()] = true
		conn := c.udpIn(f.to.key(), func() (*net.UDPConn, error) {
			return net.ListenUDP("udp4", &net.UDPAddr{Port: flowPort})
		})
		forceReadBuffer(c.t, conn, 8<<20)
		p.receivers = append(p.receivers, conn)
		p.receiving.Add(1)
		go p.receive(conn)
	}
	for _, f := range flows {
		dst := netip.AddrPortFrom(netip.MustParseAddr(f.to.ips()[0]), flowPort)
		conn := c.udpIn(f.from.key(), func() (*net.UDPConn, error) {
			return net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		})
		p.senders = append(p.senders, conn)
		p.sending.Add(1)
		go p.send(f, conn)
	}
	return p
}

// udpIn makes a socket inside a pod's network namespace; it stays there
// whichever goroutine uses it afterwards.
func (c *env) udpIn(pod string, open func() (*net.UDPConn, error)) *net.UDPConn {
	c.t.Helper()
	ns := c.lab.PodNS(pod)
	if ns == nil {
		c.t.Fatalf("prober: no running pod %s in the lab", pod)
	}
	var conn *net.UDPConn
	err := ns.Do(func() error {
		var err error
		conn, err = open()
		return err
	})
	if err != nil {
		c.t.Fatalf("prober: socket in pod %s: %v", pod, err)
	}
	return conn
}

func (p *prober) send(f *flow, conn *net.UDPConn) {
	defer p.sending.Done()
	tick := time.NewTicker(flowInterval)
	defer tick.Stop()
	id := strconv.Itoa(p.index(f))
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		// A drop by policy is silent; a local error (no buffer space) is
		// not a datagram sent.
		if _, err := conn.Write([]byte(id)); err == nil {
			f.mu.Lock()
			f.sent++
			f.mu.Unlock()
		}
	}
}

func (p *prober) receive(conn *net.UDPConn) {
	defer p.receiving.Done()
	buf := make([]byte, 64)
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.t.Errorf("prober: receive: %v", err)
			}
			return
		}
		i, err := strconv.Atoi(string(buf[:n]))
		if err != nil || i < 0 || i >= len(p.flows) {
			continue
		}
		f, now := p.flows[i], time.Now()
		f.mu.Lock()
		if !f.last.IsZero() {
			f.maxGap = max(f.maxGap, now.Sub(f.last))
		}
		f.received++
		f.last = now
		f.mu.Unlock()
	}
}

func (p *prober) index(f *flow) int {
	for i, g := range p.flows {
		if g == f {
			return i
		}
	}
	return -1
}

// counts returns every flow's counters now.
func (p *prober) counts() []flowCounts {
	out := make([]flowCounts, len(p.flows))
	for i, f := range p.flows {
		f.mu.Lock()
		out[i] = flowCounts{f.sent, f.received}
		f.mu.Unlock()
	}
	return out
}

// close stops the senders, waits for the datagrams in flight to arrive,
// then stops the receivers.
func (p *prober) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.sending.Wait()
	time.Sleep(50 * time.Millisecond)
	for _, c := range append(p.senders, p.receivers...) {
		c.Close()
	}
	p.receiving.Wait()
}

// phase checks the flows between two instants: no datagram of a denied flow
// arrived, and every allowed flow kept delivering. It returns a summary for
// the log.
func (p *prober) phase(name string, from, to []flowCounts) string {
	p.t.Helper()
	var b strings.Builder
	for i, f := range p.flows {
		sent, got := to[i].sent-from[i].sent, to[i].received-from[i].received
		switch {
		case !f.allowed && got > 0:
			p.t.Errorf("%s: %d datagrams of denied flow %s got through (of %d sent)", name, got, f, sent)
		case f.allowed && got == 0:
			p.t.Errorf("%s: allowed flow %s delivered nothing (of %d sent)", name, f, sent)
		}
		fmt.Fprintf(&b, " [%s %d/%d]", f, got, sent)
	}
	return name + ":" + b.String()
}

// summary checks, after close, that no datagram of an allowed flow was
// lost over the whole run (the table was never wrong in the allowing
// direction), and reports each allowed flow's longest silence, which on a
// busy 2-core machine is mostly the sender waiting for a CPU.
func (p *prober) summary() string {
	p.t.Helper()
	var parts []string
	for _, f := range p.flows {
		if !f.allowed {
			continue
		}
		f.mu.Lock()
		if lost := f.sent - f.received; lost != 0 {
			p.t.Errorf("allowed flow %s: %d of %d datagrams lost", f, lost, f.sent)
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d delivered, longest silence %v", f, f.received, f.sent, f.maxGap.Round(time.Millisecond)))
		f.mu.Unlock()
	}
	return strings.Join(parts, "; ")
}

// forceReadBuffer sizes a receiver's socket buffer past net.core.rmem_max
// (SO_RCVBUFFORCE, as root): 8 MiB holds many seconds of datagrams, so a
// receiver goroutine waiting for a CPU on a busy machine loses none.
func forceReadBuffer(t *testing.T, conn *net.UDPConn, size int) {
	t.Helper()
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	}); err != nil || serr != nil {
		t.Fatalf("prober: receive buffer: %v %v", err, serr)
	}
}
