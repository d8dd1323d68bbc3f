package e2e

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/agent"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// TestOperationsDocCoversTheAgent fails when docs/operations.md falls behind
// the agent: every flag of `kube-fence agent --help`, every event reason and
// every metric must be named there. (TestAgent checks that the agent exposes
// exactly the documented metrics.)
func TestOperationsDocCoversTheAgent(t *testing.T) {
	doc, err := os.ReadFile(framework.RepoPath(t, "docs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(framework.KubeFenceBinary(t), "agent", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("kube-fence agent --help: %v\n%s", err, out)
	}
	flags := regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1)
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in kube-fence agent --help:\n%s", len(flags), out)
	}
	var names []string
	for _, f := range flags {
		if f[1] != "--help" {
			names = append(names, f[1])
		}
	}
	for _, r := range []string{agent.ReasonDegraded, agent.ReasonRecovered, agent.ReasonPolicyProblem} {
		names = append(names, r)
	}
	for m := range documentedMetrics {
		names = append(names, m)
	}
	slices.Sort(names)
	for _, n := range names {
		if !strings.Contains(string(doc), "`"+n+"`") {
			t.Errorf("docs/operations.md does not document `%s`", n)
		}
	}
}
