package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"

	"github.com/kube-fence/kube-fence/internal/lab/scenario"
	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// demoWithPolicies is the lab demo's scenario with its three policies.
func demoWithPolicies(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "internal", "lab", "demo")
	parts := []string{}
	for _, f := range []string{"scenario.yaml", "policies/1-deny-ingress-x.yaml", "policies/2-allow-y-to-xa.yaml", "policies/3-egress-zc.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, string(b))
	}
	return strings.Join(parts, "\n---\n")
}

// TestRenderIsTheProgrammedTable: the text render prints, loaded with
// `nft -f` in one network namespace, and the same plan programmed over
// netlink in another, read back as the same table; and `nft -c` accepts
// the text.
func TestRenderIsTheProgrammedTable(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "nft", "nftables")
	manifests := demoWithPolicies(t)
	out, stderr, code := run(t, manifests, "render", "-f", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"table inet kube-fence {", "chain forward {", "map ingress-pods-v4 {", `comment "x/a" : goto ingress-i`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	s, err := scenario.Parse([]byte(manifests))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := nft.Render(policy.Compile(snap, scenario.DefaultNode, policy.Options{DefaultDenyUnknown: true}))

	viaNetlink := testenv.NetNS(t)
	c, err := kernel.Open(kernel.Options{NetNSFD: viaNetlink.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Sync(want); err != nil {
		t.Fatal(err)
	}
	programmed, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}

	viaText := testenv.NetNS(t)
	if msg, err := nftIn(viaText, out, "-c", "-f", "-"); err != nil {
		t.Fatalf("nft -c rejects the output: %v\n%s", err, msg)
	}
	if msg, err := nftIn(viaText, out, "-f", "-"); err != nil {
		t.Fatalf("nft -f rejects the output: %v\n%s", err, msg)
	}
	r, err := kernel.Open(kernel.Options{NetNSFD: viaText.FD(), Ownership: kernel.OwnershipOff})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	loaded, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if d := nft.Diff(programmed, loaded); !d.Empty() {
		t.Errorf("the table loaded from the text differs from the one programmed over netlink:\n  %s", strings.Join(d.Differences, "\n  "))
	}
	if d := nft.Diff(want, loaded); !d.Empty() {
		t.Errorf("the table loaded from the text differs from the desired one:\n  %s", strings.Join(d.Differences, "\n  "))
	}
}

func nftIn(ns *netns.NS, stdin string, args ...string) (string, error) {
	cmd := exec.Command("nft", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out []byte
	err := ns.Do(func() error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	return string(out), err
}

func TestRenderInputErrors(t *testing.T) {
	twoNodes := `apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x}
spec: {nodeName: n1, containers: [{name: c}]}
`
	cases := []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"several nodes", twoNodes, nil, `--node: required, the manifests name 2 nodes (n1, n2)`},
		{"unknown node", twoNodes, []string{"--node", "n3"}, `--node "n3": no such node in the manifests (nodes: n1, n2)`},
		{"bad addresses", twoNodes, []string{"--addresses", "real"}, `--addresses "real": want lab or objects`},
		{"invalid manifest", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {bogus: 1}\n", nil, `unknown field "spec.bogus"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, code := run(t, c.stdin, append([]string{"render", "-f", "-"}, c.args...)...)
			if code != 2 || !strings.Contains(stderr, c.want) || out != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit 2 and %q", code, stderr, out, c.want)
			}
		})
	}
	// The lab gives x/a addresses; the objects give it none.
	if out, stderr, code := run(t, twoNodes, "render", "-f", "-", "--node", "n1"); code != 0 || !strings.Contains(out, `"x/a"`) {
		t.Errorf("lab addresses: exit %d (%s); x/a must be in the table:\n%s", code, stderr, out)
	}
	out, stderr, code := run(t, twoNodes, "render", "-f", "-", "--node", "n1", "--addresses", "objects")
	if code != 0 || strings.Contains(out, `"x/a"`) {
		t.Errorf("objects mode: exit %d (%s); a pod without addresses must not be in the table:\n%s", code, stderr, out)
	}
}
