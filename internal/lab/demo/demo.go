// Package demo runs `kube-fence lab demo`: the Kubernetes e2e 3x3 model in a
// lab, the foreign nftables rule that crash-loops K3s placed in the node's
// ip filter FORWARD chain first, then a few NetworkPolicies applied one by
// one with the reachability matrix printed after each.
package demo

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"strings"
	"time"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/lab/report"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
)

//go:embed scenario.yaml policies/*.yaml
var files embed.FS

// The rule K3s's kube-router checks for every sync, and the foreign rule
// that makes iptables-nft 1.8.9 unable to check it (problem.md).
var (
	kubeRouterRule = []string{"FORWARD", "-m", "comment", "--comment", "kube-router netpol - TEMCG2JMHZYE7H7T", "-j", "ACCEPT"}
	foreignRule    = []string{"insert", "rule", "ip", "filter", "FORWARD", "ct", "state", "established,related", "accept"}
)

// Options configure the demo.
type Options struct {
	Lab lab.Options
	// Enforcing says whether Lab.Enforcer enforces NetworkPolicy; when it
	// does not, the demo says the matrices will not change.
	Enforcing bool
}

// Run runs the demo, writing its story to out.
func Run(ctx context.Context, out io.Writer, opts Options) error {
	d := &demo{out: out, opts: opts}
	return d.run(ctx)
}

type demo struct {
	out  io.Writer
	opts Options
	lab  *lab.Lab
	step int
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func (d *demo) heading(format string, args ...any) {
	d.step++
	d.printf("\n== %d. %s\n", d.step, fmt.Sprintf(format, args...))
}

func (d *demo) run(ctx context.Context) error {
	snap, err := loadScenario()
	if err != nil {
		return err
	}
	d.heading("Build the lab")
	d.printf("One node (a network namespace with bridge cni0 and br_netfilter on, as flannel sets up on K3s)\n" +
		"and nine pods, each its own namespace, serving TCP and UDP on ports 80 and 81:\n")
	l, err := lab.New(ctx, snap, d.opts.Lab)
	if err != nil {
		return err
	}
	defer l.Close()
	d.lab = l
	for _, p := range l.Snapshot().Pods {
		d.printf("  %-4s %v\n", p.Key(), p.IPs)
	}
	if !d.opts.Enforcing {
		d.printf("\nNOTE: this build has no NetworkPolicy enforcer plugged in. The policies below are\n" +
			"validated and handed to a no-op enforcer, so the matrices will not change.\n")
	}

	node := l.Nodes()[0]
	d.heading("Put a foreign nftables rule into the node's ip filter FORWARD chain")
	if missing := missingTools(); missing != "" {
		d.printf("Skipped: %s not installed (apt-get install -y iptables nftables).\n", missing)
	} else {
		d.printf("As NetBird, Tailscale or a hand-written script would, next to the rule kube-router keeps:\n")
		d.command(node, "iptables", append([]string{"-A"}, kubeRouterRule...)...)
		d.command(node, "nft", foreignRule...)
		d.printf("Now the check K3s's kube-router runs every sync:\n")
		d.command(node, "iptables", append([]string{"-C"}, kubeRouterRule...)...)
		d.printf("Exit status 3 (\"cmp sreg undef\") is what kube-router turns into a fatal error: K3s exits,\n" +
			"restarts, and meets the same rule again. kube-fence keeps to its own table (inet kube-fence)\n" +
			"and never reads or writes ip filter, so this rule cannot break it.\n")
	}

	d.heading("No policy yet: every pod reaches every pod")
	if err := d.probe(ctx); err != nil {
		return err
	}
	policies, err := files.ReadDir("policies")
	if err != nil {
		return err
	}
	for _, f := range policies {
		if err := d.apply(ctx, path.Join("policies", f.Name())); err != nil {
			return err
		}
	}

	if missingTools() == "" {
		d.heading("The foreign rule and kube-router's check, after kube-fence enforced three policies")
		d.command(node, "iptables", append([]string{"-C"}, kubeRouterRule...)...)
		d.command(node, "nft", "list", "tables")
		d.printf("ip filter is exactly as the other programs left it; kube-fence's rules live in their own table.\n")
	}
	return nil
}

func loadScenario() (*cluster.Snapshot, error) {
	data, err := files.ReadFile("scenario.yaml")
	if err != nil {
		return nil, err
	}
	s, err := scenario.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("embedded scenario: %w", err)
	}
	return s.Snapshot()
}

// apply adds the policy in file to the lab and shows the new matrix.
func (d *demo) apply(ctx context.Context, file string) error {
	data, err := files.ReadFile(file)
	if err != nil {
		return err
	}
	s, err := scenario.Parse(data)
	if err != nil {
		return fmt.Errorf("embedded %s: %w", file, err)
	}
	np := s.Policies[0]
	d.heading("Apply NetworkPolicy %s/%s", np.Namespace, np.Name)
	d.printf("%s", indent(string(data)))
	snap := d.lab.Snapshot()
	snap.Policies = append(snap.Policies, s.Policies...)
	if err := d.lab.Update(ctx, snap); err != nil {
		return err
	}
	return d.probe(ctx)
}

func (d *demo) probe(ctx context.Context) error {
	start := time.Now()
	rs, err := d.lab.Probe(ctx)
	if err != nil {
		return err
	}
	d.printf("\nReachability (rows connect to columns; . connected, X blocked, - not probed), %d probes in %v:\n\n",
		len(rs), time.Since(start).Round(10*time.Millisecond))
	var b strings.Builder
	if err := report.WriteCompact(&b, rs); err != nil {
		return err
	}
	d.printf("%s", indent(b.String()))
	return nil
}

// command runs a tool in the node's namespace and shows it like a shell
// session, with the exit status when it is not 0.
func (d *demo) command(node *lab.Node, name string, args ...string) {
	d.printf("  # %s %s\n", name, shellQuote(args))
	out, err := node.Command(name, args...)
	if s := strings.TrimSpace(string(out)); s != "" {
		d.printf("%s\n", indent(s))
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		d.printf("  (exit status %d)\n", exit.ExitCode())
	case err != nil:
		d.printf("  (failed: %v)\n", err)
	}
}

func missingTools() string {
	var missing []string
	for _, t := range []string{"iptables", "nft"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	return strings.Join(missing, " and ")
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \"'") {
			a = `"` + a + `"`
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}
