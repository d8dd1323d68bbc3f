package guard

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/doctor"
	"github.com/kube-fence/kube-fence/internal/doctor/iptmodel"
)

func finding(chain, rule, severity string, exit189 int) doctor.Finding {
	return doctor.Finding{
		Family: "ip", Table: "filter", Chain: chain, Rule: rule, Severity: severity,
		Owner: doctor.Owner{Name: "unknown"},
		IPTables: map[string]doctor.Outcome{
			"1.8.9": {Check: iptmodel.Result{Exit: exit189, Error: map[bool]string{true: "cmp sreg undef"}[exit189 == 3]}},
			"1.8.7": {MisreadAs: "-p tcp -j ACCEPT"},
		},
	}
}

var (
	ctRule  = finding("FORWARD", "ct state established,related accept", "fatal", 3)
	tcpRule = finding("INPUT", "tcp dport 80 accept", "misread", 0)
)

func seen(fs ...doctor.Finding) map[string]doctor.Finding {
	m := map[string]doctor.Finding{}
	for _, f := range fs {
		m[key(f)] = f
	}
	return m
}

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before map[string]doctor.Finding
		after  []doctor.Finding
		fixed  doctor.FixResult
		want   []string // "reason: message fragment"
	}{
		{name: "nothing", before: seen(), want: nil},
		{name: "new fatal rule", before: seen(), after: []doctor.Finding{ctRule},
			want: []string{"ForeignRuleBreaksIptables: a rule in ip filter FORWARD will make iptables 1.8.9 -C exit 3 (\"cmp sreg undef\"): K3s's network policy controller will crash-loop"}},
		{name: "still there: no event", before: seen(ctRule), after: []doctor.Finding{ctRule}, want: nil},
		{name: "gone", before: seen(ctRule, tcpRule), after: []doctor.Finding{tcpRule},
			want: []string{"ForeignRuleGone: the rule `ct state established,related accept` in ip filter FORWARD is gone (it was removed or changed)"}},
		{name: "rewritten", before: seen(ctRule), after: nil,
			fixed: doctor.FixResult{Rewritten: []string{"ip filter FORWARD handle 5 (position 0) -> -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"}, RollbackFile: "/var/lib/kube-fence-doctor/rb.json"},
			want: []string{"ForeignRuleGone: the rule `ct state established,related accept` in ip filter FORWARD is gone (kube-fence doctor rewrote it",
				"ForeignRuleRewritten: kube-fence doctor --fix rewrote 1 rule(s) into their iptables-written form, in place: ip filter FORWARD handle 5 (position 0) -> -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT; undo with kube-fence doctor --rollback /var/lib/kube-fence-doctor/rb.json"}},
		{name: "misread only", before: seen(), after: []doctor.Finding{tcpRule},
			want: []string{"ForeignRuleBreaksIptables: iptables 1.8.7 silently reads a rule in ip filter INPUT as `-p tcp -j ACCEPT` (rule `tcp dport 80 accept`, owner unknown)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(tc.before, tc.after, tc.fixed)
			if len(got) != len(tc.want) {
				t.Fatalf("%d events %+v, want %d", len(got), got, len(tc.want))
			}
			for i, e := range got {
				s := e.Reason + ": " + e.Message
				if !strings.HasPrefix(s, tc.want[i]) {
					t.Errorf("event %d:\n got  %s\n want %s...", i, s, tc.want[i])
				}
				if e.Warning != (e.Reason == ReasonBreaks) {
					t.Errorf("event %d: warning %v for %s", i, e.Warning, e.Reason)
				}
			}
		})
	}
}

// TestHealthAndMetrics drives observe as Watch would and reads /healthz
// and /metrics through the handler.
func TestHealthAndMetrics(t *testing.T) {
	g := &Guard{Log: io.Discard, metrics: NewMetrics(), seen: map[string]doctor.Finding{}}
	var events []Event
	g.emit = func(e Event) { events = append(events, e) }
	srv := httptest.NewServer(g.handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "no scan") {
		t.Errorf("before any scan: %d %s", code, body)
	}
	g.observe(doctor.Result{Report: &doctor.Report{Findings: []doctor.Finding{ctRule, tcpRule}}, Duration: 3 * time.Millisecond}, nil)
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "2 finding(s)") {
		t.Errorf("after a scan: %d %s", code, body)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		`kube_fence_doctor_findings{chain="FORWARD",family="ip",owner="unknown",severity="fatal",table="filter"} 1`,
		`kube_fence_doctor_findings{chain="INPUT",family="ip",owner="unknown",severity="misread",table="filter"} 1`,
		`kube_fence_doctor_scans_total{result="ok"} 1`,
		`kube_fence_doctor_scan_duration_seconds_count 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	g.observe(doctor.Result{Report: &doctor.Report{}, Fixed: doctor.FixResult{Rewritten: []string{"a", "b"}, RollbackFile: "rb"}}, nil)
	_, metrics = get("/metrics")
	if strings.Contains(metrics, `kube_fence_doctor_findings{`) || !strings.Contains(metrics, "kube_fence_doctor_repairs_total 2") {
		t.Errorf("after the repair:\n%s", metrics)
	}
	g.observe(doctor.Result{}, errors.New("scan failed: read ruleset: boom"))
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "boom") {
		t.Errorf("after a failed scan: %d %s", code, body)
	}
	if len(events) != 5 { // 2 new, 2 gone, 1 rewritten
		t.Errorf("events: %+v", events)
	}
}
