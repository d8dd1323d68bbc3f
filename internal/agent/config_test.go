package agent

import (
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/enforce"
)

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
