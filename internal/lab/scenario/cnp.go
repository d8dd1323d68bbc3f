package scenario

import (
	"k8s.io/apimachinery/pkg/util/validation/field"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// ClusterNetworkPolicy documents are accepted in both API versions that
// network-policy-api v0.3.0 serves; the schemas are identical, so both
// decode into the v1beta1 type.
const (
	cnpGroup       = "policy.networking.k8s.io"
	cnpKind        = "ClusterNetworkPolicy"
	cnpAPIVersion  = cnpGroup + "/v1beta1"
	cnpAPIVersion2 = cnpGroup + "/v1alpha2"
)

func isClusterNetworkPolicy(apiVersion, kind string) bool {
	return kind == cnpKind && (apiVersion == cnpAPIVersion || apiVersion == cnpAPIVersion2)
}

// clusterNetworkPolicy decodes one ClusterNetworkPolicy document. It is
// cluster-scoped: a namespace is not defaulted but refused by validation.
func (d *decoder) clusterNetworkPolicy(where string, j []byte) {
	o := &v1beta1.ClusterNetworkPolicy{}
	if d.strict(where, "clusternetworkpolicy", j, o) {
		d.s.ClusterNetworkPolicies = append(d.s.ClusterNetworkPolicies, o)
		d.s.origin[o] = where
	}
}

// clusterPolicies validates every ClusterNetworkPolicy as the API server
// with the experimental CRD would, and refuses what kube-fence cannot
// enforce (see policy.ValidateClusterNetworkPolicy).
func (v *validator) clusterPolicies() {
	seen := map[string]bool{}
	for _, p := range v.s.ClusterNetworkPolicies {
		var errs field.ErrorList
		if p.Name == "" {
			errs = append(errs, field.Required(field.NewPath("metadata", "name"), "the lab needs every object named"))
		}
		if seen[p.Name] {
			errs = append(errs, field.Duplicate(field.NewPath("metadata", "name"), p.Name))
		}
		seen[p.Name] = true
		errs = append(errs, policy.ValidateClusterNetworkPolicy(p)...)
		v.report(p, "clusternetworkpolicy "+p.Name, errs)
	}
}

func clusterPoliciesSnapshot(in []*v1beta1.ClusterNetworkPolicy) []*cluster.ClusterNetworkPolicy {
	var out []*cluster.ClusterNetworkPolicy
	for _, p := range in {
		out = append(out, cluster.ClusterNetworkPolicyFromAPI(p))
	}
	return out
}
