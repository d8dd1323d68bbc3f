package doctor

import (
	"regexp"
	"sort"
	"strings"
)

// ownerHint ties a name pattern to the program known to use it. The names
// are the chains, interfaces, sets and log prefixes those programs create.
type ownerHint struct {
	owner string
	re    *regexp.Regexp
}

var ownerHints = []ownerHint{
	{"NetBird", regexp.MustCompile(`(?i)^(netbird|NETBIRD-)|^wt\d+\*?$`)},
	{"Tailscale", regexp.MustCompile(`^(ts-(input|forward|postrouting)|tailscale\d*\*?)$`)},
	{"Docker", regexp.MustCompile(`^(DOCKER(-.*)?|docker\d+\*?|br-[0-9a-f]{12}\*?)$`)},
	{"libvirt", regexp.MustCompile(`^(LIBVIRT_.*|virbr\d+.*)$`)},
	{"ufw", regexp.MustCompile(`^(ufw6?-.*|\[UFW .*)$`)},
	{"fail2ban", regexp.MustCompile(`^(f2b-.*|addr-set-.*)$`)},
	{"CrowdSec", regexp.MustCompile(`(?i)^crowdsec`)},
	{"kube-router", regexp.MustCompile(`^(KUBE-ROUTER-.*|KUBE-NWPLCY-.*|KUBE-POD-FW-.*|kube-bridge\*?|kube-router.*)$`)},
	{"flannel", regexp.MustCompile(`^(FLANNEL-.*|flannel\..*|cni0\*?)$`)},
	{"Calico", regexp.MustCompile(`^(cali-.*|cali[0-9a-f]+\*?|cali\*|vxlan\.calico|tunl0)$`)},
	{"firewalld", regexp.MustCompile(`^firewalld$`)},
}

var (
	quoted = regexp.MustCompile(`"([^"]*)"`)
	refs   = regexp.MustCompile(`(?:jump|goto|@)\s*([A-Za-z0-9_.\-]+)`)
)

// names extracts the strings of a rule that can point at its author:
// quoted strings (interfaces, comments, log prefixes), chain and set names.
func names(rule, comment string) []string {
	var out []string
	for _, m := range quoted.FindAllStringSubmatch(rule, -1) {
		out = append(out, m[1])
	}
	for _, m := range refs.FindAllStringSubmatch(rule, -1) {
		out = append(out, m[1])
	}
	if comment != "" {
		out = append(out, strings.Fields(comment)...)
		out = append(out, comment)
	}
	return out
}

// guessOwner names the program that most likely wrote a rule from the
// rule's own names: chains it jumps to, interfaces, sets, comments, log
// prefixes. The other chains of its table are no evidence, since iptables'
// tables are shared by every program. Several candidates, or none, give
// "unknown".
func guessOwner(rule, comment string) Owner {
	o, why, cands := match(names(rule, comment))
	switch {
	case o != "":
		return Owner{Name: o, Reason: why}
	case len(cands) > 1:
		return Owner{Name: "unknown", Reason: "names of several programs: " + strings.Join(cands, ", ")}
	}
	return Owner{Name: "unknown", Reason: "no chain, interface, set, comment or log prefix in the rule points at a known program"}
}

func match(ss []string) (owner, why string, candidates []string) {
	found := map[string]string{}
	for _, s := range ss {
		for _, h := range ownerHints {
			if h.re.MatchString(s) {
				if _, dup := found[h.owner]; !dup {
					found[h.owner] = s
				}
			}
		}
	}
	if len(found) > 1 {
		var c []string
		for o, s := range found {
			c = append(c, o+" ("+s+")")
		}
		sort.Strings(c)
		return "", "", c
	}
	for o, s := range found {
		return o, `names "` + s + `", used by ` + o, nil
	}
	return "", "", nil
}
