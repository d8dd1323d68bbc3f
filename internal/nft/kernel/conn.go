package kernel

import (
	"errors"
	"fmt"
	"time"

	"github.com/kube-fence/kube-fence/internal/nft"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Ownership says whether kube-fence claims its table with the kernel's table
// flags. With owner, only kube-fence's socket may change the table and
// `nft flush ruleset` from anyone else leaves it alone; with persist, the
// table outlives the process (unowned until the next kube-fence adopts it),
// so pods stay protected across restarts.
type Ownership int

const (
	// OwnershipAuto sets owner and persist where the kernel supports both
	// (Linux 6.9 and later) and falls back to no flags elsewhere: owner
	// without persist would make the table vanish whenever kube-fence stops.
	OwnershipAuto Ownership = iota
	// OwnershipOff never sets the flags: anyone with CAP_NET_ADMIN may change
	// the table, and kube-fence repairs what they change.
	OwnershipOff
)

// Options configure a Conn.
type Options struct {
	// NetNSFD is a network namespace file descriptor to work in; 0 means the
	// calling process's namespace.
	NetNSFD   int
	Ownership Ownership

	// unsupportedFlags adds table flag bits the kernel does not know, which
	// makes it refuse the flags as a kernel older than 6.9 refuses persist.
	// Tests use it to exercise the fallback.
	unsupportedFlags uint32
}

// Conn keeps kube-fence's table in one network namespace equal to a desired
// Table. It is not safe for concurrent use: one goroutine owns it, as one
// writer owns the table.
type Conn struct {
	opts  Options
	write *netlink.Conn // sends every transaction; owns the table
	read  *netlink.Conn // dumps and lookups: table, sets, elements, chains, rules

	flags        uint32     // table flags we set
	flagsChecked bool       // whether the kernel accepted flags at least once
	committed    *nft.Table // what the last transaction left; nil when unknown
}

// ErrOwnedElsewhere means another live process owns kube-fence's table, for
// example a second agent on the same node.
var ErrOwnedElsewhere = errors.New("table is owned by another process")

// Open opens the netlink sockets. It does not touch the kernel's ruleset.
func Open(opts Options) (*Conn, error) {
	cfg := &netlink.Config{NetNS: opts.NetNSFD}
	write, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	_ = write.SetOption(netlink.ExtendedAcknowledge, true)
	_ = write.SetOption(netlink.CapAcknowledge, true)
	read, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	_ = read.SetOption(netlink.ExtendedAcknowledge, true)
	// Dumps of big sets and element lookups answer with many messages.
	_ = read.SetReadBuffer(4 << 20)
	c := &Conn{opts: opts, write: write, read: read}
	if opts.Ownership == OwnershipAuto {
		c.flags = tableFlagOwner | tableFlagPersist | opts.unsupportedFlags
	}
	return c, nil
}

// Close closes the sockets. With ownership, the table stays (persist) but is
// unowned until another Conn adopts it.
func (c *Conn) Close() error {
	return errors.Join(c.write.Close(), c.read.Close())
}

// OwnershipState says which table flags are in use, for status reports.
func (c *Conn) OwnershipState() string {
	switch {
	case c.opts.Ownership == OwnershipOff:
		return "off"
	case c.flags == 0:
		return "unsupported by the kernel (needs Linux 6.9 for persist): table not owned"
	}
	return "owner,persist"
}

// Read returns the table as the kernel holds it, or nil when there is none.
func (c *Conn) Read() (*nft.Table, error) {
	info, err := readTableInfo(c.read)
	if err != nil || info == nil {
		return nil, err
	}
	return c.readContent()
}

func (c *Conn) readContent() (*nft.Table, error) {
	t := nft.NewTable()
	var err error
	if t.Sets, err = readSets(c.read, true); err != nil {
		return nil, err
	}
	if t.Chains, err = readChains(c.read); err != nil {
		return nil, err
	}
	return t, nil
}

// Sync makes the kernel's table equal to want. When the last transaction is
// known to have succeeded it sends only the difference from it; otherwise it
// reads the kernel's table back first, as Repair does.
func (c *Conn) Sync(want *nft.Table) (*nft.Result, error) {
	if c.committed == nil {
		return c.Repair(want)
	}
	return c.apply(want, nft.Diff(want, c.committed), false)
}

// Verify reads the table back and returns its differences from want. Sets
// are read and compared one at a time, so the kernel's copy of a big table
// is never held whole.
func (c *Conn) Verify(want *nft.Table) (*nft.Delta, error) {
	info, err := readTableInfo(c.read)
	if err != nil {
		return nil, err
	}
	if info == nil {
		return nft.Diff(want, nil), nil
	}
	have := nft.NewTable()
	if have.Sets, err = readSets(c.read, false); err != nil {
		return nil, err
	}
	if have.Chains, err = readChains(c.read); err != nil {
		return nil, err
	}
	return nft.DiffLoaded(want, have, func(h *nft.Set) (*nft.Set, error) {
		elems, err := readElems(c.read, h.Name, h.Type)
		return &nft.Set{Name: h.Name, Type: h.Type, Elems: elems}, err
	})
}

// Repair reads the table back and sends one transaction removing every
// difference from want, rebuilding the table when it cannot be mended in
// place or its flags are not the ones we set.
func (c *Conn) Repair(want *nft.Table) (*nft.Result, error) {
	c.committed = nil
	info, err := readTableInfo(c.read)
	if err != nil {
		return nil, err
	}
	if info == nil {
		return c.apply(want, nft.Diff(want, nil), false)
	}
	if info.Owner != 0 && info.Owner != portID(c.write) {
		return nil, fmt.Errorf("table inet %s: %w (netlink port %d); stop it first", nft.TableName, ErrOwnedElsewhere, info.Owner)
	}
	if !c.canKeep(info.Flags) {
		d := nft.Diff(want, nil)
		d.Differences = append(d.Differences[:0], fmt.Sprintf("table inet %s: flags %#x cannot become %#x in place", nft.TableName, info.Flags, c.flags))
		return c.apply(want, d, true)
	}
	have, err := c.readContent()
	if err != nil {
		return nil, err
	}
	d := nft.Diff(want, have)
	if d.Rebuild {
		rebuild := nft.Diff(want, nil)
		rebuild.Differences = d.Differences
		return c.apply(want, rebuild, true)
	}
	if info.Flags&tableFlagOwner == 0 && c.flags&tableFlagOwner != 0 {
		// An orphaned persistent table: the NEWTABLE in the transaction
		// adopts it.
		d.Differences = append(d.Differences, fmt.Sprintf("table inet %s: not owned; adopting it", nft.TableName))
	}
	return c.apply(want, d, false)
}

// Rebuild deletes the table and creates want in its place in one
// transaction, whatever the kernel holds: the way out when a repair from a
// read back was refused, because something in the table (a foreign object
// the read classifies as kube-fence's own) makes the kernel refuse what the
// difference would send. Packets meet the old table or the new one, never
// none. It refuses to take a table another live process owns.
func (c *Conn) Rebuild(want *nft.Table) (*nft.Result, error) {
	c.committed = nil
	info, err := readTableInfo(c.read)
	if err != nil {
		return nil, err
	}
	d := nft.Diff(want, nil)
	if info == nil {
		return c.apply(want, d, false)
	}
	if info.Owner != 0 && info.Owner != portID(c.write) {
		return nil, fmt.Errorf("table inet %s: %w (netlink port %d); stop it first", nft.TableName, ErrOwnedElsewhere, info.Owner)
	}
	d.Differences = append(d.Differences[:0], fmt.Sprintf("table inet %s: rebuilt after a refused repair", nft.TableName))
	return c.apply(want, d, true)
}

// canKeep reports whether an existing table with flags can be brought to our
// flags without deleting it: the kernel lets a new owner adopt an orphaned
// persistent table, and refuses any other change of owner or persist.
func (c *Conn) canKeep(flags uint32) bool {
	have := flags & (tableFlagOwner | tableFlagPersist)
	want := c.flags & (tableFlagOwner | tableFlagPersist)
	return have == want || (have == tableFlagPersist && want == tableFlagOwner|tableFlagPersist)
}

func (c *Conn) apply(want *nft.Table, d *nft.Delta, deleteTable bool) (*nft.Result, error) {
	res := &nft.Result{Delta: d, Rebuilt: deleteTable}
	if d.Empty() && !deleteTable {
		c.committed = want
		return res, nil
	}
	start := time.Now()
	err := c.send(want, d, deleteTable, res)
	if err != nil && c.flags != 0 && !c.flagsChecked && errors.Is(err, unix.EOPNOTSUPP) {
		// The kernel does not know persist (older than 6.9) or owner:
		// run without flags rather than with an owner that takes the
		// table down whenever we stop.
		c.flags = 0
		err = c.send(want, d, deleteTable, res)
	}
	res.Duration = time.Since(start)
	if err != nil {
		c.committed = nil
		return res, fmt.Errorf("apply table inet %s: %w", nft.TableName, err)
	}
	c.flagsChecked = true
	c.committed = want
	return res, nil
}

func (c *Conn) send(want *nft.Table, d *nft.Delta, deleteTable bool, res *nft.Result) error {
	msgs, err := nft.EncodeDelta(d, want, deleteTable)
	if err != nil {
		return err
	}
	if err := setTableFlags(msgs, c.flags); err != nil {
		return err
	}
	res.Messages, res.Bytes = len(msgs), 0
	for _, m := range msgs {
		res.Bytes += 16 + len(m.Data)
	}
	return sendBatch(c.write, msgs, nft.DescribeMessage)
}

// DeleteTable removes kube-fence's table and everything in it. It succeeds
// when there is no table.
func (c *Conn) DeleteTable() error {
	c.committed = nil
	info, err := readTableInfo(c.read)
	if err != nil || info == nil {
		return err
	}
	msgs, err := nft.EncodeDeleteTable()
	if err != nil {
		return err
	}
	if err := sendBatch(c.write, msgs, nft.DescribeMessage); err != nil {
		if errors.Is(err, unix.EPERM) && info.Owner != 0 {
			return fmt.Errorf("delete table inet %s: %w (netlink port %d); stop it first", nft.TableName, ErrOwnedElsewhere, info.Owner)
		}
		return fmt.Errorf("delete table inet %s: %w", nft.TableName, err)
	}
	return nil
}

// PortID returns the netlink port ID of the socket that sends every
// transaction. The kernel stamps it on the change notifications a
// transaction causes, so a monitor can tell kube-fence's own changes from
// other processes' without looking at process IDs, which differ between PID
// namespaces (the agent runs in a container's).
func (c *Conn) PortID() uint32 { return portID(c.write) }

// portID returns the socket's netlink port ID, which the kernel records as
// the owner of a table the socket created with the owner flag.
func portID(sock *netlink.Conn) uint32 {
	rc, err := sock.SyscallConn()
	if err != nil {
		return 0
	}
	var pid uint32
	_ = rc.Control(func(fd uintptr) {
		if sa, err := unix.Getsockname(int(fd)); err == nil {
			if nl, ok := sa.(*unix.SockaddrNetlink); ok {
				pid = nl.Pid
			}
		}
	})
	return pid
}
