package nft

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kube-fence/kube-fence/internal/addrset"
)

// WriteText writes t in nft syntax, as `nft list table inet kube-fence` would
// show it and as `nft -f` accepts it. Rules must carry their Text, which
// rules built by Render do.
func WriteText(w io.Writer, t *Table) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "table inet %s {\n", TableName)
	for _, name := range t.SetNames() {
		writeSet(b, t.Sets[name])
	}
	for _, name := range t.ChainNames() {
		writeChain(b, t.Chains[name])
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Text returns t in nft syntax.
func Text(t *Table) string {
	var b strings.Builder
	_ = WriteText(&b, t)
	return b.String()
}

func writeSet(b *strings.Builder, s *Set) {
	kind := "set"
	if s.Type.IsMap() {
		kind = "map"
	}
	fmt.Fprintf(b, "\t%s %s {\n", kind, s.Name)
	fmt.Fprintf(b, "\t\ttype %s\n", typeText(s.Type))
	if s.Type.IsInterval() {
		b.WriteString("\t\tflags interval\n")
	}
	if elems := s.Elements(); len(elems) > 0 {
		b.WriteString("\t\telements = { ")
		for i, e := range elems {
			if i > 0 {
				b.WriteString(",\n\t\t\t     ")
			}
			b.WriteString(ElemText(s.Type, e))
		}
		b.WriteString(" }\n")
	}
	b.WriteString("\t}\n")
}

func typeText(t SetType) string {
	switch t {
	case Addr4, Host4:
		return "ipv4_addr"
	case Addr6, Host6:
		return "ipv6_addr"
	case PodMap4:
		return "ipv4_addr : verdict"
	case PodMap6:
		return "ipv6_addr : verdict"
	case PortMap:
		return "inet_proto . inet_service : verdict"
	case PortSet:
		return "inet_proto . inet_service"
	}
	return "unknown"
}

// ElemText prints one element as nft does.
func ElemText(t SetType, e Elem) string {
	var key string
	switch t {
	case Addr4, Addr6:
		key = addrset.Range{From: AddrFromKey(e.Key), To: AddrFromKey(e.KeyEnd)}.String()
	case PodMap4, PodMap6, Host4, Host6:
		key = AddrFromKey(e.Key).String()
	case PortMap, PortSet:
		key = portRangeText(e.Key, e.KeyEnd)
	default:
		key = fmt.Sprintf("%x", e.Key)
	}
	if e.Comment != "" {
		key += " comment " + strconv.Quote(e.Comment)
	}
	if e.Verdict != nil {
		key += " : " + verdictText(*e.Verdict)
	}
	return key
}

func portRangeText(from, to []byte) string {
	if len(from) != 8 || len(to) != 8 {
		return fmt.Sprintf("%x-%x", from, to)
	}
	proto := protoName(from[0])
	p1 := uint16(from[4])<<8 | uint16(from[5])
	p2 := uint16(to[4])<<8 | uint16(to[5])
	if from[0] != to[0] {
		return fmt.Sprintf("%s . %d-%s . %d", proto, p1, protoName(to[0]), p2)
	}
	if p1 == p2 {
		return fmt.Sprintf("%s . %d", proto, p1)
	}
	return fmt.Sprintf("%s . %d-%d", proto, p1, p2)
}

func protoName(p byte) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

func writeChain(b *strings.Builder, c *Chain) {
	fmt.Fprintf(b, "\tchain %s {\n", c.Name)
	if c.Hook != nil {
		typ := c.Hook.Type
		if typ == "" {
			typ = "filter"
		}
		fmt.Fprintf(b, "\t\ttype %s hook %s priority %s; policy %s;\n", typ, c.Hook.Hook, priorityText(c.Hook.Priority), c.Hook.Policy)
	}
	for _, r := range c.Rules {
		text := r.Text
		if text == "" {
			text = "# rule without text (read back from the kernel)"
		}
		if r.Comment != "" {
			text += " comment " + strconv.Quote(r.Comment)
		}
		fmt.Fprintf(b, "\t\t%s\n", text)
	}
	b.WriteString("\t}\n")
}

// priorityText uses nft's symbolic form relative to the filter priority.
func priorityText(p int32) string {
	switch {
	case p == 0:
		return "filter"
	case p < 0:
		return fmt.Sprintf("filter - %d", -p)
	}
	return fmt.Sprintf("filter + %d", p)
}
