package nft

import (
	"bytes"
	"strings"
	"testing"

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
		"ip saddr @ingress-i000000000001-any-v4 accept comment \"x/allow x/deny\"",
		"tcp . 80 : accept",
		"tcp . 8000-8080 : goto ingress-i000000000001-tcp-8000-8080",
		"sctp . 0-65535 : goto ingress-i000000000001-sctp-0-65535",
		"udp . 53 : return",
		"elements = { 10.0.0.0-10.41.255.255,",
		"10.43.0.0-10.255.255.255",
		"ip daddr @egress-e000000000002-any-v4 return",
		"ip saddr @pod-cidrs-v4 drop",
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
