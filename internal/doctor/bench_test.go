package doctor

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nlrules"
)

// syntheticRuleset is an ip filter FORWARD chain of n rules, every tenth a
// native ct state rule iptables cannot decode.
func syntheticRuleset(b *testing.B, n int) *nlrules.Ruleset {
	rs := &nlrules.Ruleset{
		Tables: []nlrules.Table{{Family: unix.NFPROTO_IPV4, Name: "filter"}},
		Chains: []nlrules.Chain{{Family: unix.NFPROTO_IPV4, Table: "filter", Name: "FORWARD", Hook: &nlrules.Hook{Num: unix.NF_INET_FORWARD}, Type: "filter"}},
	}
	enc := func(name string, e expr.Any) nlrules.RawExpr {
		r, err := nlrules.Encode(unix.NFPROTO_IPV4, name, e)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	le := func(v uint32) []byte { x := make([]byte, 4); binary.LittleEndian.PutUint32(x, v); return x }
	for i := 0; i < n; i++ {
		var ex []nlrules.RawExpr
		if i%10 == 0 {
			ex = []nlrules.RawExpr{
				enc("ct", &expr.Ct{Key: expr.CtKeySTATE, Register: 1}),
				enc("bitwise", &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le(6), Xor: le(0)}),
				enc("cmp", &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le(0)}),
			}
		} else {
			ex = []nlrules.RawExpr{
				enc("payload", &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}),
				enc("cmp", &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, byte(i >> 16), byte(i >> 8), byte(i)}}),
				enc("counter", &expr.Counter{}),
			}
		}
		ex = append(ex, enc("immediate", &expr.Verdict{Kind: expr.VerdictAccept}))
		rs.Rules = append(rs.Rules, nlrules.Rule{Family: unix.NFPROTO_IPV4, Table: "filter", Chain: "FORWARD", Handle: uint64(i + 1), Index: i, Exprs: ex})
	}
	return rs
}

// BenchmarkAnalyze measures a scan's analysis (decode, five version models,
// rendering, repair proposals) without netlink I/O.
func BenchmarkAnalyze(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			rs := syntheticRuleset(b, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rep := Analyze(rs, nil)
				if len(rep.Findings) != n/10 {
					b.Fatalf("%d findings, want %d", len(rep.Findings), n/10)
				}
			}
		})
	}
}
