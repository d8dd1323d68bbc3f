package policy

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// converted is a selector converted by apimachinery, or why it could not be.
type converted struct {
	sel labels.Selector
	err error
}

// selector converts a LabelSelector once per compile: the same selectors
// come back in many policies, and conversion validates every key and value
// with regular expressions.
func (c *compiler) selector(ls *metav1.LabelSelector) (labels.Selector, error) {
	key := selectorKey(ls)
	if cv, ok := c.selectors[key]; ok {
		return cv.sel, cv.err
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	c.selectors[key] = converted{sel, err}
	return sel, err
}

// selectorKey renders a LabelSelector canonically (map order aside). Every
// string is length-prefixed, so no key or value, however odd, can make two
// different selectors collide.
func selectorKey(ls *metav1.LabelSelector) string {
	var b strings.Builder
	put := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	for _, k := range slices.Sorted(maps.Keys(ls.MatchLabels)) {
		put(k)
		put(ls.MatchLabels[k])
	}
	for _, e := range ls.MatchExpressions {
		b.WriteByte('|')
		put(e.Key)
		put(string(e.Operator))
		b.WriteString(strconv.Itoa(len(e.Values)))
		for _, v := range e.Values {
			put(v)
		}
	}
	return b.String()
}

// mayMatchAny is a cheap necessary condition for a selector to match one of
// the label sets: a selector made only of matchLabels must find each of them
// on one pod. It lets a node skip the policies of its namespaces that select
// none of its pods without converting their selectors.
func mayMatchAny(ls *metav1.LabelSelector, sets []labels.Set) bool {
	if len(ls.MatchExpressions) > 0 {
		return true
	}
	for _, l := range sets {
		all := true
		for k, v := range ls.MatchLabels {
			if got, ok := l[k]; !ok || got != v {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
