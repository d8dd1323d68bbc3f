package conformance

import (
	"fmt"
	"testing"

	"github.com/kube-fence/kube-fence/internal/policy"
)

// TestCNPUpstreamByReference runs the network-policy-api conformance cases
// against the reference evaluator, on one node and on two, in both address
// families: the oracle must agree with upstream before packets are compared
// with it.
func TestCNPUpstreamByReference(t *testing.T) {
	cases := CNPUpstream()
	probes, connected, checked := 0, 0, 0
	for _, c := range cases {
		for _, st := range c.Steps {
			probes += len(st.Probes)
			for _, p := range st.Probes {
				if p.Connected {
					connected++
				}
			}
		}
	}
	// Guard against a port that lost cases or probes (upstream v0.3.0 has
	// 30 tests making 397 probes, some expected to connect, some not).
	if len(cases) != 30 || probes != 397 || connected == 0 || connected == probes {
		t.Fatalf("%d cases with %d probes (%d to connect): want 30 and 397, both outcomes", len(cases), probes, connected)
	}
	for _, nodes := range []int{1, 2} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%d node(s)/%s", nodes, c.Name), func(t *testing.T) {
				s, err := c.Load(nodes)
				if err != nil {
					t.Fatal(err)
				}
				for _, st := range c.Steps {
					for _, ch := range st.Changes {
						if err := ch.Apply(s); err != nil {
							t.Fatalf("%s: %s: %v", st.Name, ch.Action, err)
						}
					}
					for _, p := range st.Probes {
						pairs, err := p.Endpoints(s)
						if err != nil || len(pairs) != 2 {
							t.Fatalf("%s: %v (%d families)", st.Name, err, len(pairs))
						}
						proto, ok := policy.ProtocolFromAPI(p.Protocol)
						if !ok {
							t.Fatalf("%s: protocol %s", st.Name, p.Protocol)
						}
						for _, ends := range pairs {
							checked++
							v := policy.Decide(s, ends[0], ends[1], proto, uint16(p.Port))
							if v.Allowed != p.Connected {
								t.Errorf("%s: %s (%s) -> %s (%s) %s/%d: reference says connected=%v, upstream expects %v\n  egress: %+v\n  ingress: %+v",
									st.Name, p.From, ends[0].IP, p.To, ends[1].IP, p.Protocol, p.Port, v.Allowed, p.Connected, v.Egress, v.Ingress)
							}
						}
					}
				}
			})
		}
	}
	t.Logf("%d connections checked", checked)
}
