package policy

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

func set(t *testing.T, items ...string) addrset.Set {
	t.Helper()
	var b addrset.Builder
	for _, it := range items {
		if p, err := netip.ParsePrefix(it); err == nil {
			b.AddPrefix(p)
			continue
		}
		b.AddAddr(netip.MustParseAddr(it))
	}
	return b.Set()
}

func lpod(t *testing.T, pl *plan.Plan, key string) plan.LocalPod {
	t.Helper()
	for _, p := range pl.Pods {
		if p.Key() == key {
			return p
		}
	}
	t.Fatalf("plan of %s has no pod %s", pl.Node, key)
	return plan.LocalPod{}
}

func TestPlanShape(t *testing.T) {
	s := fixture()
	s.Pods = append(s.Pods,
		&cluster.Pod{Namespace: "x", Name: "done", NodeName: "node-1", Phase: corev1.PodFailed, IPs: addrs("10.1.0.99")},
		&cluster.Pod{Namespace: "x", Name: "host", NodeName: "node-1", HostNetwork: true, IPs: addrs("192.168.0.1")},
		&cluster.Pod{Namespace: "x", Name: "new", NodeName: "node-1", Phase: corev1.PodPending},
	)
	s.Policies = []*networkingv1.NetworkPolicy{np("x", "deny", sel(""), ingressOnly, nil, nil)}
	pl := Compile(s, "node-1", Options{DefaultDenyUnknown: true})

	var keys []string
	for _, p := range pl.Pods {
		keys = append(keys, p.Key())
	}
	if want := []string{"x/a", "x/b", "y/b"}; !slices.Equal(keys, want) {
		t.Errorf("pods %v, want %v (enforceable pods of node-1, sorted)", keys, want)
	}
	if got := lpod(t, pl, "x/a").IPs; !slices.Equal(got, addrs("10.1.0.10", "fd00:1::10")) {
		t.Errorf("x/a IPs %v", got)
	}
	if !pl.NodeAddrs.Equal(set(t, "192.168.0.1", "fd00:ff::1")) {
		t.Errorf("node addresses %v", pl.NodeAddrs)
	}
	if !pl.PodCIDRs.Equal(set(t, "10.1.0.0/24", "fd00:1::/64")) {
		t.Errorf("pod CIDRs %v", pl.PodCIDRs)
	}
	if !pl.DefaultDenyUnknown || pl.Node != "node-1" {
		t.Errorf("options or node name not copied: %+v", pl)
	}
	if lp := lpod(t, pl, "y/b"); lp.Ingress != "" || lp.Egress != "" {
		t.Errorf("y/b is selected by no policy but has profiles %q/%q", lp.Ingress, lp.Egress)
	}

	// A node without a Node object still gets its pods.
	pl = Compile(s, "node-9", Options{})
	if len(pl.Pods) != 0 || !pl.NodeAddrs.IsEmpty() || !pl.PodCIDRs.IsEmpty() {
		t.Errorf("unknown node: %+v", pl)
	}
}

func TestDenyAllProfile(t *testing.T) {
	s := fixture()
	s.Policies = []*networkingv1.NetworkPolicy{np("x", "deny", sel("app=a"), bothTypes, nil, nil)}
	pl := Compile(s, "node-1", Options{})
	lp := lpod(t, pl, "x/a")
	for _, id := range []plan.ProfileID{lp.Ingress, lp.Egress} {
		p := pl.Profile(id)
		if p == nil {
			t.Fatalf("profile %q missing", id)
		}
		if !p.Any.IsEmpty() || p.Ports != nil || !slices.Equal(p.Policies, []string{"x/deny"}) {
			t.Errorf("deny-all profile %+v", p)
		}
	}
	if pl.Profile(lp.Ingress).Direction != plan.Ingress || pl.Profile(lp.Egress).Direction != plan.Egress {
		t.Errorf("profile directions wrong")
	}
}

// TestCanonicalClasses pins the partition: disjoint sorted classes, the
// union of peers on each, peers allowed on every port taken out, equal
// neighbours merged.
func TestCanonicalClasses(t *testing.T) {
	s := fixture()
	s.Policies = []*networkingv1.NetworkPolicy{np("x", "p", sel("app=a"), nil, []in{
		{From: peers{podPeer(sel("app=b"))}, Ports: ports{rng(tcp, 80, 90)}},
		{From: peers{nsPeer(sel("team=red"))}, Ports: ports{rng(tcp, 85, 95), num(udp, 53)}},
		{From: peers{podPeer(sel("app=c"))}},
		{From: peers{podPeer(sel("app=c"))}, Ports: ports{num(tcp, 88)}},
	}, nil)}
	pl := Compile(s, "node-1", Options{})
	p := pl.Profile(lpod(t, pl, "x/a").Ingress)
	xb := []string{"10.1.0.11", "fd00:1::11"}
	red := []string{"10.2.0.20", "fd00:2::20", "10.1.0.21", "fd00:1::21"}
	want := []plan.PortClass{
		{Protocol: plan.TCP, First: 80, Last: 84, Peers: set(t, xb...)},
		{Protocol: plan.TCP, First: 85, Last: 90, Peers: set(t, append(slices.Clone(xb), red...)...)},
		{Protocol: plan.TCP, First: 91, Last: 95, Peers: set(t, red...)},
		{Protocol: plan.UDP, First: 53, Last: 53, Peers: set(t, red...)},
	}
	if !p.Any.Equal(set(t, "10.2.0.12", "fd00:2::12")) {
		t.Errorf("Any = %v", p.Any)
	}
	if len(p.Ports) != len(want) {
		t.Fatalf("classes %v, want %v", p.Ports, want)
	}
	for i := range want {
		g, w := p.Ports[i], want[i]
		if g.Protocol != w.Protocol || g.First != w.First || g.Last != w.Last || !g.Peers.Equal(w.Peers) {
			t.Errorf("class %d = %v %d-%d %v, want %v %d-%d %v", i, g.Protocol, g.First, g.Last, g.Peers, w.Protocol, w.First, w.Last, w.Peers)
		}
	}
}

// TestSameDecisionSameContent: policies written differently but meaning
// the same give profiles with identical sets and classes (the parts they
// are unions of differ: they follow what the policies say).
func TestSameDecisionSameContent(t *testing.T) {
	content := func(rules ...in) (addrset.Set, []plan.PortClass) {
		s := fixture()
		s.Policies = []*networkingv1.NetworkPolicy{np("x", "p", sel("app=a"), nil, rules, nil)}
		pl := Compile(s, "node-1", Options{})
		p := pl.Profile(lpod(t, pl, "x/a").Ingress)
		// Parts name peers by what they mean, which differs here.
		ports := slices.Clone(p.Ports)
		for i := range ports {
			ports[i].Parts = nil
		}
		return p.Any, ports
	}
	any1, ports1 := content(in{From: peers{podPeer(sel("app=b"))}, Ports: ports{num("", 80), num(tcp, 81), named("", "http")}})
	any2, ports2 := content(
		in{From: peers{podPeer(sel("app=b"))}, Ports: ports{rng(tcp, 80, 81)}},
		in{From: peers{blockPeer("10.1.0.11/32"), blockPeer("fd00:1::11/128")}, Ports: ports{num(tcp, 80)}},
	)
	if !any1.Equal(any2) || !reflect.DeepEqual(ports1, ports2) {
		t.Errorf("same decision, different content:\n%v %v\n%v %v", any1, ports1, any2, ports2)
	}
}

var profileIDFormat = regexp.MustCompile(`^[ie][0-9a-f]{12}$`)

func TestProfileSharingAndIDs(t *testing.T) {
	base := func() *cluster.Snapshot {
		s := fixture()
		twin := *findPod(t, s, "x/a")
		twin.Name, twin.IPs = "a2", addrs("10.1.0.13", "fd00:1::13")
		s.Pods = append(s.Pods, &twin)
		s.Policies = []*networkingv1.NetworkPolicy{
			np("x", "web", sel(""), nil, []in{{From: peers{podPeer(sel("app=b"))}, Ports: ports{named("", "http")}}}, nil),
			np("x", "out", sel(""), egressOnly, nil, []out{{To: peers{nsPeer(sel("team=red"))}, Ports: ports{num(tcp, 443)}}}),
		}
		return s
	}
	pl := Compile(base(), "node-1", Options{})
	xa, xa2, xb := lpod(t, pl, "x/a"), lpod(t, pl, "x/a2"), lpod(t, pl, "x/b")
	if xa.Ingress != xa2.Ingress {
		t.Errorf("x/a and x/a2 resolve http alike but have ingress profiles %s and %s", xa.Ingress, xa2.Ingress)
	}
	if xa.Ingress == xb.Ingress {
		t.Errorf("x/a (http=80) and x/b (http=8080) share ingress profile %s", xa.Ingress)
	}
	if xa.Egress != xb.Egress {
		t.Errorf("egress does not depend on named ports of the selected pod: %s vs %s", xa.Egress, xb.Egress)
	}
	if len(pl.Profiles) != 3 {
		t.Errorf("%d profiles, want 3", len(pl.Profiles))
	}
	for _, p := range pl.Profiles {
		if !profileIDFormat.MatchString(string(p.ID)) {
			t.Errorf("profile ID %q is not [ie] and 12 hex digits", p.ID)
		}
	}
	if !slices.IsSortedFunc(pl.Profiles, func(a, b *plan.Profile) int { return compareStrings(string(a.ID), string(b.ID)) }) {
		t.Errorf("profiles not sorted by ID")
	}

	// IDs depend on what defines a profile, not on its content.
	same := []struct {
		name   string
		change func(*cluster.Snapshot)
	}{
		{"a new peer pod", func(s *cluster.Snapshot) {
			s.Pods = append(s.Pods, &cluster.Pod{Namespace: "x", Name: "b2", Labels: lbls("app=b"), NodeName: "node-2",
				Phase: corev1.PodRunning, IPs: addrs("10.2.0.99")})
		}},
		{"other peers and numeric ports", func(s *cluster.Snapshot) {
			s.Policies[1].Spec.Egress[0] = out{To: peers{blockPeer("0.0.0.0/0")}, Ports: ports{num(udp, 53)}}
		}},
		{"snapshot order", func(s *cluster.Snapshot) {
			slices.Reverse(s.Pods)
			slices.Reverse(s.Policies)
		}},
	}
	for _, c := range same {
		s := base()
		c.change(s)
		pl2 := Compile(s, "node-1", Options{})
		for _, key := range []string{"x/a", "x/b"} {
			if a, b := lpod(t, pl, key), lpod(t, pl2, key); a.Ingress != b.Ingress || a.Egress != b.Egress {
				t.Errorf("%s: %s profiles changed from %s/%s to %s/%s", c.name, key, a.Ingress, a.Egress, b.Ingress, b.Egress)
			}
		}
	}
	different := []struct {
		name   string
		change func(*cluster.Snapshot)
	}{
		{"another policy selects the pod", func(s *cluster.Snapshot) {
			s.Policies = append(s.Policies, np("x", "more", sel("app=a"), bothTypes, nil, nil))
		}},
		{"the pod serves http on another number", func(s *cluster.Snapshot) {
			findPod(t, s, "x/a").Ports = []cluster.ContainerPort{cport("http", tcp, 81)}
		}},
	}
	for _, c := range different {
		s := base()
		c.change(s)
		pl2 := Compile(s, "node-1", Options{})
		if lpod(t, pl, "x/a").Ingress == lpod(t, pl2, "x/a").Ingress {
			t.Errorf("%s: x/a keeps ingress profile %s", c.name, lpod(t, pl, "x/a").Ingress)
		}
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestDeterministic: the order of objects in the snapshot does not matter.
func TestDeterministic(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	s := randomSnapshot(rnd)
	for _, node := range []string{"node-1", "node-2"} {
		want := Compile(s, node, Options{})
		for range 5 {
			shuffled := *s
			shuffled.Pods = slices.Clone(s.Pods)
			shuffled.Policies = slices.Clone(s.Policies)
			shuffled.Namespaces = slices.Clone(s.Namespaces)
			rnd.Shuffle(len(shuffled.Pods), func(i, j int) { shuffled.Pods[i], shuffled.Pods[j] = shuffled.Pods[j], shuffled.Pods[i] })
			rnd.Shuffle(len(shuffled.Policies), func(i, j int) {
				shuffled.Policies[i], shuffled.Policies[j] = shuffled.Policies[j], shuffled.Policies[i]
			})
			rnd.Shuffle(len(shuffled.Namespaces), func(i, j int) {
				shuffled.Namespaces[i], shuffled.Namespaces[j] = shuffled.Namespaces[j], shuffled.Namespaces[i]
			})
			if got := Compile(&shuffled, node, Options{}); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: plan depends on snapshot order", node)
			}
		}
	}
}

// TestCompileSurvivesAnything feeds objects no API server would accept.
func TestCompileSurvivesAnything(t *testing.T) {
	weird := &networkingv1.NetworkPolicy{Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"bad key!": "v"}},
	}}
	s := &cluster.Snapshot{
		Namespaces: []*cluster.Namespace{nil, {Name: ""}},
		Nodes:      []*cluster.Node{nil, {Name: "n", Addresses: []netip.Addr{{}}, PodCIDRs: []netip.Prefix{{}}}},
		Pods: []*cluster.Pod{nil,
			{Name: "p", NodeName: "n", IPs: []netip.Addr{{}, netip.MustParseAddr("fe80::1%eth0")},
				Ports: []cluster.ContainerPort{{Name: "x", Port: 0}, {Name: "y", Port: 70000}, {Name: "z", Port: 5, Protocol: "ICMP"}}},
			{Name: "p", NodeName: "n", IPs: addrs("10.0.0.1")},
		},
		Policies: []*networkingv1.NetworkPolicy{nil, weird,
			np("", "q", sel(""), []networkingv1.PolicyType{"", "Ingress", "Egress", "Egress"},
				[]in{{From: peers{{}, {IPBlock: &networkingv1.IPBlock{}}, blockPeer("10.0.0.0/8", "", "::/0")},
					Ports: ports{{}, named(sctp, "x"), named(udp, "y"), named("ICMP", "z")}}},
				[]out{{To: peers{nsPeer(sel("")), blockPeer("::/0", "::/1", "::/0")}, Ports: ports{named("", "z")}}}),
		},
	}
	pl := Compile(s, "n", Options{DefaultDenyUnknown: true})
	if len(pl.Pods) != 1 {
		t.Errorf("duplicate pod keys should give one local pod, got %v", pl.Pods)
	}
	if len(pl.Problems) == 0 {
		t.Errorf("no problems reported for a broken policy")
	}
	if Compile(nil, "n", Options{}) == nil {
		t.Errorf("nil snapshot should give an empty plan")
	}
	for _, np := range s.Policies[1:] {
		if len(Validate(np)) == 0 {
			t.Errorf("Validate accepts %v", np)
		}
	}
	_ = Validate(nil)
}

func TestEvaluatePlanEdges(t *testing.T) {
	s := fixture()
	s.Policies = []*networkingv1.NetworkPolicy{np("x", "p", sel("app=a"), bothTypes,
		[]in{{From: peers{podPeer(sel("app=b"))}}}, []out{{To: peers{podPeer(sel("app=b"))}}})}
	loose := Compile(s, "node-1", Options{})
	strict := Compile(s, "node-1", Options{DefaultDenyUnknown: true})
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	cases := []struct {
		name     string
		pl       *plan.Plan
		ingress  bool
		src, dst string
		want     bool
	}{
		{"unknown pod address, lenient", loose, true, "10.2.0.20", "10.1.0.200", true},
		{"unknown pod address denied in", strict, true, "10.2.0.20", "10.1.0.200", false},
		{"unknown pod address denied out", strict, false, "10.1.0.200", "10.2.0.20", false},
		{"unknown IPv6 pod address denied", strict, true, "fd00:2::20", "fd00:1::200", false},
		{"the node may reach an unknown pod", strict, true, "192.168.0.1", "10.1.0.200", true},
		{"an unknown pod may reach the node", strict, false, "10.1.0.200", "192.168.0.1", true},
		{"outside the pod CIDRs is not our business", strict, true, "10.2.0.20", "172.16.0.1", true},
		{"isolated pod, allowed peer", strict, true, "10.1.0.11", "10.1.0.10", true},
		{"isolated pod, other peer", strict, true, "10.2.0.20", "10.1.0.10", false},
		{"isolated pod egress", strict, false, "10.1.0.10", "10.1.0.11", true},
		{"isolated pod egress denied", strict, false, "10.1.0.10", "10.2.0.20", false},
		{"pod not isolated", strict, true, "10.2.0.20", "10.1.0.11", true},
	}
	for _, c := range cases {
		var got bool
		if c.ingress {
			got = c.pl.AllowsIngress(a(c.src), a(c.dst), plan.TCP, 80)
		} else {
			got = c.pl.AllowsEgress(a(c.src), a(c.dst), plan.TCP, 80)
		}
		if got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	// A dangling profile reference denies.
	broken := *strict
	broken.Profiles = nil
	if broken.AllowsIngress(a("10.1.0.11"), a("10.1.0.10"), plan.TCP, 80) {
		t.Errorf("a missing profile should deny")
	}
}
