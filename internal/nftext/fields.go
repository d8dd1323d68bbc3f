package nftext

import (
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Keys newer than golang.org/x/sys knows (linux/netfilter/nf_tables.h).
const (
	metaSecpath  expr.MetaKey = 25
	metaIifkind  expr.MetaKey = 26
	metaOifkind  expr.MetaKey = 27
	metaTimeNS   expr.MetaKey = 30
	metaTimeDay  expr.MetaKey = 31
	metaTimeHour expr.MetaKey = 32
	metaSdif     expr.MetaKey = 33
	metaSdifname expr.MetaKey = 34
	rtXfrm       expr.RtKey   = 4
)

type field struct {
	name string
	kind kind
}

// metaFields follows nft's names; keys nft prints without the "meta" word
// carry no prefix here.
var metaFields = map[expr.MetaKey]field{
	expr.MetaKeyLEN:        {"meta length", kInt},
	expr.MetaKeyPROTOCOL:   {"meta protocol", kEtherType},
	expr.MetaKeyPRIORITY:   {"meta priority", kPriority},
	expr.MetaKeyMARK:       {"meta mark", kHex},
	expr.MetaKeyIIF:        {"iif", kIfindex},
	expr.MetaKeyOIF:        {"oif", kIfindex},
	expr.MetaKeyIIFNAME:    {"iifname", kString},
	expr.MetaKeyOIFNAME:    {"oifname", kString},
	expr.MetaKeyIIFTYPE:    {"meta iiftype", kIfType},
	expr.MetaKeyOIFTYPE:    {"meta oiftype", kIfType},
	expr.MetaKeySKUID:      {"meta skuid", kInt},
	expr.MetaKeySKGID:      {"meta skgid", kInt},
	expr.MetaKeyNFTRACE:    {"meta nftrace", kInt},
	expr.MetaKeyRTCLASSID:  {"meta rtclassid", kInt},
	expr.MetaKeySECMARK:    {"meta secmark", kInt},
	expr.MetaKeyNFPROTO:    {"meta nfproto", kNfProto},
	expr.MetaKeyL4PROTO:    {"meta l4proto", kL4Proto},
	expr.MetaKeyBRIIIFNAME: {"meta ibrname", kString},
	expr.MetaKeyBRIOIFNAME: {"meta obrname", kString},
	expr.MetaKeyPKTTYPE:    {"meta pkttype", kPktType},
	expr.MetaKeyCPU:        {"meta cpu", kInt},
	expr.MetaKeyIIFGROUP:   {"iifgroup", kInt},
	expr.MetaKeyOIFGROUP:   {"oifgroup", kInt},
	expr.MetaKeyCGROUP:     {"meta cgroup", kInt},
	expr.MetaKeyPRANDOM:    {"meta random", kIntBE},
	metaSecpath:            {"meta ipsec", kBool},
	metaIifkind:            {"meta iifkind", kString},
	metaOifkind:            {"meta oifkind", kString},
	metaTimeNS:             {"meta time", kTimeNS},
	metaTimeDay:            {"meta day", kDay},
	metaTimeHour:           {"meta hour", kHour},
	metaSdif:               {"meta sdif", kIfindex},
	metaSdifname:           {"meta sdifname", kString},
}

func metaField(k expr.MetaKey) field {
	if f, ok := metaFields[k]; ok {
		return f
	}
	return field{fmt.Sprintf("meta key#%d", k), kInt}
}

var ctFields = map[expr.CtKey]field{
	expr.CtKeySTATE:      {"state", kCtState},
	expr.CtKeyDIRECTION:  {"direction", kCtDir},
	expr.CtKeySTATUS:     {"status", kCtStatus},
	expr.CtKeyMARK:       {"mark", kHex},
	expr.CtKeySECMARK:    {"secmark", kInt},
	expr.CtKeyEXPIRATION: {"expiration", kMillis},
	expr.CtKeyHELPER:     {"helper", kString},
	expr.CtKeyL3PROTOCOL: {"l3proto", kNfProto},
	expr.CtKeyPROTOCOL:   {"protocol", kL4Proto},
	expr.CtKeyPROTOSRC:   {"proto-src", kIntBE},
	expr.CtKeyPROTODST:   {"proto-dst", kIntBE},
	expr.CtKeyLABELS:     {"label", kCtLabel},
	expr.CtKeyPKTS:       {"packets", kInt},
	expr.CtKeyBYTES:      {"bytes", kInt},
	expr.CtKeyAVGPKT:     {"avgpkt", kInt},
	expr.CtKeyZONE:       {"zone", kInt},
	expr.CtKeyEVENTMASK:  {"event", kInt},
	unix.NFT_CT_SRC_IP:   {"ip saddr", kIPv4},
	unix.NFT_CT_DST_IP:   {"ip daddr", kIPv4},
	unix.NFT_CT_SRC_IP6:  {"ip6 saddr", kIPv6},
	unix.NFT_CT_DST_IP6:  {"ip6 daddr", kIPv6},
	unix.NFT_CT_ID:       {"id", kInt},
}

// ctName renders a ct key; keys loaded per direction carry it first.
func ctName(e *expr.Ct, hasDir bool) field {
	f, ok := ctFields[e.Key]
	if !ok {
		f = field{fmt.Sprintf("key#%d", e.Key), kInt}
	}
	if e.Key == expr.CtKeySRC || e.Key == expr.CtKeyDST {
		f = field{map[expr.CtKey]string{expr.CtKeySRC: "saddr", expr.CtKeyDST: "daddr"}[e.Key], kIPv4}
	}
	name := "ct "
	if hasDir {
		name += map[uint32]string{0: "original ", 1: "reply "}[e.Direction]
	}
	f.name = name + f.name
	return f
}

// payloadField names a header field by base, byte offset and length. mask is
// the bitwise mask applied after the load, 0 when none, for sub-byte fields.
type payloadKey struct {
	base   expr.PayloadBase
	offset uint32
	length uint32
}

type headerField struct {
	field
	proto string // header name for transport fields: tcp, udp, ...
	mask  []byte // bit field within the loaded bytes, nil for whole bytes
	shift uint
}

var ipv4Fields = map[payloadKey][]headerField{
	{expr.PayloadBaseNetworkHeader, 0, 1}:  {{field{"ip version", kInt}, "", []byte{0xf0}, 4}, {field{"ip hdrlength", kInt}, "", []byte{0x0f}, 0}},
	{expr.PayloadBaseNetworkHeader, 1, 1}:  {{field{"ip dscp", kDSCP}, "", []byte{0xfc}, 2}, {field{"ip ecn", kECN}, "", []byte{0x03}, 0}},
	{expr.PayloadBaseNetworkHeader, 2, 2}:  {{field: field{"ip length", kIntBE}}},
	{expr.PayloadBaseNetworkHeader, 4, 2}:  {{field: field{"ip id", kIntBE}}},
	{expr.PayloadBaseNetworkHeader, 6, 2}:  {{field: field{"ip frag-off", kIntBE}}},
	{expr.PayloadBaseNetworkHeader, 8, 1}:  {{field: field{"ip ttl", kIntBE}}},
	{expr.PayloadBaseNetworkHeader, 9, 1}:  {{field: field{"ip protocol", kL4Proto}}},
	{expr.PayloadBaseNetworkHeader, 10, 2}: {{field: field{"ip checksum", kIntBE}}},
	{expr.PayloadBaseNetworkHeader, 12, 4}: {{field: field{"ip saddr", kIPv4}}},
	{expr.PayloadBaseNetworkHeader, 16, 4}: {{field: field{"ip daddr", kIPv4}}},
}

var ipv6Fields = map[payloadKey][]headerField{
	{expr.PayloadBaseNetworkHeader, 4, 2}:   {{field: field{"ip6 length", kIntBE}}},
	{expr.PayloadBaseNetworkHeader, 6, 1}:   {{field: field{"ip6 nexthdr", kL4Proto}}},
	{expr.PayloadBaseNetworkHeader, 7, 1}:   {{field: field{"ip6 hoplimit", kIntBE}}},
	{expr.PayloadBaseNetworkHeader, 8, 16}:  {{field: field{"ip6 saddr", kIPv6}}},
	{expr.PayloadBaseNetworkHeader, 24, 16}: {{field: field{"ip6 daddr", kIPv6}}},
}

var linkFields = map[payloadKey][]headerField{
	{expr.PayloadBaseLLHeader, 0, 6}:  {{field: field{"ether daddr", kEther}}},
	{expr.PayloadBaseLLHeader, 6, 6}:  {{field: field{"ether saddr", kEther}}},
	{expr.PayloadBaseLLHeader, 12, 2}: {{field: field{"ether type", kEtherType}}},
}

// transportFields are keyed by the L4 protocol a preceding match fixed.
var transportFields = map[string]map[payloadKey][]headerField{
	"tcp": {
		{expr.PayloadBaseTransportHeader, 0, 2}:  {{field: field{"sport", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 2, 2}:  {{field: field{"dport", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 4, 4}:  {{field: field{"sequence", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 8, 4}:  {{field: field{"ackseq", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 13, 1}: {{field: field{"flags", kTCPFlags}}},
		{expr.PayloadBaseTransportHeader, 14, 2}: {{field: field{"window", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 16, 2}: {{field: field{"checksum", kIntBE}}},
	},
	"udp": {
		{expr.PayloadBaseTransportHeader, 0, 2}: {{field: field{"sport", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 2, 2}: {{field: field{"dport", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 4, 2}: {{field: field{"length", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 6, 2}: {{field: field{"checksum", kIntBE}}},
	},
	"icmp": {
		{expr.PayloadBaseTransportHeader, 0, 1}: {{field: field{"type", kICMPType}}},
		{expr.PayloadBaseTransportHeader, 1, 1}: {{field: field{"code", kICMPCode}}},
		{expr.PayloadBaseTransportHeader, 4, 2}: {{field: field{"id", kIntBE}}},
	},
	"icmpv6": {
		{expr.PayloadBaseTransportHeader, 0, 1}: {{field: field{"type", kICMPv6Type}}},
		{expr.PayloadBaseTransportHeader, 1, 1}: {{field: field{"code", kIntBE}}},
	},
	"th": {
		{expr.PayloadBaseTransportHeader, 0, 2}: {{field: field{"sport", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 2, 2}: {{field: field{"dport", kIntBE}}},
	},
	"sctp": {
		{expr.PayloadBaseTransportHeader, 0, 2}: {{field: field{"sport", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 2, 2}: {{field: field{"dport", kIntBE}}},
	},
	"dccp": {
		{expr.PayloadBaseTransportHeader, 0, 2}: {{field: field{"sport", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 2, 2}: {{field: field{"dport", kIntBE}}},
	},
	"udplite": {
		{expr.PayloadBaseTransportHeader, 0, 2}: {{field: field{"sport", kIntBE}}},
		{expr.PayloadBaseTransportHeader, 2, 2}: {{field: field{"dport", kIntBE}}},
	},
	"esp":  {{expr.PayloadBaseTransportHeader, 0, 4}: {{field: field{"spi", kIntBE}}}},
	"ah":   {{expr.PayloadBaseTransportHeader, 4, 4}: {{field: field{"spi", kIntBE}}}},
	"comp": {{expr.PayloadBaseTransportHeader, 2, 2}: {{field: field{"cpi", kIntBE}}}},
	"igmp": {{expr.PayloadBaseTransportHeader, 0, 1}: {{field: field{"type", kIGMPType}}}},
}

var l4ProtoHeader = map[uint64]string{1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 50: "esp", 51: "ah", 58: "icmpv6", 108: "comp", 132: "sctp", 136: "udplite"}

var rtFields = map[expr.RtKey]field{
	expr.RtClassid:  {"rt classid", kInt},
	expr.RtNexthop4: {"rt ip nexthop", kIPv4},
	expr.RtNexthop6: {"rt ip6 nexthop", kIPv6},
	expr.RtTCPMSS:   {"rt mtu", kInt},
	rtXfrm:          {"rt ipsec", kBool},
}

var socketFields = map[expr.SocketKey]field{
	expr.SocketKeyTransparent: {"socket transparent", kInt},
	expr.SocketKeyMark:        {"socket mark", kHex},
	expr.SocketKeyWildcard:    {"socket wildcard", kInt},
	expr.SocketKeyCgroupv2:    {"socket cgroupv2 level", kInt},
}
