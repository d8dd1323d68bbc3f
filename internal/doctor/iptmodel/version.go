package iptmodel

// Version is an iptables-nft release the model knows.
type Version string

// The modelled releases, oldest first.
const (
	V187  Version = "1.8.7"
	V188  Version = "1.8.8"
	V189  Version = "1.8.9"
	V1810 Version = "1.8.10"
	V1811 Version = "1.8.11"
)

// Versions lists the modelled releases, oldest first.
var Versions = []Version{V187, V188, V189, V1810, V1811}

// Verified are the releases the differential tests check against the
// real binary (internal/doctor's TestDifferential, both families).
var Verified = []Version{V187, V189, V1811}

// fatalErrors: 1.8.9 made decoder errors fatal (commits f315af1c, 25883ce8,
// 9075c3aa, ec869370); before, the decoder skipped what it did not know.
func (v Version) fatalErrors() bool { return v != V187 && v != V188 }

// logWithGroupListed: `log group N` (NFLOG) joined the whitelist in 1.8.8.
func (v Version) logWithGroupListed() bool { return v != V187 }

// decodesTransport: 1.8.8 learnt to read native tcp/udp/icmp payload
// matches (iptables itself began writing ports natively then). 1.8.7
// skips every transport-header comparison without a word: verified, it
// reads `tcp dport 80 accept` as `-p tcp -j ACCEPT`.
func (v Version) decodesTransport() bool { return v != V187 }

// decodesTTL and decodesMetaMatches: 1.8.7 skips native ttl/hop limit
// compares and `meta mark`/`meta pkttype` (verified: `meta mark 0x10
// accept` reads as `-j ACCEPT`); 1.8.8 reads them, with the native
// matches iptables itself began writing.
func (v Version) decodesTTL() bool         { return v != V187 }
func (v Version) decodesMetaMatches() bool { return v != V187 }

// linkLayerAsNetwork: before 1.8.9's per-register tracking the decoder
// ignored a payload's base and read link-layer offsets as IPv4/IPv6 header
// offsets (verified in 1.8.7: `ether type ip` reads as `-s 8.0.0.0/16`).
func (v Version) linkLayerAsNetwork() bool { return !v.fatalErrors() }

// checkComparesIfaceMask: 1.8.7's -C compares the interface masks, and
// the one it builds from `-o wt0` (4 bytes) never equals the one of a name
// nft wrote (16 bytes): no -C/-D spec finds such a rule (verified in
// 1.8.7; 1.8.9 compares the names only).
func (v Version) checkComparesIfaceMask() bool { return !v.fatalErrors() }

// metaMarkSet: 1.8.11 reads `meta mark set <immediate>` as
// `-j MARK --set-xmark V/0xffffffff` (verified); 1.8.9 fails on it.
func (v Version) metaMarkSet() bool { return v == V1811 }

// taintWarns: since 1.8.9 a base chain iptables did not create only makes
// -S and iptables-save warn; 1.8.7 calls the whole table incompatible
// (verified).
func (v Version) taintWarns() bool { return v.fatalErrors() }

// checkIgnoresInterfaces: 1.8.11's -C compares rules without -i/-o
// (fixed in 1.8.12).
func (v Version) checkIgnoresInterfaces() bool { return v == V1811 }

// Basis says how a version's predictions are grounded.
func (v Version) Basis() string {
	for _, w := range Verified {
		if v == w {
			return "verified against the real iptables " + string(v) + " binary"
		}
	}
	return "modelled from the documented iptables changes"
}

func (v Version) String() string { return string(v) }
