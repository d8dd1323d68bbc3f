package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// TestAgentRetriesAFailedRepair lets another socket take the table with the
// owner flag while the agent runs without ownership: the agent's repair is
// refused, it reports that once on the Node and retries with backoff, and
// when the other owner lets go it takes the table back on its own, without
// waiting for a notification or the verify interval (an hour here).
func TestAgentRetriesAFailedRepair(t *testing.T) {
	h := startAgent(t, nil, node(), namespace("x", nil), pod("x", "a", "node-1", nil, "10.42.0.10"))
	want := `ingress-pods-v4 10.42.0.10 comment "x/a" : accept`
	h.eventually(10*time.Second, "first sync", func(s string) bool { return strings.Contains(s, want) })

	// Another process replaces the table with its own, owned one, in one
	// transaction (kernel.Conn rebuilds a table whose flags are not its own).
	intruder, err := kernel.Open(kernel.Options{NetNSFD: h.ns.FD(), Ownership: kernel.OwnershipAuto})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := intruder.Sync(nft.Render(&plan.Plan{})); err != nil {
		t.Fatalf("intruder's table: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !h.hasNodeEvent(ReasonDegraded) {
		if time.Now().After(deadline) {
			intruder.Close()
			t.Fatalf("no %s event while another socket owns the table", ReasonDegraded)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // retries keep failing meanwhile
	// The owner goes; its table stays, orphaned (persist).
	intruder.Close()
	took := h.eventually(5*time.Second, "table taken back", func(s string) bool { return strings.Contains(s, want) })
	t.Logf("repaired %v after the other owner closed its socket", took)
	deadline = time.Now().Add(5 * time.Second)
	for !h.hasNodeEvent(ReasonRecovered) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s event after the repair", ReasonRecovered)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) hasNodeEvent(reason string) bool {
	evs, err := h.client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, ev := range evs.Items {
		if ev.Reason == reason && ev.InvolvedObject.Kind == "Node" {
			return true
		}
	}
	return false
}
