package doctor

import (
	"github.com/google/nftables/expr"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/nftext"
	"github.com/kube-fence/kube-fence/internal/nlrules"
)

// renderFirst renders the first rule of a chain with nftext, sets inline.
func renderFirst(ns *netns.NS, family byte, table, chain string) string {
	c, err := nlrules.Dial(ns.FD())
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	rs, err := c.Read()
	if err != nil {
		return "read: " + err.Error()
	}
	rules := rs.ChainRules(family, table, chain)
	if len(rules) == 0 {
		return ""
	}
	anon := newSetReader(ns.FD())(family, table)
	return nftext.Rule(rules[0].Decoded(), nftext.Options{Family: family, AnonSet: anon})
}

// firstExprs returns the expressions of the first rule of a chain.
func firstExprs(ns *netns.NS, family byte, table, chain string) []expr.Any {
	c, err := nlrules.Dial(ns.FD())
	if err != nil {
		return nil
	}
	defer c.Close()
	rs, err := c.Read()
	if err != nil {
		return nil
	}
	rules := rs.ChainRules(family, table, chain)
	if len(rules) == 0 {
		return nil
	}
	return rules[0].Decoded()
}
