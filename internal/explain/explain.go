package explain

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// Query is one question: may From reach To on Protocol/Port? Each end is
// "namespace/name" of a pod or an IP address.
type Query struct {
	From, To string
	Protocol plan.Protocol
	Port     uint16
}

// Report is the answer, one verdict per address family the two ends share
// (IPv4 first). Its JSON form is the documented, stable output of
// `kube-fence explain -o json` (docs/observability.md).
type Report struct {
	Verdicts []Verdict `json:"verdicts"`
}

// Verdict is the answer for one address family.
type Verdict struct {
	Family   string `json:"family"` // IPv4 or IPv6
	From     string `json:"from"`   // namespace/name, or the address when no pod holds it
	FromIP   string `json:"from_ip"`
	To       string `json:"to"`
	ToIP     string `json:"to_ip"`
	Protocol string `json:"protocol"`
	Port     uint16 `json:"port"`
	Allowed  bool   `json:"allowed"`
	Egress   Side   `json:"egress"`  // the source's egress
	Ingress  Side   `json:"ingress"` // the destination's ingress
	// WouldBeDeniedBy lists, for an allowed connection, the policies in
	// audit mode (annotation kube-fence.io/mode: audit) that would deny it
	// once enforced; absent when none would.
	WouldBeDeniedBy []string `json:"would_be_denied_by,omitempty"`
}

// Side is how one side judged the connection.
type Side struct {
	Allowed  bool `json:"allowed"`
	Isolated bool `json:"isolated"`
	// Policies isolate this side ("namespace/name"); always a list.
	Policies []string `json:"policies"`
	// AllowedBy are the rules that allow ("x/allow-web ingress[1]").
	AllowedBy []string `json:"allowed_by"`
	// Reason says why the side allows without a rule deciding: "same pod",
	// "not a pod under NetworkPolicy", "the other end is the pod's node",
	// "not isolated".
	Reason string `json:"reason,omitempty"`
	// NearestMiss is set when the side denies and some rule came close.
	NearestMiss *Miss `json:"nearest_miss,omitempty"`

	// The ClusterNetworkPolicy tiers, set only when the snapshot holds
	// ClusterNetworkPolicies. Tier is what decided this side: Admin,
	// NetworkPolicy, Baseline or Default (the fields above then explain the
	// NetworkPolicy tier), Rule the admin or baseline rule that decided, and
	// PassedBy the Pass rules that handed the connection on before.
	Tier     string   `json:"tier,omitempty"`
	Rule     string   `json:"rule,omitempty"`
	PassedBy []string `json:"passed_by,omitempty"`
}

// Miss is the rule that came closest to allowing a denied connection.
type Miss struct {
	Rule        string `json:"rule"`
	PeerMatched bool   `json:"peer_matched"`
	PortMatched bool   `json:"port_matched"`
}

// ErrInput marks an error in the query (an unknown pod, an address that is
// not one, no family in common): the command exits 2 for it.
var ErrInput = errors.New("invalid query")

// end is one resolved end of the connection.
type end struct {
	name string       // how the verdict names it
	pod  *cluster.Pod // nil for an address no pod holds
	ips  []netip.Addr
}

// Explain answers q over the snapshot.
func Explain(s *cluster.Snapshot, q Query) (*Report, error) {
	from, err := resolve(s, "--from", q.From)
	if err != nil {
		return nil, err
	}
	to, err := resolve(s, "--to", q.To)
	if err != nil {
		return nil, err
	}
	r := &Report{Verdicts: []Verdict{}}
	audit, auditing := policy.WithAuditEnforced(s)
	for _, v4 := range []bool{true, false} {
		src, okFrom := family(from.ips, v4)
		dst, okTo := family(to.ips, v4)
		if !okFrom || !okTo {
			continue
		}
		fromEP, toEP := policy.Endpoint{Pod: from.pod, IP: src}, policy.Endpoint{Pod: to.pod, IP: dst}
		e := policy.Explain(s, fromEP, toEP, q.Protocol, q.Port)
		v := Verdict{
			Family: familyName(v4), From: from.name, FromIP: src.String(), To: to.name, ToIP: dst.String(),
			Protocol: q.Protocol.String(), Port: q.Port, Allowed: e.Allowed,
			Egress: side(e.Egress), Ingress: side(e.Ingress),
		}
		if len(s.ClusterNetworkPolicies) > 0 {
			d := policy.Decide(s, fromEP, toEP, q.Protocol, q.Port)
			v.Allowed = d.Allowed
			tiers(&v.Egress, d.Egress)
			tiers(&v.Ingress, d.Ingress)
		}
		if auditing && v.Allowed {
			if d := policy.Decide(audit, fromEP, toEP, q.Protocol, q.Port); !d.Allowed {
				v.WouldBeDeniedBy = wouldDeny(s, d, policy.Explain(audit, fromEP, toEP, q.Protocol, q.Port))
			}
		}
		r.Verdicts = append(r.Verdicts, v)
	}
	if len(r.Verdicts) == 0 {
		return nil, fmt.Errorf("%w: %s (%s) and %s (%s) share no address family", ErrInput,
			from.name, addrList(from.ips), to.name, addrList(to.ips))
	}
	return r, nil
}

// resolve finds an end: a pod by namespace/name, or an address, which is a
// pod's when a pod of the snapshot holds it.
func resolve(s *cluster.Snapshot, flag, what string) (end, error) {
	if ip, err := netip.ParseAddr(what); err == nil {
		ip = ip.Unmap()
		for _, p := range s.Pods {
			for _, a := range p.IPs {
				if a == ip {
					return end{name: p.Key(), pod: p, ips: []netip.Addr{ip}}, nil
				}
			}
		}
		return end{name: ip.String(), ips: []netip.Addr{ip}}, nil
	}
	ns, name, ok := strings.Cut(what, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return end{}, fmt.Errorf("%w: %s %q: want NAMESPACE/POD or an IP address", ErrInput, flag, what)
	}
	for _, p := range s.Pods {
		if p.Namespace == ns && p.Name == name {
			if len(p.IPs) == 0 {
				return end{}, fmt.Errorf("%w: %s %s: the pod has no address (status.podIPs is empty)", ErrInput, flag, what)
			}
			return end{name: p.Key(), pod: p, ips: p.IPs}, nil
		}
	}
	return end{}, fmt.Errorf("%w: %s %s: no such pod", ErrInput, flag, what)
}

func family(ips []netip.Addr, v4 bool) (netip.Addr, bool) {
	for _, ip := range ips {
		if ip.Is4() == v4 {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func familyName(v4 bool) string {
	if v4 {
		return "IPv4"
	}
	return "IPv6"
}

func addrList(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// wouldDeny lists the policies in audit mode that decide a side the
// verdict with them enforced denies: an audit ClusterNetworkPolicy whose
// rule decided or passed the connection on (by its name: cluster-scoped
// names have no slash), or, when the NetworkPolicy tier decided, the audit
// NetworkPolicies isolating that side (namespace/name).
func wouldDeny(s *cluster.Snapshot, withAudit policy.Verdict, npWithAudit policy.Explanation) []string {
	inAudit := map[string]bool{}
	for _, np := range s.Policies {
		if policy.IsAudit(np) {
			inAudit[np.Namespace+"/"+np.Name] = true
		}
	}
	for _, c := range s.ClusterNetworkPolicies {
		if c != nil && c.Audit {
			inAudit[c.Name] = true
		}
	}
	var out []string
	add := func(p string) {
		if inAudit[p] && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	sides := []struct {
		d  policy.Decision
		np policy.SideVerdict
	}{{withAudit.Egress, npWithAudit.Egress}, {withAudit.Ingress, npWithAudit.Ingress}}
	for _, sd := range sides {
		if sd.d.Allowed {
			continue
		}
		// An audit Pass that handed the connection to a tier that denies
		// is as much the cause as the rule that decided.
		for _, r := range sd.d.Passed {
			add(r.Policy)
		}
		switch {
		case sd.d.Rule != nil:
			add(sd.d.Rule.Policy)
		case sd.d.By == policy.ByNetworkPolicy:
			for _, p := range sd.np.Policies {
				add(p)
			}
		}
	}
	return out
}

func side(v policy.SideVerdict) Side {
	out := Side{Allowed: v.Allowed, Isolated: v.Isolated, Reason: v.Reason,
		Policies: append([]string{}, v.Policies...), AllowedBy: []string{}}
	for _, r := range v.AllowedBy {
		out.AllowedBy = append(out.AllowedBy, r.String())
	}
	if m := v.NearestMiss; m != nil {
		out.NearestMiss = &Miss{Rule: m.Rule.String(), PeerMatched: m.PeerMatched, PortMatched: m.PortMatched}
	}
	return out
}

// tiers adds what the ClusterNetworkPolicy tiers decided to a side.
func tiers(out *Side, d policy.Decision) {
	out.Tier = string(d.By)
	if d.By == policy.BySelf {
		out.Tier = string(policy.ByDefault)
	}
	for _, p := range d.Passed {
		out.PassedBy = append(out.PassedBy, p.String())
	}
	if d.Rule != nil {
		out.Allowed, out.Rule = d.Allowed, d.Rule.String()
	}
}
