#!/bin/sh
# Removes what K3s's embedded NetworkPolicy controller (kube-router's netpol
# library) leaves on a node once K3s runs with --disable-network-policy:
#
#   - in the ip and ip6 filter tables: the jump rules from INPUT, FORWARD and
#     OUTPUT to its chains ("kube-router netpol - <hash>"), its rules accepting
#     packets it marked 0x20000 ("KUBE-ROUTER rule to explicitly ACCEPT ..."),
#     and its chains KUBE-ROUTER-*, KUBE-POD-FW-*, KUBE-NWPLCY-*;
#   - its ipsets KUBE-SRC-*, KUBE-DST-* and their IPv6 twins inet6:KUBE-*.
#
# It works with nft, not iptables: a native nftables rule another program put
# into the same chain (the seed's `ct state established,related accept`)
# makes `iptables -D` exit 3 and `iptables-save` leave the whole filter table
# out, so K3s's documented `iptables-save | grep -v KUBE-ROUTER |
# iptables-restore` silently changes nothing there (and iptables 1.8.7/1.8.8
# would rewrite the foreign rules wrongly). Rules are chosen by structure,
# not by position: what they jump to, or kube-router's exact accept-mark rule.
# All nftables changes go in one transaction (nft -f): all or nothing. Then
# the ipsets, which only become free once no rule refers to them.
#
# Run it as root on each node, after K3s runs with --disable-network-policy
# and kube-fence enforces. --dry-run prints what it would do.
# `kube-fence doctor` lists the leftovers before and confirms after.
set -eu

dry_run=0
case "${1:-}" in
"") ;;
--dry-run) dry_run=1 ;;
*) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
command -v nft >/dev/null || { echo "$0: nft (package nftables) is needed" >&2; exit 1; }

chain_re='^(KUBE-ROUTER-|KUBE-POD-FW-|KUBE-NWPLCY-)'
script=$(mktemp)
trap 'rm -f "$script"' EXIT

for family in ip ip6; do
	nft list table "$family" filter >/dev/null 2>&1 || continue
	for base in INPUT FORWARD OUTPUT; do
		nft list chain "$family" filter "$base" >/dev/null 2>&1 || continue
		# nft --debug=netlink prints each rule as a header "family table
		# chain handle [position]" and its expressions, one per line,
		# until a blank line.
		nft --debug=netlink list chain "$family" filter "$base" 2>/dev/null | awk -v fam="$family" -v chain="$base" -v re="$chain_re" '
			function done() {
				if (handle == "") return
				if (target ~ re || sig == mark_sig)
					printf "delete rule %s filter %s handle %s\n", fam, chain, handle
				handle = ""
			}
			BEGIN {
				# kube-router: -m comment --comment "KUBE-ROUTER rule to explicitly ACCEPT ..." -m mark --mark 0x20000/0x20000 -j ACCEPT
				mark_sig = "[ match name comment rev 0 ]|[ meta load mark => reg 1 ]|[ bitwise reg 1 = ( reg 1 & 0x00020000 ) ^ 0x00000000 ]|[ cmp eq reg 1 0x00020000 ]|[ counter ]|[ immediate reg 0 accept ]|"
			}
			$1 == fam && $2 == "filter" && $3 == chain && $4 ~ /^[0-9]+$/ { done(); handle = $4; sig = ""; target = ""; next }
			handle != "" && /^  \[/ {
				line = $0
				sub(/^  /, "", line)
				if (line ~ /^\[ counter /) line = "[ counter ]"
				if (line ~ /^\[ immediate reg 0 (jump|goto) -> /) { target = line; sub(/.*-> /, "", target); sub(/ \]$/, "", target) }
				sig = sig line "|"
				next
			}
			/^$/ { done() }
			END { done() }'
	done
	# kube-router's chains jump to each other: flush them all, then delete.
	chains=$(nft list table "$family" filter 2>/dev/null | awk -v re="$chain_re" '$1 == "chain" && $2 ~ re { print $2 }')
	for c in $chains; do echo "flush chain $family filter $c"; done
	for c in $chains; do echo "delete chain $family filter $c"; done
done >"$script"

if [ -s "$script" ]; then
	echo "nftables changes (one transaction):"
	sed 's/^/  /' "$script"
	[ "$dry_run" = 1 ] || nft -f "$script"
else
	echo "no kube-router rules or chains in ip/ip6 filter"
fi

if command -v ipset >/dev/null; then
	sets=$(ipset list -n | grep -E '^(inet6:)?KUBE-(SRC|DST)-' || true)
	for s in $sets; do
		echo "ipset destroy $s"
		[ "$dry_run" = 1 ] || ipset destroy "$s"
	done
	[ -n "$sets" ] || echo "no kube-router ipsets"
else
	echo "ipset is not installed: no kube-router ipsets can exist"
fi
