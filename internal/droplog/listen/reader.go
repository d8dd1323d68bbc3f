package listen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/florianl/go-nflog/v2"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/droplog"
)

// Reader receives the records of one NFLOG group in one network namespace.
type Reader struct {
	conn *nflog.Nflog
	// Lost counts records the socket could not take (the kernel reports an
	// overrun: its buffer was full) and kube-fence records that could not be
	// decoded (Undecodable counts those alone). Records of other programs
	// sharing the group are ignored.
	Lost, Undecodable atomic.Uint64

	done chan struct{}
	err  error
}

// rcvBuf is the socket's receive buffer: about 8,000 records.
const rcvBuf = 4 << 20

// snapLen is how much of each packet the kernel copies: enough for an IPv6
// header, a few extension headers and the ports.
const snapLen = 128

// Open opens an NFLOG socket in the network namespace held by netnsFD (0:
// the caller's); Start binds it to a group.
func Open(netnsFD int, group uint16) (*Reader, error) {
	conn, err := nflog.Open(&nflog.Config{
		NetNS:    netnsFD,
		Group:    group,
		Copymode: nflog.CopyPacket,
		Bufsize:  snapLen,
		// Hand each record over at once rather than batching up to a
		// second: a user watching a timeout wants its log line now, and
		// the table's rate limit bounds how many there are.
		QThresh: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("open NFLOG socket: %w", err)
	}
	// A burst of denied connections (a scan, a restarted client pool)
	// arrives faster than one goroutine logs it: a large buffer absorbs
	// it, rather than the records being lost. FORCE passes rmem_max with
	// CAP_NET_ADMIN, which the agent has; without it the default stays.
	if raw, err := conn.Con.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf)
		})
	}
	return &Reader{conn: conn, done: make(chan struct{})}, nil
}

// Start binds the socket to its group and hands every kube-fence record to
// fn, on a goroutine of its own, until ctx ends or reading fails; the socket
// is closed then. Once Start has returned nil, every record the kernel logs
// reaches fn. fn must not block for long.
func (r *Reader) Start(ctx context.Context, fn func(droplog.Record)) error {
	hook := func(a nflog.Attribute) int {
		if a.Prefix == nil || a.Payload == nil {
			return 0
		}
		at := time.Now()
		if a.Timestamp != nil {
			at = *a.Timestamp
		}
		rec, err := droplog.Decode(*a.Prefix, *a.Payload, at)
		switch {
		case errors.Is(err, droplog.ErrForeign):
		case err != nil:
			r.Lost.Add(1)
			r.Undecodable.Add(1)
		default:
			fn(rec)
		}
		return 0
	}
	var once sync.Once
	stop := func(err error) {
		once.Do(func() {
			r.err = err
			r.conn.Close()
			close(r.done)
		})
	}
	onError := func(err error) int {
		if ctx.Err() != nil {
			stop(nil)
			return 1
		}
		if errors.Is(err, unix.ENOBUFS) { // the receive buffer overflowed: reading goes on
			r.Lost.Add(1)
			return 0
		}
		stop(fmt.Errorf("read NFLOG: %w", err))
		return 1
	}
	if err := r.conn.RegisterWithErrorFunc(ctx, hook, onError); err != nil {
		r.conn.Close()
		return fmt.Errorf("bind NFLOG group: %w", err)
	}
	context.AfterFunc(ctx, func() { stop(nil) })
	return nil
}

// Done is closed once reading has stopped; Err then says why (nil when ctx
// ended).
func (r *Reader) Done() <-chan struct{} { return r.done }

// Err is the error that stopped reading, once Done is closed.
func (r *Reader) Err() error {
	<-r.done
	return r.err
}
