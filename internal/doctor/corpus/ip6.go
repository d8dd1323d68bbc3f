package corpus

import "strings"

// Setup6 creates, with `nft -f`, the objects the ip6 rules refer to.
const Setup6 = `
add chain ip6 filter FOO
add set ip6 filter myset { type ipv6_addr; flags dynamic,timeout; }
add set ip6 filter ports { type inet_service; }
add map ip6 filter portmap { type inet_service : verdict; }
`

// to6 turns the ip corpus into ip6 rules: addresses, the ip header's
// fields and icmp become their IPv6 forms.
var to6 = strings.NewReplacer(
	"ip saddr", "ip6 saddr", "ip daddr", "ip6 daddr",
	"ip protocol", "ip6 nexthdr", "ip dscp", "ip6 dscp", "ip ecn", "ip6 ecn",
	"ip ttl set", "ip6 hoplimit set", "ip ttl", "ip6 hoplimit", "ip length", "ip6 length",
	"10.0.0.0/8", "fd00::/8", "10.0.0.0/24", "fd00::/64", "10.1.0.0/16", "fd01::/32",
	"10.0.0.1", "fd00::1", "10.0.0.2", "fd00::2", "10.0.0.5", "fd00::5", "10.0.0.9", "fd00::9",
	"192.168.1.1", "fd01::1",
	"ct l3proto ipv4", "ct l3proto ipv6", "meta protocol ip ", "meta protocol ip6 ", "ether type ip ", "ether type ip6 ",
	"reject with icmp port-unreachable", "reject with icmpv6 port-unreachable",
	"reject with icmp host-unreachable", "reject with icmpv6 addr-unreachable",
	"icmp type", "icmpv6 type", "icmp code", "icmpv6 code", "l4proto icmp", "l4proto ipv6-icmp",
	"nexthdr icmp", "nexthdr ipv6-icmp",
	"-p icmp --icmp-type", "-p ipv6-icmp --icmpv6-type", "-m ttl --ttl-lt", "-m hl --hl-lt",
)

// no6 are ip rules with no IPv6 form.
var no6 = []string{"ip id", "frag-off", "ip version", "ip hdrlength", "ip checksum", "ip option", "igmp", "--dst-type", "dup to"}

// extra6 are rules only IPv6 has.
var extra6 = []Case{
	{Table: "filter", Chain: "FORWARD", Nft: `ip6 nexthdr tcp accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `ip6 hoplimit 255 accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `ip6 flowlabel 1 accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `ip6 version 6 accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `ip6 daddr ff02::/16 accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `ip6 saddr fe80::/10 drop`},
	{Table: "filter", Chain: "FORWARD", Nft: `ip6 saddr ::1 accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `icmpv6 type nd-neighbor-solicit accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `icmpv6 type packet-too-big accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `exthdr frag exists drop`},
	{Table: "filter", Chain: "FORWARD", Nft: `frag frag-off 0 accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `hbh nexthdr 6 accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `rt type 0 drop`},
	{Table: "filter", Chain: "FORWARD", Nft: `dst nexthdr 6 accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `mh type 1 accept`},
	{Table: "filter", Chain: "FORWARD", Nft: `oifname "wt0" ip6 daddr fd00::/8 ct state established,related accept`},
	{Table: "filter", Chain: "FORWARD", Ipt: `-p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT`},
	{Table: "filter", Chain: "FORWARD", Ipt: `-d ff02::/16 -j ACCEPT`},
	{Table: "filter", Chain: "FORWARD", Ipt: `-m hl --hl-eq 255 -j ACCEPT`},
	{Table: "filter", Chain: "FORWARD", Ipt: `-m frag --fragmore -j DROP`},
	{Table: "filter", Chain: "FORWARD", Ipt: `-m rt --rt-type 0 -j DROP`},
	{Table: "filter", Chain: "FORWARD", Ipt: `-j REJECT --reject-with icmp6-adm-prohibited`},
}

// Cases6 is the ip6 corpus: the ip corpus in its IPv6 form, plus rules
// only IPv6 has.
var Cases6 = func() []Case {
	var out []Case
next:
	for _, c := range Cases {
		for _, s := range no6 {
			if strings.Contains(c.Nft+c.Ipt, s) {
				continue next
			}
		}
		c.Nft, c.Ipt = to6.Replace(c.Nft), to6.Replace(c.Ipt)
		out = append(out, c)
	}
	return append(out, extra6...)
}()
