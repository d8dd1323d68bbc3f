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

// Known reports whether v is modelled.
func Known(v Version) bool {
	for _, k := range Versions {
		if k == v {
			return true
		}
	}
	return false
}

// fatalErrors: 1.8.9 made decoder errors fatal (commits f315af1c, 25883ce8,
// 9075c3aa, ec869370); before, the decoder skipped what it did not know.
func (v Version) fatalErrors() bool { return v != V187 && v != V188 }

// logWithGroupListed: `log group N` (NFLOG) joined the whitelist in 1.8.8.
func (v Version) logWithGroupListed() bool { return v != V187 }

// checkIgnoresInterfaces: 1.8.11's -C compares rules without -i/-o
// (fixed in 1.8.12).
func (v Version) checkIgnoresInterfaces() bool { return v == V1811 }

// Basis says how a version's predictions are grounded.
func (v Version) Basis() string {
	if v == V189 {
		return "verified against the real iptables 1.8.9 binary"
	}
	return "modelled from the documented iptables changes"
}
