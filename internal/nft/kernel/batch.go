package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// google/nftables v0.3.0 encodes every nftables message we need but cannot set
// table flags (owner, persist: added upstream after that release) and reports
// a failed batch without saying which message failed. So it serves here as
// the encoder only: it builds a batch against a capturing fake socket, and we
// send that batch on our own netlink socket, setting the table flags and
// matching each error to the message that caused it.

var msgNewTable = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE)

// setTableFlags rewrites the NFTA_TABLE_FLAGS attribute of every NEWTABLE
// message in msgs.
func setTableFlags(msgs []netlink.Message, flags uint32) error {
	for i := range msgs {
		if msgs[i].Header.Type != msgNewTable {
			continue
		}
		const nfgenLen = 4 // struct nfgenmsg precedes the attributes
		ad, err := netlink.NewAttributeDecoder(msgs[i].Data[nfgenLen:])
		if err != nil {
			return fmt.Errorf("decode NEWTABLE: %w", err)
		}
		ae := netlink.NewAttributeEncoder()
		for ad.Next() {
			if ad.Type() == unix.NFTA_TABLE_FLAGS {
				ae.Bytes(unix.NFTA_TABLE_FLAGS, binary.BigEndian.AppendUint32(nil, flags))
				continue
			}
			ae.Bytes(ad.Type(), ad.Bytes())
		}
		attrs, err := ae.Encode()
		if err != nil {
			return fmt.Errorf("encode NEWTABLE: %w", err)
		}
		msgs[i].Data = append(append([]byte{}, msgs[i].Data[:nfgenLen]...), attrs...)
	}
	return nil
}

// BatchError is a transaction the kernel refused. The kernel applies all of a
// batch or none of it, so after a BatchError the table is as it was.
type BatchError struct {
	Failures []MessageError
}

// MessageError is one refused message of a batch.
type MessageError struct {
	Message string // what the message did, e.g. "add element to set egress-pods-v4"
	Errno   unix.Errno
	Detail  string // the kernel's extended ack text, if any
}

func (e *BatchError) Error() string {
	parts := make([]string, 0, len(e.Failures))
	for i, f := range e.Failures {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(e.Failures)-i))
			break
		}
		s := fmt.Sprintf("%s: %v", f.Message, f.Errno)
		if f.Detail != "" {
			s += " (" + f.Detail + ")"
		}
		parts = append(parts, s)
	}
	return "nftables transaction refused: " + strings.Join(parts, "; ")
}

// Is lets errors.Is(err, unix.EPERM) and friends see through a BatchError.
func (e *BatchError) Is(target error) bool {
	for _, f := range e.Failures {
		if f.Errno == target {
			return true
		}
	}
	return false
}

// sendBatch sends msgs (as captured, including batch begin and end) as one
// transaction on sock and waits for the kernel's verdict. Only the last real
// message asks for an acknowledgement: the kernel reports failures without
// being asked, and one ack per message would overflow the socket buffer on
// large batches.
func sendBatch(sock *netlink.Conn, msgs []netlink.Message, describe func(netlink.Message) string) error {
	if len(msgs) < 3 {
		return nil // only begin and end: nothing to do
	}
	last := len(msgs) - 2 // the message before batch end
	if msgs[last+1].Header.Type != nft.MsgBatchEnd {
		return errors.New("malformed batch: no batch end message")
	}
	// The batch is marshalled here into one buffer and sent with one
	// sendmsg, numbered by us: netlink.Conn.SendMessages marshals each
	// message apart first, which doubled the bytes a big batch allocates.
	first := batchSeq.Add(uint32(len(msgs))) - uint32(len(msgs)) + 1
	size := 0
	for i := range msgs {
		size += nlmsgAlign(16 + len(msgs[i].Data))
	}
	buf := make([]byte, 0, size)
	bySeq := make(map[uint32]netlink.Message, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		m.Header.Sequence, m.Header.PID = first+uint32(i), 0
		m.Header.Flags &^= netlink.Acknowledge | netlink.Echo
		if i == last {
			m.Header.Flags |= netlink.Acknowledge
		}
		m.Header.Length = uint32(16 + len(m.Data))
		buf = binary.NativeEndian.AppendUint32(buf, m.Header.Length)
		buf = binary.NativeEndian.AppendUint16(buf, uint16(m.Header.Type))
		buf = binary.NativeEndian.AppendUint16(buf, uint16(m.Header.Flags))
		buf = binary.NativeEndian.AppendUint32(buf, m.Header.Sequence)
		buf = binary.NativeEndian.AppendUint32(buf, 0)
		buf = append(buf, m.Data...)
		for len(buf)%4 != 0 {
			buf = append(buf, 0)
		}
		bySeq[m.Header.Sequence] = *m
	}
	if err := growBuffers(sock, size); err != nil {
		return err
	}
	if err := sendRaw(sock, buf); err != nil {
		return fmt.Errorf("send nftables batch of %d messages: %w", len(msgs), err)
	}
	lastSeq := first + uint32(last)
	var failures []MessageError
	for {
		replies, err := receiveRaw(sock)
		if err != nil {
			return fmt.Errorf("receive nftables batch result: %w", err)
		}
		for _, r := range replies {
			seq, errno, detail, ok := parseAck(r)
			if !ok || seq < first || seq > lastSeq {
				continue // a late reply to an earlier batch
			}
			if errno != 0 {
				failures = append(failures, MessageError{Message: describe(bySeq[seq]), Errno: errno, Detail: detail})
			}
			if seq == lastSeq || (seq == first && errno != 0) {
				if len(failures) > 0 {
					return &BatchError{Failures: failures}
				}
				return nil
			}
		}
	}
}

// batchSeq numbers batch messages; it only has to differ between batches
// in flight on one socket.
var batchSeq atomic.Uint32

func nlmsgAlign(n int) int { return (n + 3) &^ 3 }

// sendRaw sends one datagram to the kernel on sock.
func sendRaw(sock *netlink.Conn, b []byte) error {
	rc, err := sock.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), b, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
		return serr != unix.EAGAIN && serr != unix.EWOULDBLOCK
	})
	if err == nil {
		err = serr
	}
	return err
}

// growBuffers makes the socket's send buffer hold the whole batch, which the
// kernel requires (one batch is one sendmsg), as nft does.
func growBuffers(sock *netlink.Conn, size int) error {
	rc, err := sock.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		cur, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
		if cur >= size {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("grow netlink send buffer to %d bytes: %w", size, err)
	}
	return nil
}

// receiveRaw reads one datagram and splits it into messages without turning
// error messages into Go errors, so the sequence number of the failed request
// stays visible.
func receiveRaw(sock *netlink.Conn) ([]netlink.Message, error) {
	rc, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 1<<16)
	var n int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
		return rerr != unix.EAGAIN && rerr != unix.EWOULDBLOCK
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	var msgs []netlink.Message
	b := buf[:n]
	for len(b) >= 16 {
		l := int(binary.NativeEndian.Uint32(b[:4]))
		if l < 16 || l > len(b) {
			return nil, fmt.Errorf("malformed netlink message of length %d", l)
		}
		var m netlink.Message
		if err := m.UnmarshalBinary(b[:l]); err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
		b = b[min((l+3)&^3, len(b)):]
	}
	return msgs, nil
}

// parseAck decodes an NLMSG_ERROR message: the errno (0 for an ack), the
// sequence number of the request it answers, and the extended ack text.
func parseAck(m netlink.Message) (seq uint32, errno unix.Errno, detail string, ok bool) {
	if m.Header.Type != netlink.Error || len(m.Data) < 4+16 {
		return 0, 0, "", false
	}
	code := int32(binary.NativeEndian.Uint32(m.Data[:4]))
	seq = binary.NativeEndian.Uint32(m.Data[4+8 : 4+12])
	if code < 0 {
		errno = unix.Errno(-code)
	}
	// The request's header (capped) or whole message, then ack TLVs.
	off := 4 + 16
	if m.Header.Flags&netlink.Capped == 0 {
		off = 4 + int(binary.NativeEndian.Uint32(m.Data[4:8]))
	}
	if m.Header.Flags&netlink.AcknowledgeTLVs != 0 && off < len(m.Data) {
		if ad, err := netlink.NewAttributeDecoder(m.Data[(off+3)&^3:]); err == nil {
			for ad.Next() {
				if ad.Type() == unix.NLMSGERR_ATTR_MSG {
					detail = ad.String()
				}
			}
		}
	}
	return seq, errno, detail, true
}
