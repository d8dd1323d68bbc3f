package iptmodel

import (
	"encoding/binary"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func u32(v uint32) []byte { b := make([]byte, 4); binary.LittleEndian.PutUint32(b, v); return b }

var accept = &expr.Verdict{Kind: expr.VerdictAccept}

func ctState(mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(mask), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)},
	}
}

func oifname(n string) []expr.Any {
	b := make([]byte, 16)
	copy(b, n)
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b}}
}

func rule(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return append(out, accept)
}

func one(e ...expr.Any) []expr.Any { return e }

// TestDocumentedFacts checks the model against the facts problem.md
// quotes from the iptables history, for the versions no test binary covers.
func TestDocumentedFacts(t *testing.T) {
	ip := byte(unix.NFPROTO_IPV4)
	ctEstRel := rule(ctState(6))
	wt0 := rule(oifname("wt0"), ctState(6))
	fib := rule(one(&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true}, &expr.Cmp{Register: 1, Data: u32(2)}))
	rtMTU := rule(one(&expr.Rt{Register: 1, Key: expr.RtTCPMSS}, &expr.Cmp{Register: 1, Data: u32(1400)}))
	dscp := rule(one(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 1, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0xfc}, Xor: []byte{0}},
		&expr.Cmp{Register: 1, Data: []byte{0xb8}}))
	skuid := rule(one(&expr.Meta{Key: expr.MetaKeySKUID, Register: 1}, &expr.Cmp{Register: 1, Data: u32(0)}))
	rng := rule(one(&expr.Ct{Key: expr.CtKeyPROTODST, Register: 1}, &expr.Range{Register: 1, FromData: []byte{0, 1}, ToData: []byte{0, 9}}))

	cases := []struct {
		name      string
		v         Version
		family    byte
		exprs     []expr.Any
		checkExit int
		checkErr  string
		misreadAs string
	}{
		{"ct state, 1.8.7 misreads silently", V187, ip, ctEstRel, 0, "", "-j ACCEPT"},
		{"ct state, 1.8.8 misreads silently", V188, ip, ctEstRel, 0, "", "-j ACCEPT"},
		{"ct state, 1.8.9 fails", V189, ip, ctEstRel, 3, "cmp sreg undef", ""},
		{"ct state, 1.8.10 fails too", V1810, ip, ctEstRel, 3, "cmp sreg undef", ""},
		{"ct state, 1.8.11 fails too", V1811, ip, ctEstRel, 3, "cmp sreg undef", ""},
		{"oifname wt0 ct state, 1.8.7 reads -o wt0 -j ACCEPT", V187, ip, wt0, 0, "", "-o wt0 -j ACCEPT"},
		{"oifname wt0 ct state, 1.8.8 reads -o wt0 -j ACCEPT", V188, ip, wt0, 0, "", "-o wt0 -j ACCEPT"},
		{"fib, 1.8.9", V189, ip, fib, 3, "cmp sreg undef", ""},
		{"fib, 1.8.11", V1811, ip, fib, 3, "cmp sreg undef", ""},
		{"rt mtu, 1.8.9", V189, ip, rtMTU, 3, "cmp sreg undef", ""},
		{"ip dscp, 1.8.9", V189, ip, dscp, 3, "unknown payload offset", ""},
		{"ip dscp, 1.8.7 drops it", V187, ip, dscp, 0, "", "-j ACCEPT"},
		{"meta skuid, 1.8.9", V189, ip, skuid, 3, "unknown ipv4 meta key", ""},
		{"meta skuid, ip6 table", V189, unix.NFPROTO_IPV6, skuid, 3, "unknown ipv6 meta key", ""},
		{"range on an unknown load", V189, ip, rng, 3, "range sreg undef", ""},
	}
	for _, c := range cases {
		res := Rule(c.v, c.family, c.exprs)
		got := CheckReaching(c.v, res)
		if got.Exit != c.checkExit || got.Error != c.checkErr {
			t.Errorf("%s: -C %+v, want exit %d %q", c.name, got, c.checkExit, c.checkErr)
		}
		if res.MisreadAs != c.misreadAs {
			t.Errorf("%s: misread as %q, want %q", c.name, res.MisreadAs, c.misreadAs)
		}
		if !res.Broken() {
			t.Errorf("%s: not reported as broken", c.name)
		}
	}
}

func TestWhitelistByVersion(t *testing.T) {
	nflog := []expr.Any{&expr.Log{Key: 1 << unix.NFTA_LOG_GROUP, Group: 2}, accept}
	if len(Unlisted(V187, nflog)) != 1 || len(Unlisted(V188, nflog)) != 0 || len(Unlisted(V1811, nflog)) != 0 {
		t.Error("log group: want unlisted in 1.8.7 only")
	}
	syslog := []expr.Any{&expr.Log{}, accept}
	if len(Unlisted(V189, syslog)) != 1 {
		t.Error("log without group must be unlisted")
	}
	bytesLimit := []expr.Any{&expr.Limit{Type: expr.LimitTypePktBytes, Rate: 1}, accept}
	over := []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 1, Over: true}, accept}
	pkts := []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 1}, accept}
	if len(Unlisted(V189, bytesLimit)) != 1 || len(Unlisted(V189, over)) != 1 || len(Unlisted(V189, pkts)) != 0 {
		t.Error("limit: only packet limits without over are listed")
	}
}

func TestTableOf(t *testing.T) {
	ip := byte(unix.NFPROTO_IPV4)
	ct := TableRule{Chain: "FORWARD", Exprs: rule(ctState(6))}
	skuid := TableRule{Chain: "FORWARD", Exprs: rule(one(&expr.Meta{Key: expr.MetaKeySKUID, Register: 1}, &expr.Cmp{Register: 1, Data: u32(0)}))}
	fine := TableRule{Chain: "FORWARD", Exprs: []expr.Any{&expr.Counter{}, accept}}
	base := []BaseChain{{Name: "FORWARD", Hook: unix.NF_INET_FORWARD, Priority: 0, Type: "filter"}}

	r := TableOf(V189, ip, "filter", []TableRule{fine, ct}, base)
	if !r.Incompatible || r.List.Exit != 1 || r.List.Error != "table `filter' is incompatible, use 'nft' tool." || r.Save.Outcome != "table omitted" {
		t.Errorf("unlisted ct: %+v", r)
	}
	r = TableOf(V189, ip, "filter", []TableRule{skuid}, base)
	if r.Incompatible || r.List.Exit != 3 || r.List.Error != "unknown ipv4 meta key" || r.Save.Exit != 3 {
		t.Errorf("undecodable meta key: %+v", r)
	}
	r = TableOf(V188, ip, "filter", []TableRule{skuid}, base)
	if r.List.Exit != 0 || r.Save.Outcome != "ok" {
		t.Errorf("1.8.8 lists without an error: %+v", r)
	}
	r = TableOf(V189, ip, "filter", []TableRule{fine}, []BaseChain{{Name: "FORWARD", Hook: unix.NF_INET_FORWARD, Priority: 10, Type: "filter"}})
	if r.Incompatible || !r.Tainted || r.List.Exit != 0 || r.Save.Outcome != "ok" || r.Save.Line == "" {
		t.Errorf("a base chain at a foreign priority taints the table, listed with a warning: %+v", r)
	}
	if r := TableOf(V189, ip, "filter", []TableRule{fine}, base); r.Incompatible || r.List.Exit != 0 || r.Save.Outcome != "ok" {
		t.Errorf("clean table: %+v", r)
	}
}

func TestCheckNote1811(t *testing.T) {
	res := Rule(V1811, unix.NFPROTO_IPV4, rule(oifname("eth0")))
	if CheckNote(V1811, res, true) == "" || CheckNote(V189, res, true) != "" {
		t.Error("only 1.8.11's -C ignores interfaces")
	}
}
