// Package stream runs long-lived TCP connections and UDP flows between
// network namespaces that carry a numbered sequence continuously, so a test
// can tell when a connection stopped carrying data and whether a connection
// that went on lost, repeated or reordered a single byte. It serves the
// tests of connections open across a policy change (the conntrack cut).
package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/kube-fence/kube-fence/internal/netns"
)

// Echo is a TCP and a UDP echo server on one address.
type Echo struct {
	ln net.Listener
	pc net.PacketConn
	wg sync.WaitGroup
	mu sync.Mutex
	cs []net.Conn
}

// ServeEcho listens on addr's TCP and UDP port inside ns and echoes
// everything back until Close.
func ServeEcho(ns *netns.NS, addr netip.AddrPort) (*Echo, error) {
	e := &Echo{}
	if err := ns.Do(func() error {
		var err error
		if e.ln, err = net.Listen("tcp", addr.String()); err != nil {
			return err
		}
		e.pc, err = net.ListenPacket("udp", addr.String())
		return err
	}); err != nil {
		if e.ln != nil {
			e.ln.Close()
		}
		return nil, fmt.Errorf("echo server on %s: %w", addr, err)
	}
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		for {
			c, err := e.ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.cs = append(e.cs, c)
			e.mu.Unlock()
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	go func() {
		defer e.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := e.pc.ReadFrom(buf)
			if err != nil {
				return
			}
			e.pc.WriteTo(buf[:n], from)
		}
	}()
	return e, nil
}

// Close stops the servers and closes the connections they accepted.
func (e *Echo) Close() error {
	err := errors.Join(e.ln.Close(), e.pc.Close())
	e.mu.Lock()
	for _, c := range e.cs {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
	return err
}

// Stream is one connection to an echo server carrying 8-byte sequence
// numbers: TCP as a continuous byte stream, UDP as one datagram each.
type Stream struct {
	Name string
	conn net.Conn
	udp  bool
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	received uint64    // sequence numbers echoed back in order
	last     time.Time // when the last one came back
	err      error     // the first violation of the sequence or a failure
}

// Dial opens a stream from inside ns to dst over network ("tcp" or "udp")
// and starts sending at about rate sequence numbers per second.
func Dial(ns *netns.NS, network string, dst netip.AddrPort, rate int) (*Stream, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout(network, dst.String(), 2*time.Second)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s stream to %s: %w", network, dst, err)
	}
	s := &Stream{Name: fmt.Sprintf("%s %s -> %s", network, c.LocalAddr(), dst), conn: c, udp: network == "udp",
		stop: make(chan struct{}), last: time.Now()}
	s.wg.Add(2)
	go s.send(rate)
	go s.receive()
	return s, nil
}

// send writes the sequence in batches every 2ms. A TCP write blocks once a
// cut connection's buffers are full; Close ends it.
func (s *Stream) send(rate int) {
	defer s.wg.Done()
	const tick = 2 * time.Millisecond
	batch := max(1, rate*int(tick)/int(time.Second))
	if s.udp {
		batch = 1
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	var seq uint64
	buf := make([]byte, 8*batch)
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		for i := range batch {
			binary.BigEndian.PutUint64(buf[8*i:], seq)
			seq++
		}
		if _, err := s.conn.Write(buf); err != nil {
			s.fail(fmt.Errorf("write: %w", err))
			return
		}
	}
}

func (s *Stream) receive() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		var err error
		var n int
		if s.udp {
			n, err = s.conn.Read(buf)
		} else {
			n, err = io.ReadFull(s.conn, buf[:8])
		}
		if err != nil {
			s.fail(fmt.Errorf("read: %w", err))
			return
		}
		if n != 8 {
			s.fail(fmt.Errorf("read %d bytes, want 8", n))
			return
		}
		got := binary.BigEndian.Uint64(buf)
		s.mu.Lock()
		if got != s.received {
			if s.err == nil {
				s.err = fmt.Errorf("received sequence number %d, want %d: a byte was lost, repeated or reordered", got, s.received)
			}
			s.mu.Unlock()
			return
		}
		s.received++
		s.last = time.Now()
		s.mu.Unlock()
	}
}

func (s *Stream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stop:
		return // closing: not the connection's fault
	default:
	}
	if s.err == nil {
		s.err = err
	}
}

// State is what a stream has carried so far.
type State struct {
	Received uint64    // sequence numbers echoed back in order
	Last     time.Time // when the last one came back
	Err      error     // nil while every number came back in order
}

// State returns what the stream has carried so far.
func (s *Stream) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return State{s.received, s.last, s.err}
}

// Close ends the stream.
func (s *Stream) Close() {
	s.mu.Lock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.mu.Unlock()
	s.conn.Close()
	s.wg.Wait()
}

// Flowing reports whether the stream carries data: more numbers came back
// during window, in order.
func (s *Stream) Flowing(window time.Duration) (bool, State) {
	before := s.State()
	time.Sleep(window)
	after := s.State()
	return after.Err == nil && after.Received > before.Received, after
}
