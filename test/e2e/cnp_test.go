package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
	cnpclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/kube-fence/kube-fence/internal/agent"
	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// cnpBound is the bound for the agent to watch ClusterNetworkPolicies
// after their CRD is installed, without a restart: the default
// --crd-poll-interval (30s) plus the informer's list.
const cnpBound = time.Minute

// TestAgentClusterNetworkPolicyCRD runs the agent as the DaemonSet runs it
// (its arguments: the default poll interval, its ServiceAccount token) on a
// cluster without the ClusterNetworkPolicy CRD, then installs the CRD from
// deploy/crds/, creates ClusterNetworkPolicies and removes the CRD again:
// the agent follows each change without a restart, within its bound.
func TestAgentClusterNetworkPolicyCRD(t *testing.T) {
	c := newEnv(t)
	steps := []struct {
		name string
		run  func(*env)
	}{
		{"without the CRD", (*env).stepWithoutCRD},
		{"CRD installed: watched without a restart", (*env).stepCRDInstalled},
		{"a part kube-fence cannot enforce", (*env).stepCNPProblem},
		{"an admin Deny, with packets", (*env).stepCNPPackets},
		{"CRD removed: the tiers dropped", (*env).stepCRDRemoved},
	}
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			parent := c.t
			c.t = t
			defer func() { c.t = parent }()
			s.run(c)
		})
		if !ok {
			return
		}
	}
}

func (c *env) stepWithoutCRD() {
	c.startDefaultAgent("kube-fence-agent")
	c.waitKernel(apiBound, "start without the CRD")
	c.probeExact("start without the CRD")
	c.waitCNPGauges(apiBound, 0, 0)
	// Discovery is what the agent polls: its role must reach it (the
	// default system:discovery role does), and an absent group is a 404.
	agentClient, _ := c.cp.ClientForKubeconfig(c.t, c.base.Kubeconfig)
	_, err := agentClient.Discovery().ServerResourcesForGroupVersion(v1beta1.SchemeGroupVersion.String())
	if !apierrors.IsNotFound(err) {
		c.t.Errorf("discovery of %s as the agent: %v, want 404 Not Found", v1beta1.SchemeGroupVersion, err)
	}
}

func (c *env) stepCRDInstalled() {
	pid := c.agent.Pid()
	start := time.Now()
	c.cp.InstallCRD(c.t, framework.CNPCRDExperimental)
	c.t.Logf("CRD established %v after the create", time.Since(start).Round(time.Millisecond))
	c.createCNP(denyXToY())
	framework.WaitFor(c.t, cnpBound-time.Since(start), "the agent counts the ClusterNetworkPolicy", func(ctx context.Context) (bool, error) {
		return c.cnpGauges(ctx, 1, 0)
	})
	c.t.Logf("ClusterNetworkPolicy watched %v after the CRD's creation (bound %v)", time.Since(start).Round(time.Millisecond), cnpBound)
	if c.agent.Pid() != pid {
		c.t.Fatal("the agent process changed")
	}
	log := c.agentLog()
	if n := strings.Count(log, "ClusterNetworkPolicy is not served"); n != 1 {
		c.t.Errorf("the agent logged the missing CRD %d times, want once", n)
	}
	if !strings.Contains(log, "watching ClusterNetworkPolicies") {
		c.t.Error("the agent did not log that it watches ClusterNetworkPolicies")
	}
	c.checkAgentCNPAccess()
	c.waitKernel(apiBound, "a ClusterNetworkPolicy")
}

// checkAgentCNPAccess: the agent's role reads ClusterNetworkPolicies and
// writes none.
func (c *env) checkAgentCNPAccess() {
	_, cfg := c.cp.ClientForKubeconfig(c.t, c.base.Kubeconfig)
	cs, err := cnpclient.NewForConfig(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	cnps := cs.PolicyV1beta1().ClusterNetworkPolicies()
	if _, err := cnps.List(c.t.Context(), metav1.ListOptions{}); err != nil {
		c.t.Errorf("list ClusterNetworkPolicies as the agent: %v", err)
	}
	if _, err := cnps.Get(c.t.Context(), "deny-x-to-y", metav1.GetOptions{}); err != nil {
		c.t.Errorf("get a ClusterNetworkPolicy as the agent: %v", err)
	}
	intruder := denyXToY()
	intruder.Name = "intruder"
	if _, err := cnps.Create(c.t.Context(), intruder, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		c.t.Errorf("create a ClusterNetworkPolicy as the agent: %v, want 403 Forbidden", err)
	}
	if err := cnps.Delete(c.t.Context(), "deny-x-to-y", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		c.t.Errorf("delete a ClusterNetworkPolicy as the agent: %v, want 403 Forbidden", err)
	}
}

// stepCNPProblem creates a ClusterNetworkPolicy the experimental CRD accepts
// and kube-fence does not enforce (domainNames): a Warning event on it names
// the field, and the gauge counts it rejected.
func (c *env) stepCNPProblem() {
	p := denyXToY()
	p.Name, p.Spec.Priority = "by-domain-name", 20
	p.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{{
		Name: "example", Action: v1beta1.ClusterNetworkPolicyRuleActionAccept,
		To: []v1beta1.ClusterNetworkPolicyEgressPeer{{DomainNames: []v1beta1.DomainName{"example.com"}}},
	}}
	c.createCNP(p)
	var ev corev1.Event
	framework.WaitFor(c.t, 10*time.Second, "a Warning event on the ClusterNetworkPolicy", func(ctx context.Context) (bool, error) {
		sel := fields.Set{"involvedObject.kind": "ClusterNetworkPolicy", "involvedObject.name": p.Name, "reason": agent.ReasonPolicyProblem}
		evs, err := c.cp.Admin.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: sel.AsSelector().String()})
		if err != nil || len(evs.Items) == 0 {
			return false, err
		}
		ev = evs.Items[0]
		return true, nil
	})
	c.t.Logf("event %s %s on %s %s: %s", ev.Type, ev.Reason, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Message)
	if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "spec.egress[0].to[0].domainNames") ||
		ev.InvolvedObject.APIVersion != v1beta1.SchemeGroupVersion.String() || ev.InvolvedObject.UID == "" {
		c.t.Errorf("event = %s %+v %q; want a Warning on policy.networking.k8s.io/v1beta1 ClusterNetworkPolicy %s naming spec.egress[0].to[0].domainNames",
			ev.Type, ev.InvolvedObject, ev.Message, p.Name)
	}
	c.waitCNPGauges(apiBound, 1, 1)
	c.waitKernel(apiBound, "a ClusterNetworkPolicy with domainNames")
}

func (c *env) stepCRDRemoved() {
	pid := c.agent.Pid()
	start := time.Now()
	c.cp.DeleteCRD(c.t, framework.CNPCRDName)
	c.waitCNPGauges(cnpBound, 0, 0)
	c.t.Logf("ClusterNetworkPolicies dropped %v after the CRD's deletion (bound %v)", time.Since(start).Round(time.Millisecond), cnpBound)
	framework.WaitFor(c.t, cnpBound-time.Since(start), "the agent logs the CRD's removal", func(context.Context) (bool, error) {
		return strings.Contains(c.agentLog(), "ClusterNetworkPolicy is no longer served"), nil
	})
	if c.agent.Pid() != pid {
		c.t.Fatal("the agent process changed")
	}
	c.agent.WaitReady(c.t, 10*time.Second)
	c.waitKernel(apiBound, "CRD removed")
	c.probeExact("CRD removed")
}

// stepCNPPackets proves an admin Deny with real packets: every connection
// from x to y is refused, whatever the NetworkPolicies, and the rest follows
// the reference evaluator.
func (c *env) stepCNPPackets() {
	c.waitKernel(apiBound, "admin tier")
	c.probeExact("an admin Deny from x to y")
	snap := c.snapshot()
	for _, p := range snap.ClusterNetworkPolicies {
		if p.Name == "deny-x-to-y" {
			return
		}
	}
	c.t.Fatal("deny-x-to-y is not in the snapshot the probes were judged with")
}

// denyXToY is an admin policy: pods of namespace x may not reach pods of y.
func denyXToY() *v1beta1.ClusterNetworkPolicy {
	return &v1beta1.ClusterNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-x-to-y"},
		Spec: v1beta1.ClusterNetworkPolicySpec{
			Tier: v1beta1.AdminTier, Priority: 10,
			Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: sel(map[string]string{"ns": "x"})},
			Egress: []v1beta1.ClusterNetworkPolicyEgressRule{{
				Name: "deny-y", Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
				To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: sel(map[string]string{"ns": "y"})}},
			}},
		},
	}
}

// cnpClient returns the admin's ClusterNetworkPolicy client, made once:
// snapshot asks for it at every step.
func (c *env) cnpClient() cnpclient.Interface {
	c.t.Helper()
	if c.cnps == nil {
		cs, err := cnpclient.NewForConfig(c.cp.AdminConfig)
		if err != nil {
			c.t.Fatal(err)
		}
		c.cnps = cs
	}
	return c.cnps
}

func (c *env) createCNP(p *v1beta1.ClusterNetworkPolicy) {
	c.t.Helper()
	_, err := c.cnpClient().PolicyV1beta1().ClusterNetworkPolicies().Create(c.t.Context(), p,
		metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
	if err != nil {
		c.t.Fatalf("create ClusterNetworkPolicy %s: %v", p.Name, err)
	}
}

// clusterPolicies lists the ClusterNetworkPolicies as the agent converts
// them; none when the CRD is not installed.
func (c *env) clusterPolicies() []*cluster.ClusterNetworkPolicy {
	c.t.Helper()
	list, err := c.cnpClient().PolicyV1beta1().ClusterNetworkPolicies().List(c.t.Context(), metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		c.t.Fatalf("list ClusterNetworkPolicies: %v", err)
	}
	var out []*cluster.ClusterNetworkPolicy
	for i := range list.Items {
		out = append(out, cluster.ClusterNetworkPolicyFromAPI(&list.Items[i]))
	}
	return out
}

// cnpGauges reports whether the agent's ClusterNetworkPolicy gauges are
// enforced and rejected.
func (c *env) cnpGauges(ctx context.Context, enforced, rejected float64) (bool, error) {
	code, body, err := c.agent.Get(ctx, "/metrics")
	if err != nil || code != 200 {
		return false, err
	}
	samples, _ := framework.ParseMetrics(body)
	e, ok1 := framework.Value(samples, "kube_fence_policies", `kind="ClusterNetworkPolicy",state="enforced"`)
	r, ok2 := framework.Value(samples, "kube_fence_policies", `kind="ClusterNetworkPolicy",state="rejected"`)
	return ok1 && ok2 && e == enforced && r == rejected, nil
}

func (c *env) waitCNPGauges(bound time.Duration, enforced, rejected float64) {
	c.t.Helper()
	framework.WaitFor(c.t, bound, "ClusterNetworkPolicy gauges", func(ctx context.Context) (bool, error) {
		return c.cnpGauges(ctx, enforced, rejected)
	})
}

func (c *env) agentLog() string {
	c.t.Helper()
	data, err := os.ReadFile(c.agent.LogPath)
	if err != nil {
		c.t.Fatal(err)
	}
	return string(data)
}

// TestClusterNetworkPolicyCRDChannels pins what deploy/crds/README.md says
// of the two channels' manifests against a real API server: the standard
// channel refuses nodes peers and destinationNamedPort as unknown fields,
// and prunes them for a client that does not ask for strict validation,
// which leaves an empty entry it refuses too; the experimental channel
// accepts them.
func TestClusterNetworkPolicyCRDChannels(t *testing.T) {
	cp := framework.Start(t)
	cs, err := cnpclient.NewForConfig(cp.AdminConfig)
	if err != nil {
		t.Fatal(err)
	}
	cnps := cs.PolicyV1beta1().ClusterNetworkPolicies()
	nodes := denyXToY()
	nodes.Name = "to-nodes"
	nodes.Spec.Egress[0].To = []v1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: &metav1.LabelSelector{}}}
	named := denyXToY()
	named.Name = "to-named-port"
	named.Spec.Egress[0].Protocols = []v1beta1.ClusterNetworkPolicyProtocol{{DestinationNamedPort: "http"}}
	strict := metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}
	lax := metav1.CreateOptions{FieldValidation: metav1.FieldValidationIgnore}

	cp.InstallCRD(t, framework.CNPCRDStandard)
	for _, p := range []*v1beta1.ClusterNetworkPolicy{nodes, named} {
		_, err := cnps.Create(t.Context(), p, strict)
		if err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("standard channel, strict: create %s: %v, want an unknown field error", p.Name, err)
		}
		// Without strict validation the field is pruned, which leaves an
		// empty peer or protocol entry that the CRD's rules refuse.
		_, err = cnps.Create(t.Context(), p, lax)
		if err == nil || !strings.Contains(err.Error(), "should have at least 1 properties") {
			t.Errorf("standard channel, lax client: create %s: %v, want the pruned entry refused as empty", p.Name, err)
		}
	}
	cp.DeleteCRD(t, framework.CNPCRDName)

	cp.InstallCRD(t, framework.CNPCRDExperimental)
	for _, p := range []*v1beta1.ClusterNetworkPolicy{nodes, named} {
		p.ResourceVersion = ""
		if _, err := cnps.Create(t.Context(), p, strict); err != nil {
			t.Fatalf("experimental channel: create %s: %v", p.Name, err)
		}
	}

	// Back to the standard channel with the objects stored: what is read
	// is pruned to the schema, which leaves an empty peer, and the agent's
	// validation names it (the rule fails closed; see deploy/crds/README.md).
	cp.InstallCRD(t, framework.CNPCRDStandard)
	var got *v1beta1.ClusterNetworkPolicy
	framework.WaitFor(t, 10*time.Second, "to-nodes read back pruned", func(ctx context.Context) (bool, error) {
		var err error
		got, err = cnps.Get(ctx, nodes.Name, metav1.GetOptions{})
		return err == nil && got.Spec.Egress[0].To[0].Nodes == nil, err
	})
	if peer := got.Spec.Egress[0].To[0]; peer.Namespaces != nil || peer.Pods != nil || len(peer.Networks) > 0 {
		t.Errorf("to-nodes read back under the standard channel: peer %+v, want empty", peer)
	}
	errs := policy.ValidateClusterNetworkPolicy(got)
	if len(errs) == 0 || !strings.HasPrefix(errs[0].Field, "spec.egress[0].to[0]") {
		t.Errorf("validation of the pruned to-nodes: %v, want an error at spec.egress[0].to[0]", errs)
	}
	t.Logf("to-nodes under the standard channel: %v", errs)
	gotNamed, err := cnps.Get(t.Context(), named.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs = policy.ValidateClusterNetworkPolicy(gotNamed)
	if len(errs) == 0 || !strings.HasPrefix(errs[0].Field, "spec.egress[0].protocols[0]") {
		t.Errorf("validation of the pruned to-named-port (%+v): %v, want an error at spec.egress[0].protocols[0]", gotNamed.Spec.Egress[0].Protocols, errs)
	}
	t.Logf("to-named-port under the standard channel: %v", errs)
}
