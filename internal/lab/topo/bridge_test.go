package topo

import (
	"fmt"
	"slices"
	"testing"
)

// TestBridgeAddressIsStable: adding pods never changes cni0's MAC address.
// A bridge left to choose takes the lowest MAC of its ports, so a new veth
// with a lower (random) one changed the gateway's MAC under the running
// pods: their IPv6 neighbour entries for the gateway went stale (IPv6 sends
// no unsolicited advertisement on a MAC change) and traffic through the
// gateway, to other nodes, was lost for seconds.
func TestBridgeAddressIsStable(t *testing.T) {
	topo := build(t, Bridge, []NodeSpec{nodeSpec("n", 0, false)}, podSpec("x/p0", "n", "10.42.0.2", "fd00:10:42::2"))
	n := topo.Node("n")
	mac := func() string {
		br, err := n.nl.LinkByName(BridgeName)
		if err != nil {
			t.Fatal(err)
		}
		return br.Attrs().HardwareAddr.String()
	}
	first := mac()
	var seen []string
	for i := 1; i <= 24; i++ {
		if _, err := topo.AddPod(podSpec(fmt.Sprintf("x/p%d", i), "n", fmt.Sprintf("10.42.0.%d", i+2))); err != nil {
			t.Fatal(err)
		}
		if m := mac(); m != first && !slices.Contains(seen, m) {
			seen = append(seen, m)
		}
	}
	if len(seen) > 0 {
		t.Errorf("cni0 changed its MAC address from %s to %v as pods were added", first, seen)
	}
}
