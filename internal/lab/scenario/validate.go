package scenario

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kube-fence/kube-fence/internal/policy"
)

// FamiliesAnnotation on a pod restricts the address families the lab gives
// it when status.podIPs is left out: "IPv4", "IPv6" or "IPv4,IPv6" (the
// default, as long as the pod's node has a pod CIDR of each family).
const FamiliesAnnotation = "lab.kube-fence.io/ip-families"

// validatePolicy checks one NetworkPolicy as the API server would.
var validatePolicy = policy.Validate

var supportedProtocols = []corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP}

// validate checks every object and the relations between them, and collects
// every problem rather than stopping at the first.
func (s *Scenario) validate() error {
	v := &validator{s: s}
	v.namespaces()
	nodes := v.nodes()
	v.pods(nodes)
	v.policies()
	v.clusterPolicies()
	if len(v.problems) > 0 {
		return &InvalidError{Problems: v.problems}
	}
	return nil
}

type validator struct {
	s        *Scenario
	problems []string
}

// report adds errs against obj, dropping exact repeats (two validators may
// notice the same thing).
func (v *validator) report(obj any, name string, errs field.ErrorList) {
	for _, e := range errs {
		p := fmt.Sprintf("%s (%s): %v", name, v.s.origin[obj], e)
		if !slices.Contains(v.problems, p) {
			v.problems = append(v.problems, p)
		}
	}
}

func (v *validator) namespaces() {
	seen := map[string]bool{}
	for _, ns := range v.s.Namespaces {
		name := "namespace " + ns.Name
		errs := validateMeta(ns.Name, ns.Labels, validation.IsDNS1123Label)
		if seen[ns.Name] {
			errs = append(errs, field.Duplicate(field.NewPath("metadata", "name"), ns.Name))
		}
		seen[ns.Name] = true
		v.report(ns, name, errs)
	}
}

// nodes validates the Node objects and returns their names.
func (v *validator) nodes() map[string]bool {
	seen := map[string]bool{}
	var cidrs []netip.Prefix
	for _, n := range v.s.Nodes {
		errs := validateMeta(n.Name, n.Labels, validation.IsDNS1123Subdomain)
		if seen[n.Name] {
			errs = append(errs, field.Duplicate(field.NewPath("metadata", "name"), n.Name))
		}
		seen[n.Name] = true
		mine, cerrs := nodeCIDRs(n)
		errs = append(errs, cerrs...)
		for i, c := range mine {
			for _, other := range cidrs {
				if c.Overlaps(other) {
					errs = append(errs, field.Invalid(field.NewPath("spec", "podCIDRs").Index(i), c.String(),
						"overlaps another node's pod CIDR "+other.String()))
				}
			}
		}
		cidrs = append(cidrs, mine...)
		v.report(n, "node "+n.Name, errs)
	}
	return seen
}

func nodeCIDRs(n *corev1.Node) ([]netip.Prefix, field.ErrorList) {
	var errs field.ErrorList
	path := field.NewPath("spec", "podCIDRs")
	list := n.Spec.PodCIDRs
	if len(list) == 0 && n.Spec.PodCIDR != "" {
		list, path = []string{n.Spec.PodCIDR}, field.NewPath("spec", "podCIDR")
	} else if n.Spec.PodCIDR != "" && (len(list) == 0 || list[0] != n.Spec.PodCIDR) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "podCIDR"), n.Spec.PodCIDR, "must equal spec.podCIDRs[0]"))
	}
	var out []netip.Prefix
	families := map[bool]bool{}
	for i, c := range list {
		p, err := netip.ParsePrefix(c)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(path.Index(i), c, "not a CIDR"))
			continue
		case families[p.Addr().Is4()]:
			errs = append(errs, field.Invalid(path.Index(i), c, "at most one pod CIDR per IP family"))
			continue
		case p.Addr().Is4() && p.Bits() > 30, p.Addr().Is6() && p.Bits() > 126:
			errs = append(errs, field.Invalid(path.Index(i), c, "too small for a gateway and pods"))
			continue
		}
		families[p.Addr().Is4()] = true
		out = append(out, p.Masked())
	}
	return out, errs
}

func (v *validator) pods(nodes map[string]bool) {
	seen := map[string]bool{}
	owner := map[netip.Addr]string{}
	for _, p := range v.s.Pods {
		key := p.Namespace + "/" + p.Name
		errs := validateMeta(p.Name, p.Labels, validation.IsDNS1123Subdomain)
		errs = append(errs, validateNamespaceName(p.Namespace)...)
		if seen[key] {
			errs = append(errs, field.Duplicate(field.NewPath("metadata", "name"), p.Name))
		}
		seen[key] = true
		errs = append(errs, validatePorts(p)...)
		errs = append(errs, validatePlacement(p, nodes, len(v.s.Nodes))...)
		ips, ipErrs := validatePodIPs(p)
		errs = append(errs, ipErrs...)
		for i, ip := range ips {
			if other, ok := owner[ip]; ok {
				errs = append(errs, field.Invalid(field.NewPath("status", "podIPs").Index(i).Child("ip"), ip.String(),
					"already the address of pod "+other))
			}
			owner[ip] = key
		}
		v.report(p, "pod "+key, errs)
	}
}

func (v *validator) policies() {
	seen := map[string]bool{}
	for _, np := range v.s.Policies {
		key := np.Namespace + "/" + np.Name
		errs := validateMeta(np.Name, np.Labels, validation.IsDNS1123Subdomain)
		errs = append(errs, validateNamespaceName(np.Namespace)...)
		if seen[key] {
			errs = append(errs, field.Duplicate(field.NewPath("metadata", "name"), np.Name))
		}
		seen[key] = true
		errs = append(errs, validatePolicy(np)...)
		v.report(np, "networkpolicy "+key, errs)
	}
}

func validateMeta(name string, labels map[string]string, nameCheck func(string) []string) field.ErrorList {
	var errs field.ErrorList
	path := field.NewPath("metadata", "name")
	if name == "" {
		errs = append(errs, field.Required(path, "the lab needs every object named"))
	}
	for _, msg := range nameCheck(name) {
		if name != "" {
			errs = append(errs, field.Invalid(path, name, msg))
		}
	}
	return append(errs, metav1validation.ValidateLabels(labels, field.NewPath("metadata", "labels"))...)
}

func validateNamespaceName(ns string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(ns) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "namespace"), ns, msg))
	}
	return errs
}

func validatePorts(p *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	names := map[string]bool{}
	for ci, c := range p.Spec.Containers {
		for pi, port := range c.Ports {
			path := field.NewPath("spec", "containers").Index(ci).Child("ports").Index(pi)
			for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(path.Child("containerPort"), port.ContainerPort, msg))
			}
			if port.Protocol != "" && !slices.Contains(supportedProtocols, port.Protocol) {
				errs = append(errs, field.NotSupported(path.Child("protocol"), port.Protocol, supportedProtocols))
			}
			if port.Name == "" {
				continue
			}
			for _, msg := range validation.IsValidPortName(port.Name) {
				errs = append(errs, field.Invalid(path.Child("name"), port.Name, msg))
			}
			if names[port.Name] {
				errs = append(errs, field.Duplicate(path.Child("name"), port.Name))
			}
			names[port.Name] = true
		}
	}
	return errs
}

func validatePlacement(p *corev1.Pod, nodes map[string]bool, declared int) field.ErrorList {
	path := field.NewPath("spec", "nodeName")
	switch {
	case declared == 0:
		return nil // the single-node lab hosts every pod
	case p.Spec.NodeName != "" && !nodes[p.Spec.NodeName]:
		return field.ErrorList{field.NotFound(path, p.Spec.NodeName)}
	case p.Spec.NodeName == "" && declared > 1:
		return field.ErrorList{field.Required(path, fmt.Sprintf("the scenario declares %d nodes: name the one hosting the pod", declared))}
	}
	return nil
}

// validatePodIPs checks status.podIPs, status.podIP, status.phase and the
// families annotation, and returns the pod's given addresses.
func validatePodIPs(p *corev1.Pod) ([]netip.Addr, field.ErrorList) {
	var errs field.ErrorList
	var ips []netip.Addr
	path := field.NewPath("status", "podIPs")
	families := map[bool]bool{}
	for i, pip := range p.Status.PodIPs {
		a, err := netip.ParseAddr(pip.IP)
		if err != nil || a.Zone() != "" {
			errs = append(errs, field.Invalid(path.Index(i).Child("ip"), pip.IP, "not an IP address"))
			continue
		}
		a = a.Unmap()
		if families[a.Is4()] {
			errs = append(errs, field.Invalid(path.Index(i).Child("ip"), pip.IP, "at most one address per IP family"))
			continue
		}
		families[a.Is4()] = true
		ips = append(ips, a)
	}
	if p.Status.PodIP != "" {
		if len(p.Status.PodIPs) > 0 && p.Status.PodIPs[0].IP != p.Status.PodIP {
			errs = append(errs, field.Invalid(field.NewPath("status", "podIP"), p.Status.PodIP, "must equal status.podIPs[0].ip"))
		} else if len(p.Status.PodIPs) == 0 {
			a, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil || a.Zone() != "" {
				errs = append(errs, field.Invalid(field.NewPath("status", "podIP"), p.Status.PodIP, "not an IP address"))
			} else {
				ips = append(ips, a.Unmap())
			}
		}
	}
	if p.Spec.HostNetwork && len(ips) > 0 {
		errs = append(errs, field.Forbidden(path, "a hostNetwork pod takes its node's addresses in the lab"))
	}
	switch p.Status.Phase {
	case "", corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed, corev1.PodUnknown:
	default:
		errs = append(errs, field.NotSupported(field.NewPath("status", "phase"), p.Status.Phase,
			[]corev1.PodPhase{corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed, corev1.PodUnknown}))
	}
	if value, ok := p.Annotations[FamiliesAnnotation]; ok {
		apath := field.NewPath("metadata", "annotations").Key(FamiliesAnnotation)
		want, err := parseFamilies(value)
		if err != nil {
			errs = append(errs, field.Invalid(apath, value, err.Error()))
		} else if len(ips) > 0 && !sameFamilies(want, ips) {
			errs = append(errs, field.Invalid(apath, value, "disagrees with status.podIPs"))
		}
	}
	return ips, errs
}

func parseFamilies(value string) ([]corev1.IPFamily, error) {
	var out []corev1.IPFamily
	for _, f := range strings.Split(value, ",") {
		fam := corev1.IPFamily(strings.TrimSpace(f))
		if fam != corev1.IPv4Protocol && fam != corev1.IPv6Protocol {
			return nil, fmt.Errorf(`want "IPv4", "IPv6" or "IPv4,IPv6"`)
		}
		if slices.Contains(out, fam) {
			return nil, fmt.Errorf("family %s named twice", fam)
		}
		out = append(out, fam)
	}
	return out, nil
}

func sameFamilies(want []corev1.IPFamily, ips []netip.Addr) bool {
	if len(want) != len(ips) {
		return false
	}
	for _, ip := range ips {
		if !slices.Contains(want, FamilyOf(ip)) {
			return false
		}
	}
	return true
}

// FamilyOf names the address family of ip as Kubernetes does.
func FamilyOf(ip netip.Addr) corev1.IPFamily {
	if ip.Is4() {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}
