package report

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/lab/probe"
)

func result(from, to, ip string, proto corev1.Protocol, port int32, ok bool) probe.Result {
	a := netip.MustParseAddr(ip)
	fam := corev1.IPv4Protocol
	if a.Is6() {
		fam = corev1.IPv6Protocol
	}
	r := probe.Result{Target: probe.Target{From: from, To: to, Family: fam, IP: a, Protocol: proto, Port: port}, Connected: ok}
	if proto == corev1.ProtocolSCTP {
		r.Method = probe.MethodSCTPInit
	}
	return r
}

// results: x/a is blocked from everyone on TCP/80 IPv4 only; y/b serves
// nothing; SCTP/81 only on x/a.
func sample() []probe.Result {
	return []probe.Result{
		result("x/a", "x/c", "10.42.0.4", "TCP", 80, true),
		result("x/a", "x/c", "fd00:10:42::4", "TCP", 80, true),
		result("x/c", "x/a", "10.42.0.2", "TCP", 80, false),
		result("x/c", "x/a", "fd00:10:42::2", "TCP", 80, true),
		result("x/c", "x/a", "10.42.0.2", "SCTP", 81, true),
		result("y/b", "x/a", "10.42.0.2", "TCP", 80, false),
		result("y/b", "x/a", "fd00:10:42::2", "TCP", 80, true),
		result("y/b", "x/a", "10.42.0.2", "SCTP", 81, false),
		result("y/b", "x/c", "10.42.0.4", "TCP", 80, true),
		result("y/b", "x/c", "fd00:10:42::4", "TCP", 80, true),
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sample()[3:5]); err != nil {
		t.Fatal(err)
	}
	want := `{
  "probes": [
    {
      "from": "x/c",
      "to": "x/a",
      "family": "IPv6",
      "ip": "fd00:10:42::2",
      "protocol": "TCP",
      "port": 80,
      "connected": true
    },
    {
      "from": "x/c",
      "to": "x/a",
      "family": "IPv4",
      "ip": "10.42.0.2",
      "protocol": "SCTP",
      "port": 81,
      "connected": true,
      "method": "sctp-init"
    }
  ]
}
`
	if b.String() != want {
		t.Errorf("JSON:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteJSON(&b, nil); err != nil || b.String() != "{\n  \"probes\": []\n}\n" {
		t.Errorf("no results: %q %v", b.String(), err)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sample()); err != nil {
		t.Fatal(err)
	}
	want := `Rows are sources, columns destinations: . connected, X blocked, - not probed.

TCP/80 IPv4
-   x/a x/c y/b
x/a -   .   -
x/c X   -   -
y/b X   .   -

TCP/80 IPv6
-   x/a x/c y/b
x/a -   .   -
x/c .   -   -
y/b .   .   -

SCTP/81 (sctp-init) IPv4
-   x/a x/c y/b
x/a -   -   -
x/c .   -   -
y/b X   -   -

SCTP probes (method sctp-init) send a crafted SCTP INIT from a raw socket in the source pod;
. means a raw socket in the destination pod saw it arrive (this kernel has no SCTP sockets).

10 probes: 7 connected, 3 blocked; 2 by sctp-init.
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteCompactGroupsEqualMatrices(t *testing.T) {
	rs := []probe.Result{
		result("x/a", "x/b", "10.42.0.3", "TCP", 80, true),
		result("x/a", "x/b", "fd00:10:42::3", "TCP", 80, true),
		result("x/a", "x/b", "10.42.0.3", "UDP", 81, true),
		result("x/a", "x/b", "fd00:10:42::3", "UDP", 81, false),
		result("x/b", "x/a", "10.42.0.2", "TCP", 80, true),
		result("x/b", "x/a", "fd00:10:42::2", "TCP", 80, true),
		result("x/b", "x/a", "10.42.0.2", "UDP", 81, true),
	}
	var b bytes.Buffer
	if err := WriteCompact(&b, rs); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{"TCP/80 over IPv4 and IPv6; UDP/81 over IPv4\n", "UDP/81 over IPv6\n", "7 probes: 6 connected, 1 blocked."} {
		if !strings.Contains(got, want) {
			t.Errorf("compact output lacks %q:\n%s", want, got)
		}
	}
}

func TestMatrixDiff(t *testing.T) {
	got := Matrices(sample())[0]
	want := NewMatrix(got.Key, []string{"x/c", "x/a", "y/b"})
	for _, from := range want.Pods {
		for _, to := range want.Pods {
			if from != to && to != "y/b" {
				want.Set(from, to, Allowed)
			}
		}
	}
	d := got.Diff(want)
	if !slices.Equal(d, []string{"x/c -> x/a: got X, want .", "y/b -> x/a: got X, want ."}) {
		t.Errorf("Diff = %q", d)
	}
}

func TestProblemsAreListed(t *testing.T) {
	r := result("x/a", "x/b", "10.42.0.3", "TCP", 80, false)
	r.Problem = `"y/z" answered instead of x/b`
	var b bytes.Buffer
	if err := WriteTable(&b, []probe.Result{r}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `x/a -> x/b TCP/80 10.42.0.3: "y/z" answered instead of x/b`) {
		t.Errorf("problem not listed:\n%s", b.String())
	}
}

// TestWriteTableShowsWhereProbesWereDropped: a blocked probe whose drop was
// logged shows its side, one without a record stays X, and the legend
// explains the letters only when there are any.
func TestWriteTableShowsWhereProbesWereDropped(t *testing.T) {
	rs := sample()
	rs[2].DroppedBy = "ingress" // x/c -> x/a TCP/80 IPv4
	rs[5].DroppedBy = "egress"  // y/b -> x/a TCP/80 IPv4
	var b strings.Builder
	if err := WriteTable(&b, rs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"E the source's egress", "x/c I   -   -", "y/b E   .   -", "y/b X   -   -"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := WriteTable(&b, sample()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "E the source's egress") {
		t.Errorf("legend of sides without any side:\n%s", b.String())
	}
}
