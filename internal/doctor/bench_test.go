package doctor

import (
	"context"
	"encoding/binary"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/nlrules"
	"github.com/kube-fence/kube-fence/internal/testenv"
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

// BenchmarkScan measures one whole scan as the guard runs it on every
// change: the netlink dump of a real kernel ruleset with n foreign rules in
// ip filter FORWARD (every one native, a mix of what NetBird, Tailscale and
// hand-written scripts put there), the analysis and the report.
func BenchmarkScan(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireBinary(b, "nft", "nftables")
	kinds := []string{
		"ct state established,related accept",
		`iifname "wt0" ip saddr 100.64.%d.%d meta skuid 0 accept`,
		"ip saddr 10.%d.%d.0/24 tcp dport 443 accept",
		"fib daddr type local tcp dport %d%d accept",
		`oifname "tailscale0" ct mark 0x%x%x accept`,
	}
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			ns, err := netns.New()
			if err != nil {
				b.Fatal(err)
			}
			defer ns.Close()
			var script strings.Builder
			script.WriteString("add table ip filter\nadd chain ip filter FORWARD { type filter hook forward priority 0; }\n")
			for i := 0; i < n; i++ {
				r := kinds[i%len(kinds)]
				if strings.Contains(r, "%") {
					r = fmt.Sprintf(r, (i/256)%256, i%256)
				}
				fmt.Fprintf(&script, "add rule ip filter FORWARD %s\n", r)
			}
			cmd := exec.Command("nft", "-f", "-")
			cmd.Stdin = strings.NewReader(script.String())
			if err := ns.Run(cmd); err != nil {
				b.Fatalf("nft -f: %v", err)
			}
			// CPU time, not only wall time: on a busy shared machine the
			// wall time mostly measures the wait for a core.
			cpu := func() time.Duration {
				var ru unix.Rusage
				_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
				return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
			start, runs := cpu(), 0
			b.ResetTimer()
			for b.Loop() {
				rep, err := Scan(context.Background(), Options{NetnsPath: ns.Path(), SkipToolchain: true})
				if err != nil {
					b.Fatal(err)
				}
				if len(rep.Findings) != n {
					b.Fatalf("%d findings, want %d", len(rep.Findings), n)
				}
				runs++
			}
			b.ReportMetric(float64(cpu()-start)/float64(runs)/1e6, "cpu-ms/op")
		})
	}
}
