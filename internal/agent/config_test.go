package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/enforce"
)

// TestConfigCRDPollInterval: the poll interval must keep the bound
// (the ClusterNetworkPolicy watch starts within a minute of the CRD) and
// not hammer discovery.
func TestConfigCRDPollInterval(t *testing.T) {
	for _, c := range []struct {
		interval time.Duration
		ok       bool
	}{
		{DefaultCRDPollInterval, true},
		{100 * time.Millisecond, true},
		{time.Minute, true},
		{99 * time.Millisecond, false},
		{0, false},
		{time.Minute + time.Second, false},
	} {
		cfg := Defaults()
		cfg.NodeName = "node-1"
		cfg.CRDPollInterval = c.interval
		err := cfg.Validate()
		if c.ok && err != nil {
			t.Errorf("%v: %v, want valid", c.interval, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "--crd-poll-interval")) {
			t.Errorf("%v: %v, want an error naming --crd-poll-interval", c.interval, err)
		}
	}
}

func TestConfigExistingConnections(t *testing.T) {
	cfg := Defaults()
	cfg.NodeName = "n1"
	if cfg.ExistingConnections != enforce.ExistingCut {
		t.Errorf("default --existing-connections is %q, want cut", cfg.ExistingConnections)
	}
	for _, v := range []enforce.ExistingConnections{enforce.ExistingCut, enforce.ExistingKeep} {
		cfg.ExistingConnections = v
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	cfg.ExistingConnections = "flush"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--existing-connections") {
		t.Errorf("flush: error %v, want one naming --existing-connections", err)
	}
}
