package conntrack

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Conn is a conntrack netlink socket in one network namespace.
type Conn struct {
	c *ct.Conn
}

// Dial opens a conntrack netlink socket. netnsFD < 0 means the calling
// thread's namespace; otherwise it is a file descriptor of a network
// namespace.
func Dial(netnsFD int) (*Conn, error) {
	cfg := &netlink.Config{}
	if netnsFD >= 0 {
		cfg.NetNS = netnsFD
	}
	c, err := ct.Dial(cfg)
	if err != nil {
		return nil, fmt.Errorf("open conntrack netlink socket: %w", err)
	}
	// A node may hold hundreds of thousands of entries: a large buffer
	// keeps the dump from overrunning it.
	_ = c.SetReadBuffer(8 << 20)
	return &Conn{c: c}, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.c.Close() }

// Result says what Cut did.
type Result struct {
	Entries int           // conntrack entries listed, every family and protocol
	Judged  int           // of those, TCP and UDP entries that still carry data
	Cut     []Flow        // flows whose entries were deleted
	Gone    int           // denied entries that ended by themselves before their deletion
	Spared  int           // denied at the listing, allowed again at their deletion (a newer verdict)
	Took    time.Duration // listing, judging and deleting
}

// Flows lists the flows of the entries Cut would judge.
func (c *Conn) Flows() ([]Flow, error) {
	entries, err := c.c.Dump(nil)
	if err != nil {
		return nil, fmt.Errorf("list conntrack entries: %w", err)
	}
	var out []Flow
	for _, e := range entries {
		if f, ok := judged(e); ok {
			out = append(out, f)
		}
	}
	return out, nil
}

// Cut lists the namespace's conntrack entries, both families, and deletes
// each one whose flow allowed refuses, so that the next packet of that
// connection is judged by the table again (and dropped, if the table agrees
// with allowed). An entry is deleted by its tuple and kernel ID, so a new
// connection that reused the tuple in the meantime is left alone. It goes on
// after a failed deletion and returns every failure joined.
//
// allowed may change its mind while Cut runs (a caller that judges with the
// latest committed verdict): each entry found denied is judged again right
// before its deletion, with guard held (when not nil) across that judgement
// and the deletion, so a caller that takes the other side of guard around
// changing the verdict never sees an entry deleted under a verdict it had
// already replaced.
func (c *Conn) Cut(allowed Allowed, guard sync.Locker) (Result, error) {
	start := time.Now()
	entries, err := c.c.Dump(nil)
	if err != nil {
		return Result{}, fmt.Errorf("list conntrack entries: %w", err)
	}
	cut, flows, n := denied(entries, allowed)
	res := Result{Entries: len(entries), Judged: n}
	var errs []error
	for i, e := range cut {
		if spared, err := c.deleteDenied(e, flows[i], allowed, guard); spared {
			res.Spared++
		} else {
			switch {
			case err == nil:
				res.Cut = append(res.Cut, flows[i])
			case errors.Is(err, unix.ENOENT):
				res.Gone++
			default:
				errs = append(errs, fmt.Errorf("delete conntrack entry of %s: %w", flows[i], err))
			}
		}
	}
	res.Took = time.Since(start)
	return res, errors.Join(errs...)
}

// deleteDenied deletes e unless allowed now accepts f, and reports whether
// it spared it instead.
func (c *Conn) deleteDenied(e ct.Flow, f Flow, allowed Allowed, guard sync.Locker) (spared bool, err error) {
	if guard != nil {
		guard.Lock()
		defer guard.Unlock()
	}
	if allowed(f) {
		return true, nil
	}
	// Both tuples: the library takes the request's family from them.
	return false, c.c.Delete(ct.Flow{ID: e.ID, Zone: e.Zone, TupleOrig: e.TupleOrig, TupleReply: e.TupleReply})
}
