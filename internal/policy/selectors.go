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
