package main

import (
	"strings"
	"testing"
)

// A scenario of the explain command's tests: y/b isolated for ingress, open
// to namespace x on TCP 80.
const explainScenario = `apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: x}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 10.42.0.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: "y", labels: {app: web}}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 10.42.0.3}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: "y"}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: x}}}], ports: [{port: 80}]}]
`

func TestExplainCommand(t *testing.T) {
	cases := []struct {
		args     []string
		code     int
		stdout   []string // substrings
		stderr   string
		noStdout bool
	}{
		{args: []string{"--from", "x/a", "--to", "y/b", "--port", "80"}, stdout: []string{
			"IPv4 x/a 10.42.0.2 -> y/b 10.42.0.3 TCP/80: allowed", "ingress of y/b: allowed by y/web ingress[0]"}},
		{args: []string{"--from", "x/a", "--to", "y/b", "--port", "81", "-o", "json"}, stdout: []string{
			`"allowed": false`, `"rule": "y/web ingress[0]"`, `"peer_matched": true`}},
		{args: []string{"--from", "x/a", "--to", "y/b", "--port", "53", "--protocol", "udp"}, stdout: []string{"UDP/53: denied"}},
		{args: []string{"--from", "x/a", "--to", "y/b", "--port", "0"}, code: 2, stderr: "--port 0: want 1-65535", noStdout: true},
		{args: []string{"--from", "x/a", "--to", "y/b", "--port", "80", "--protocol", "ICMP"}, code: 2, stderr: `--protocol "ICMP"`},
		{args: []string{"--from", "x/a", "--to", "y/zz", "--port", "80"}, code: 2, stderr: "--to y/zz: no such pod"},
		{args: []string{"--from", "x/a", "--to", "y/b", "--port", "80", "-o", "yaml"}, code: 2, stderr: `-o "yaml"`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, stderr, code := run(t, explainScenario, append([]string{"explain", "-f", "-"}, c.args...)...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out, stderr)
			}
			for _, s := range c.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			if !strings.Contains(stderr, c.stderr) {
				t.Errorf("stderr lacks %q:\n%s", c.stderr, stderr)
			}
			if c.noStdout && out != "" {
				t.Errorf("stdout not empty: %s", out)
			}
		})
	}
	_, stderr, code := run(t, "", "explain", "--from", "x/a", "--to", "y/b", "--port", "80")
	if code != 2 || !strings.Contains(stderr, "give exactly one of -f/--filename and --kubeconfig") {
		t.Errorf("neither -f nor --kubeconfig: exit %d, %s", code, stderr)
	}
}
