package probe

import (
	"encoding/binary"
	"hash/crc32"
)

// SCTP as far as a probe needs it (RFC 9260): a 12-byte common header
// (source port, destination port, verification tag, CRC32c checksum) and one
// 20-byte INIT chunk. An INIT carries verification tag 0 and its own
// initiate tag; conntrack's SCTP tracker checks both and the checksum.
const (
	sctpHeaderLen = 12
	initChunkLen  = 20
	chunkINIT     = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// buildINIT returns an SCTP packet holding one INIT chunk. The checksum is
// CRC32c over the whole packet with the checksum field zero, stored
// little-endian as the kernel does (sctp_compute_cksum).
func buildINIT(srcPort, dstPort uint16, tag uint32) []byte {
	b := make([]byte, sctpHeaderLen+initChunkLen)
	be := binary.BigEndian
	be.PutUint16(b[0:], srcPort)
	be.PutUint16(b[2:], dstPort)
	// b[4:8]: verification tag, 0 in a packet carrying INIT.
	c := b[sctpHeaderLen:]
	c[0] = chunkINIT
	be.PutUint16(c[2:], initChunkLen)
	be.PutUint32(c[4:], tag)   // initiate tag, never 0
	be.PutUint32(c[8:], 1<<16) // advertised receiver window
	be.PutUint16(c[12:], 1)    // outbound streams
	be.PutUint16(c[14:], 1)    // inbound streams
	be.PutUint32(c[16:], tag)  // initial TSN
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b, castagnoli))
	return b
}

// parseINIT reads an SCTP packet (without IP header) and reports its ports
// and initiate tag when it is a well-formed INIT with a correct checksum.
func parseINIT(b []byte) (srcPort, dstPort uint16, tag uint32, ok bool) {
	if len(b) < sctpHeaderLen+initChunkLen {
		return 0, 0, 0, false
	}
	be := binary.BigEndian
	sum := binary.LittleEndian.Uint32(b[8:])
	tmp := make([]byte, len(b))
	copy(tmp, b)
	clear(tmp[8:12])
	if crc32.Checksum(tmp, castagnoli) != sum {
		return 0, 0, 0, false
	}
	c := b[sctpHeaderLen:]
	if be.Uint32(b[4:]) != 0 || c[0] != chunkINIT || be.Uint16(c[2:]) < initChunkLen {
		return 0, 0, 0, false
	}
	return be.Uint16(b[0:]), be.Uint16(b[2:]), be.Uint32(c[4:]), true
}
