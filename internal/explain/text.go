package explain

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints the report for people, a block per family:
//
//	IPv4 x/a 10.42.0.2 -> y/b 10.42.0.6 TCP/80: denied
//	  egress of x/a: allowed (not isolated)
//	  ingress of y/b: denied
//	    isolated by y/deny-all, y/allow-web
//	    nearest miss: y/allow-web ingress[0]: the port matches, the peer does not
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	for i, v := range r.Verdicts {
		if i > 0 {
			b.WriteByte('\n')
		}
		verdict := word(v.Allowed)
		if len(v.WouldBeDeniedBy) > 0 {
			verdict += "; would be denied by " + strings.Join(v.WouldBeDeniedBy, ", ") + " (audit)"
		}
		fmt.Fprintf(&b, "%s %s %s -> %s %s %s/%d: %s\n", v.Family, v.From, v.FromIP, v.To, v.ToIP,
			v.Protocol, v.Port, verdict)
		writeSide(&b, "egress of "+v.From, v.Egress)
		writeSide(&b, "ingress of "+v.To, v.Ingress)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeSide(b *strings.Builder, what string, s Side) {
	for _, p := range s.PassedBy {
		fmt.Fprintf(b, "  %s: passed on by %s\n", what, p)
	}
	switch s.Tier {
	case "Admin", "Baseline":
		fmt.Fprintf(b, "  %s: %s by %s\n", what, word(s.Allowed), s.Rule)
		return
	case "Default":
		if s.Reason == "" || s.Reason == "not isolated" {
			fmt.Fprintf(b, "  %s: allowed (no tier decides: the default)\n", what)
			return
		}
	}
	switch {
	case s.Reason != "":
		fmt.Fprintf(b, "  %s: allowed (%s)\n", what, s.Reason)
		return
	case s.Allowed:
		fmt.Fprintf(b, "  %s: allowed by %s\n", what, strings.Join(s.AllowedBy, ", "))
	default:
		fmt.Fprintf(b, "  %s: denied\n", what)
	}
	fmt.Fprintf(b, "    isolated by %s\n", strings.Join(s.Policies, ", "))
	if s.Allowed {
		return
	}
	if m := s.NearestMiss; m != nil {
		fmt.Fprintf(b, "    nearest miss: %s: %s\n", m.Rule, missText(m))
	} else {
		fmt.Fprintf(b, "    no rule of these policies allows any %s traffic\n", direction(what))
	}
}

func missText(m *Miss) string {
	switch {
	case m.PeerMatched:
		return "the peer matches, the port does not"
	case m.PortMatched:
		return "the port matches, the peer does not"
	}
	return "neither the peer nor the port matches"
}

func direction(what string) string {
	d, _, _ := strings.Cut(what, " ")
	return d
}

func word(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}
