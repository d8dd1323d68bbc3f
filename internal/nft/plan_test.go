package nft

import (
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/plan/plantest"
)

func testPlan() *plan.Plan { return plantest.Small() }
