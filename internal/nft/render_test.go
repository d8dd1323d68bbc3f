package nft

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/nftables/expr"

	"github.com/kube-fence/kube-fence/internal/plan"
)

func TestRenderText(t *testing.T) {
	text := Text(Render(testPlan()))
	for _, want := range []string{
		"type filter hook forward priority filter - 5; policy accept;",
		"ct state established,related accept",
		"icmpv6 type 133-136 accept",
		"ct state new tcp flags & (fin|syn|rst|ack) != syn jump tcp-midstream",
		"ip6 daddr @ingress-pods-v6 drop",
		"ip saddr vmap @egress-pods-v4",
		"10.42.0.10 comment \"x/a\" : goto egress-e000000000002",
		"10.42.0.11 comment \"x/b\" : return",
		"fd00:10:42::11 comment \"x/b\" : accept",
		"ip saddr @ingress-i000000000001-any-v4-h accept comment \"x/allow x/deny\"",
		"tcp . 80 : accept",
		"tcp . 8000-8080 : goto ingress-i000000000001-tcp-8000-8080",
		"sctp . 0-65535 : goto ingress-i000000000001-sctp-0-65535",
		"udp . 53 : return",
		"elements = { 10.0.0.0-10.41.255.255,",
		"10.43.0.0-10.255.255.255",
		"ip saddr @peer-00000000000a-v4 accept",
		"ip saddr @peer-00000000000b-v4 accept",
		"ip6 saddr @ingress-i000000000001-sctp-0-65535-v6 accept",
		"meta l4proto . th dport vmap @egress-e000000000002-ports comment \"x/egress\"",
		"meta nfproto ipv4 goto forward-v4",
		"meta nfproto ipv6 goto forward-v6",
		"chain forward-v4 {\n\t\tjump egress-v4\n\t\tjump ingress-v4\n\t}",
		"chain forward-v6 {\n\t\ticmpv6 type 133-136 accept\n\t\tjump egress-v6\n\t\tjump ingress-v6\n\t}",
		"ip saddr @pod-cidrs-v4 goto drop-unknown-address",
		"ip daddr @pod-cidrs-v4 goto drop-unknown-address",
		"chain drop-egress {\n\t\tlimit rate over 100/second burst 100 packets counter drop\n\t\tlog prefix \"kube-fence deny egress\" group 1617 drop\n",
		"log prefix \"kube-fence deny ingress\" group 1617 drop",
		"log prefix \"kube-fence deny unknown-address\" group 1617 drop",
		"elements = { 10.42.0.0/24 }",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered table lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

// TestRenderSharedAddress: two pods of a plan sharing an address (one
// replacing the other) give one map element, the first pod's, as the plan's
// own lookup does; two elements with one key would make the kernel refuse
// the whole transaction.
func TestRenderSharedAddress(t *testing.T) {
	pl := testPlan()
	pl.Pods = append(pl.Pods, plan.LocalPod{Namespace: "x", Name: "z", IPs: pl.Pods[0].IPs})
	tab := Render(pl)
	for _, name := range []string{setIngressPods4, setEgressPods4, setIngressPods6, setEgressPods6} {
		for i, e := range tab.Sets[name].Elems {
			if i > 0 && bytes.Equal(e.Key, tab.Sets[name].Elems[i-1].Key) {
				t.Errorf("%s holds %s twice", name, ElemText(tab.Sets[name].Type, e))
			}
			if e.Comment == "x/z" {
				t.Errorf("%s: the second pod's element %s won", name, ElemText(tab.Sets[name].Type, e))
			}
		}
	}
}

// TestEveryDenyNamesItsSide: with logging, no chain but the drop chains
// (and tcp-midstream) drops a packet itself, and every profile chain denies
// on its own side; with logging off the table has plain drops and no drop
// chains. tcp-midstream drops TCP packets of no known connection (the rest
// of a cut one): no policy decides them and they are no connection attempt,
// so the log, one line per denied attempt, leaves them out.
func TestEveryDenyNamesItsSide(t *testing.T) {
	tab := Render(testPlan())
	fixed := map[string]bool{chainEgress4: true, chainEgress6: true, chainIngress4: true, chainIngress6: true}
	for name, c := range tab.Chains {
		if strings.HasPrefix(name, "drop-") || name == chainMidstream {
			continue
		}
		for _, r := range c.Rules {
			if strings.HasSuffix(r.Text, " drop") || r.Text == "drop" {
				t.Errorf("chain %s drops without logging: %s", name, r.Text)
			}
			side := ""
			switch {
			case fixed[name]: // unknown addresses
			case strings.HasPrefix(name, "egress-"):
				side = "egress"
			case strings.HasPrefix(name, "ingress-"):
				side = "ingress"
			}
			if i := strings.Index(r.Text, "goto drop-"); i >= 0 && side != "" && r.Text[i:] != "goto drop-"+side {
				t.Errorf("chain %s denies on the wrong side: %s", name, r.Text)
			}
		}
	}
	for _, side := range Sides {
		if tab.Chains[DropChain(side)] == nil {
			t.Errorf("no chain %s", DropChain(side))
		}
	}

	off := Renderer{DropLog: DropLog{Off: true}}
	text := Text(off.Render(testPlan()))
	if strings.Contains(text, "drop-") || strings.Contains(text, "log ") {
		t.Errorf("logging off still logs:\n%s", text)
	}
	if !strings.Contains(text, "ip saddr @pod-cidrs-v4 drop") {
		t.Errorf("logging off lacks the plain drop of unknown addresses:\n%s", text)
	}

	custom := Renderer{DropLog: DropLog{Group: 9, Rate: 5000, Burst: 20000}}
	if text := Text(custom.Render(testPlan())); !strings.Contains(text, "limit rate over 5000/second burst 20000 packets counter drop") ||
		!strings.Contains(text, "group 9 drop") {
		t.Errorf("the configured limit and group are not in the table:\n%s", text)
	}
}

func TestDropLogValidate(t *testing.T) {
	if err := (DropLog{}).Defaults().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if err := (DropLog{Rate: 1 << 30}).Defaults().Validate(); err == nil || !strings.Contains(err.Error(), "log rate") {
		t.Errorf("a huge rate: err = %v, want one naming the log rate", err)
	}
}

// TestFamilyWalk: after the dispatch at the top of the forward chain, the
// chains of one family hold no rule of the other, and no profile chain
// looks a packet up in a set that holds no address of its family (such a
// lookup costs every new connection and never matches).
func TestFamilyWalk(t *testing.T) {
	tab := Render(testPlan())
	for _, tc := range []struct {
		chains []string
		other  string
	}{
		{[]string{chainForward4, chainEgress4, chainIngress4}, "ip6 "},
		{[]string{chainForward6, chainEgress6, chainIngress6}, "ip "},
	} {
		for _, name := range tc.chains {
			for _, r := range tab.Chains[name].Rules {
				if strings.HasPrefix(r.Text, tc.other) {
					t.Errorf("chain %s: %s", name, r.Text)
				}
			}
		}
	}
	fixed := map[string]bool{}
	for _, c := range (&Renderer{}).fixedChains() {
		fixed[c.Name] = true
	}
	lookups := 0
	for name, c := range tab.Chains {
		if fixed[name] {
			continue
		}
		for _, r := range c.Rules {
			for _, e := range r.Exprs {
				l, ok := e.(*expr.Lookup)
				if !ok {
					continue
				}
				lookups++
				if s := tab.Sets[l.SetName]; s == nil || s.Len() == 0 {
					t.Errorf("chain %s looks up the empty set %s: %s", name, l.SetName, r.Text)
				}
			}
		}
	}
	if lookups == 0 {
		t.Error("no profile chain looks up a set: the test plan has no isolated pod")
	}
}
