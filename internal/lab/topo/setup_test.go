package topo

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// TestNodeSetupFailureIsAnError: a node that cannot be built makes New
// return the error, with the hint that fits it, and release what it built,
// rather than panic on the nil node its cleanup used to close.
func TestNodeSetupFailureIsAnError(t *testing.T) {
	testenv.RequireRoot(t)
	badGateway := nodeSpec("n2", 1, true)
	badGateway.Gateways = []netip.Addr{netip.MustParseAddr("10.99.0.1")}
	for _, tc := range []struct {
		name    string
		layout  Layout
		nodes   []NodeSpec
		sysctls func(*netns.NS, []sysctl) error
		want    []string
	}{
		{name: "no br_netfilter", layout: Bridge, nodes: []NodeSpec{nodeSpec("n1", 0, false)},
			sysctls: func(*netns.NS, []sysctl) error {
				return errors.New("write net/bridge/bridge-nf-call-iptables: no such file or directory")
			},
			want: []string{"node n1", "bridge-nf-call-iptables", "modprobe br_netfilter", "routed layout"}},
		{name: "gateway outside the pod CIDRs, second node", layout: Bridge,
			nodes: []NodeSpec{nodeSpec("n1", 0, true), badGateway},
			want:  []string{"node n2", "gateway 10.99.0.1 is in none of the pod CIDRs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sysctls != nil {
				writeSysctls = tc.sysctls
				t.Cleanup(func() { writeSysctls = setSysctls })
			}
			topo, err := New(tc.layout, tc.nodes)
			if err == nil {
				topo.Close()
				t.Fatal("New succeeded")
			}
			if topo != nil {
				t.Errorf("New returned a topology with the error %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
