package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// localLabelIndex finds the local pods of a namespace that a matchLabels
// selector may select without trying every pod against every policy: with
// many policies in a namespace of many local pods (1,000 policies selecting
// one of 50 pods), selectPolicies compared each policy's labels with each
// pod's at every sync, O(policies × pods) per change.
type localLabelIndex struct {
	pods   []*localPod
	byPair map[labelPair][]*localPod // in the order of pods
}

type labelPair struct{ key, value string }

func newLocalLabelIndex(pods []*localPod) *localLabelIndex {
	ix := &localLabelIndex{pods: pods, byPair: map[labelPair][]*localPod{}}
	for _, lp := range pods {
		for k, v := range lp.pod.Labels {
			ix.byPair[labelPair{k, v}] = append(ix.byPair[labelPair{k, v}], lp)
		}
	}
	return ix
}

// candidates returns the pods ls may select, in pod order, and whether
// any may (as mayMatchAny): for a selector of matchLabels only, the pods
// carrying all of them; for any other, every pod.
func (ix *localLabelIndex) candidates(ls *metav1.LabelSelector) ([]*localPod, bool) {
	if len(ls.MatchExpressions) > 0 || len(ls.MatchLabels) == 0 {
		return ix.pods, len(ix.pods) > 0
	}
	var fewest []*localPod
	first := true
	for k, v := range ls.MatchLabels {
		pods := ix.byPair[labelPair{k, v}]
		if len(pods) == 0 {
			return nil, false
		}
		if first || len(pods) < len(fewest) {
			fewest, first = pods, false
		}
	}
	var out []*localPod
	for _, lp := range fewest {
		if hasLabels(lp.pod.Labels, ls.MatchLabels) {
			out = append(out, lp)
		}
	}
	return out, len(out) > 0
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}
