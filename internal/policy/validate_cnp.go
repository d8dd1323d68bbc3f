package policy

import (
	"fmt"
	"net/netip"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// The limits of the ClusterNetworkPolicy CRD (network-policy-api v0.3.0).
const (
	cnpMaxPriority = 1000
	cnpMaxItems    = 25 // rules per direction, peers per rule, protocols, networks, domainNames
	cnpMaxRuleName = 100
	cnpMaxCIDR     = 43
)

// ValidateClusterNetworkPolicy refuses what the API server refuses when a
// ClusterNetworkPolicy is created through the experimental channel's CRD of
// network-policy-api v0.3.0 (its schema and CEL rules; the standard channel
// also refuses destinationNamedPort and nodes, as unknown fields), and two
// things more:
//   - domainNames, which kube-fence does not enforce: a rule with it is
//     refused, naming the rule, rather than enforced without the names;
//   - a destinationNamedPort that is no valid port name, which could never
//     match a container port.
//
// Like Validate for NetworkPolicy, it is the lab's gate; the tiers'
// evaluation copes with anything and fails closed.
func ValidateClusterNetworkPolicy(p *v1beta1.ClusterNetworkPolicy) field.ErrorList {
	if p == nil {
		return field.ErrorList{field.Required(field.NewPath("clusternetworkpolicy"), "must not be nil")}
	}
	errs := apivalidation.ValidateObjectMeta(&p.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	spec := field.NewPath("spec")
	switch p.Spec.Tier {
	case v1beta1.AdminTier, v1beta1.BaselineTier:
	case "":
		errs = append(errs, field.Required(spec.Child("tier"), "Admin or Baseline"))
	default:
		errs = append(errs, field.NotSupported(spec.Child("tier"), p.Spec.Tier, []string{string(v1beta1.AdminTier), string(v1beta1.BaselineTier)}))
	}
	if p.Spec.Priority < 0 || p.Spec.Priority > cnpMaxPriority {
		errs = append(errs, field.Invalid(spec.Child("priority"), p.Spec.Priority, fmt.Sprintf("must be between 0 and %d", cnpMaxPriority)))
	}
	errs = append(errs, validateCNPSelection(p.Spec.Subject.Namespaces, p.Spec.Subject.Pods, spec.Child("subject"))...)
	errs = append(errs, cnpTooMany(len(p.Spec.Ingress), spec.Child("ingress"))...)
	for i, r := range p.Spec.Ingress {
		path := spec.Child("ingress").Index(i)
		errs = append(errs, validateCNPRuleHead(r.Name, r.Action, len(r.From), path, "from")...)
		for j, peer := range r.From {
			errs = append(errs, validateCNPSelection(peer.Namespaces, peer.Pods, path.Child("from").Index(j))...)
		}
		errs = append(errs, validateCNPProtocols(r.Protocols, path.Child("protocols"))...)
	}
	errs = append(errs, cnpTooMany(len(p.Spec.Egress), spec.Child("egress"))...)
	for i, r := range p.Spec.Egress {
		errs = append(errs, validateCNPEgressRule(&r, spec.Child("egress").Index(i))...)
	}
	return errs
}

func cnpTooMany(n int, path *field.Path) field.ErrorList {
	if n > cnpMaxItems {
		return field.ErrorList{field.TooMany(path, n, cnpMaxItems)}
	}
	return nil
}

func validateCNPRuleHead(name string, action v1beta1.ClusterNetworkPolicyRuleAction, peers int, path *field.Path, peersField string) field.ErrorList {
	var errs field.ErrorList
	if len(name) > cnpMaxRuleName {
		errs = append(errs, field.TooLong(path.Child("name"), "", cnpMaxRuleName))
	}
	actions := []string{string(v1beta1.ClusterNetworkPolicyRuleActionAccept), string(v1beta1.ClusterNetworkPolicyRuleActionDeny),
		string(v1beta1.ClusterNetworkPolicyRuleActionPass)}
	switch action {
	case v1beta1.ClusterNetworkPolicyRuleActionAccept, v1beta1.ClusterNetworkPolicyRuleActionDeny, v1beta1.ClusterNetworkPolicyRuleActionPass:
	case "":
		errs = append(errs, field.Required(path.Child("action"), "Accept, Deny or Pass"))
	default:
		errs = append(errs, field.NotSupported(path.Child("action"), action, actions))
	}
	if peers == 0 {
		errs = append(errs, field.Required(path.Child(peersField), "must have at least one peer"))
	}
	return append(errs, cnpTooMany(peers, path.Child(peersField))...)
}

// validateCNPSelection checks a subject or an ingress peer: exactly one of
// namespaces and pods, with valid selectors.
func validateCNPSelection(namespaces *metav1.LabelSelector, pods *v1beta1.NamespacedPod, path *field.Path) field.ErrorList {
	errs, n := validateCNPSelectors(namespaces, pods, path)
	return append(errs, cnpExactlyOne(n, path, "namespaces, pods")...)
}

// validateCNPSelectors checks the selectors that are set and counts them.
func validateCNPSelectors(namespaces *metav1.LabelSelector, pods *v1beta1.NamespacedPod, path *field.Path) (field.ErrorList, int) {
	var errs field.ErrorList
	opts := metav1validation.LabelSelectorValidationOptions{}
	n := 0
	if namespaces != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(namespaces, opts, path.Child("namespaces"))...)
	}
	if pods != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(&pods.NamespaceSelector, opts, path.Child("pods", "namespaceSelector"))...)
		errs = append(errs, metav1validation.ValidateLabelSelector(&pods.PodSelector, opts, path.Child("pods", "podSelector"))...)
	}
	return errs, n
}

func cnpExactlyOne(n int, path *field.Path, fields string) field.ErrorList {
	switch {
	case n == 0:
		return field.ErrorList{field.Required(path, "must specify exactly one of "+fields)}
	case n > 1:
		return field.ErrorList{field.Forbidden(path, "must specify exactly one of "+fields)}
	}
	return nil
}

func validateCNPEgressRule(r *v1beta1.ClusterNetworkPolicyEgressRule, path *field.Path) field.ErrorList {
	errs := validateCNPRuleHead(r.Name, r.Action, len(r.To), path, "to")
	addressPeers := false
	opts := metav1validation.LabelSelectorValidationOptions{}
	for j, peer := range r.To {
		pp := path.Child("to").Index(j)
		perrs, n := validateCNPSelectors(peer.Namespaces, peer.Pods, pp)
		errs = append(errs, perrs...)
		if peer.Nodes != nil {
			n++
			errs = append(errs, metav1validation.ValidateLabelSelector(peer.Nodes, opts, pp.Child("nodes"))...)
		}
		if peer.Networks != nil {
			n++
			errs = append(errs, validateCNPNetworks(peer.Networks, pp.Child("networks"))...)
		}
		if peer.DomainNames != nil {
			n++
			errs = append(errs, field.Forbidden(pp.Child("domainNames"),
				"kube-fence does not enforce domainNames (experimental in network-policy-api); write the addresses as networks instead"))
		}
		addressPeers = addressPeers || peer.Nodes != nil || peer.Networks != nil || peer.DomainNames != nil
		errs = append(errs, cnpExactlyOne(n, pp, "namespaces, pods, nodes, networks, domainNames")...)
	}
	errs = append(errs, validateCNPProtocols(r.Protocols, path.Child("protocols"))...)
	for i, c := range r.Protocols {
		if c.DestinationNamedPort != "" && addressPeers {
			errs = append(errs, field.Invalid(path.Child("protocols").Index(i).Child("destinationNamedPort"), c.DestinationNamedPort,
				"not allowed in a rule with nodes, networks or domainNames peers: only pods have named ports"))
		}
	}
	return errs
}

func validateCNPNetworks(nets []v1beta1.CIDR, path *field.Path) field.ErrorList {
	if len(nets) == 0 {
		return field.ErrorList{field.Required(path, "must have at least one CIDR")}
	}
	errs := cnpTooMany(len(nets), path)
	seen := map[v1beta1.CIDR]bool{}
	for i, n := range nets {
		p, err := netip.ParsePrefix(string(n))
		switch {
		case len(n) > cnpMaxCIDR:
			errs = append(errs, field.TooLong(path.Index(i), "", cnpMaxCIDR))
		case err != nil || p.Addr().Is4In6() || p.Addr().Zone() != "":
			errs = append(errs, field.Invalid(path.Index(i), n, "must be a CIDR such as 10.0.0.0/8 or fd00::/8"))
		case p.Masked() != p:
			errs = append(errs, field.Invalid(path.Index(i), n, fmt.Sprintf("must have no bits set beyond the prefix length (%s)", p.Masked())))
		}
		if seen[n] {
			errs = append(errs, field.Duplicate(path.Index(i), n))
		}
		seen[n] = true
	}
	return errs
}

func validateCNPProtocols(protocols []v1beta1.ClusterNetworkPolicyProtocol, path *field.Path) field.ErrorList {
	if protocols != nil && len(protocols) == 0 {
		return field.ErrorList{field.Required(path, "must have at least one entry when present")}
	}
	errs := cnpTooMany(len(protocols), path)
	for i, c := range protocols {
		pp := path.Index(i)
		n := 0
		if c.TCP != nil {
			n++
			errs = append(errs, validateCNPPort(c.TCP.DestinationPort, pp.Child("tcp"))...)
		}
		if c.UDP != nil {
			n++
			errs = append(errs, validateCNPPort(c.UDP.DestinationPort, pp.Child("udp"))...)
		}
		if c.SCTP != nil {
			n++
			errs = append(errs, validateCNPPort(c.SCTP.DestinationPort, pp.Child("sctp"))...)
		}
		if c.DestinationNamedPort != "" {
			n++
			for _, msg := range validation.IsValidPortName(c.DestinationNamedPort) {
				errs = append(errs, field.Invalid(pp.Child("destinationNamedPort"), c.DestinationNamedPort, msg))
			}
		}
		errs = append(errs, cnpExactlyOne(n, pp, "tcp, udp, sctp, destinationNamedPort")...)
	}
	return errs
}

func validateCNPPort(p *v1beta1.Port, path *field.Path) field.ErrorList {
	if p == nil {
		return field.ErrorList{field.Required(path.Child("destinationPort"), "the CRD requires it (write no protocols entry to match every port)")}
	}
	path = path.Child("destinationPort")
	var errs field.ErrorList
	switch {
	case p.Number != 0 && p.Range != nil:
		errs = append(errs, field.Forbidden(path, "must specify exactly one of number, range"))
	case p.Number == 0 && p.Range == nil:
		errs = append(errs, field.Required(path, "must specify exactly one of number, range"))
	}
	if p.Number != 0 {
		for _, msg := range validation.IsValidPortNum(int(p.Number)) {
			errs = append(errs, field.Invalid(path.Child("number"), p.Number, msg))
		}
	}
	if r := p.Range; r != nil {
		for _, msg := range validation.IsValidPortNum(int(r.Start)) {
			errs = append(errs, field.Invalid(path.Child("range", "start"), r.Start, msg))
		}
		for _, msg := range validation.IsValidPortNum(int(r.End)) {
			errs = append(errs, field.Invalid(path.Child("range", "end"), r.End, msg))
		}
		if r.Start >= r.End {
			errs = append(errs, field.Invalid(path.Child("range"), fmt.Sprintf("%d-%d", r.Start, r.End), "start must be below end"))
		}
	}
	return errs
}
