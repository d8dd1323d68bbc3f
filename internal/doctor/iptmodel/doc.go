// Package iptmodel predicts, without running any binary, what each
// iptables-nft version from 1.8.7 to 1.8.11 does with a rule it finds in a
// table it manages (ip/ip6 filter, nat, mangle, raw, security).
//
// iptables-nft applies two separate checks. The table-level whitelist of
// expression kinds decides whether `iptables -S`, `-L` and `iptables-save`
// call the table "incompatible". The per-rule decoder, used by `-C`, `-D
// <spec>`, `-S` and `iptables-save`, turns expressions back into an iptables
// command; from 1.8.9 on an expression it cannot place is a fatal error
// (exit 3, "cmp sreg undef", "unknown ipv4 meta key", ...), while 1.8.7 and
// 1.8.8 silently drop it and so misread the rule. The model follows the
// decoder register by register, because what iptables does with a cmp
// depends on which expression it believes loaded the register: `oifname
// "wt0" ct state established,related accept` does not fail in 1.8.9, it is
// misread, since the ct load it skips leaves the oifname load in place.
//
// 1.8.7, 1.8.9 and 1.8.11 are checked against their real binaries, ip and
// ip6, by the doctor's differential tests (Verified); 1.8.8 and 1.8.10,
// which no Debian release ships, are modelled between their neighbours.
// Each version difference is a method of Version saying which release
// showed it.
package iptmodel
