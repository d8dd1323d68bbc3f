package doctor

import (
	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/nftext"
	"github.com/kube-fence/kube-fence/internal/nlrules"
	"golang.org/x/sys/unix"
)

// renderFirst renders the first rule of a chain with nftext, sets inline.
func renderFirst(ns *netns.NS, table, chain string) string {
	c, err := nlrules.Dial(ns.FD())
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	rs, err := c.Read()
	if err != nil {
		return "read: " + err.Error()
	}
	rules := rs.ChainRules(unix.NFPROTO_IPV4, table, chain)
	if len(rules) == 0 {
		return ""
	}
	anon := newSetReader(ns.FD())(unix.NFPROTO_IPV4, table)
	return nftext.Rule(rules[0].Decoded(), nftext.Options{Family: unix.NFPROTO_IPV4, AnonSet: anon})
}
