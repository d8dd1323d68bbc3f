// Package report turns probe results into reachability matrices and prints
// them: as the Kubernetes e2e suite's truth tables (rows are sources,
// columns destinations, `.` connected, `X` blocked, `-` not probed) or as
// JSON.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/lab/probe"
)

// Key names one matrix: a protocol, a port and an address family.
type Key struct {
	Protocol corev1.Protocol
	Port     int32
	Family   corev1.IPFamily
}

func (k Key) String() string { return fmt.Sprintf("%s/%d %s", k.Protocol, k.Port, k.Family) }

var protocolRank = map[corev1.Protocol]int{corev1.ProtocolTCP: 0, corev1.ProtocolUDP: 1, corev1.ProtocolSCTP: 2}

func compareKeys(a, b Key) int {
	if d := protocolRank[a.Protocol] - protocolRank[b.Protocol]; d != 0 {
		return d
	}
	if a.Port != b.Port {
		return int(a.Port - b.Port)
	}
	return strings.Compare(string(a.Family), string(b.Family))
}

// Cell is one entry of a matrix.
type Cell byte

const (
	NotProbed Cell = '-'
	Allowed   Cell = '.'
	Blocked   Cell = 'X'
	// A blocked probe whose drop the kernel logged (Result.DroppedBy), in
	// WriteTable: where it was dropped.
	DroppedEgress  Cell = 'E'
	DroppedIngress Cell = 'I'
	DroppedUnknown Cell = 'U'
)

var droppedCells = map[string]Cell{"egress": DroppedEgress, "ingress": DroppedIngress, "unknown-address": DroppedUnknown}

// Matrix is the reachability of one protocol, port and family between pods.
type Matrix struct {
	Key   Key
	Pods  []string // rows and columns, sorted
	cells map[[2]string]Cell
}

// NewMatrix returns a matrix with every cell NotProbed; tests build the
// expected matrix with it and Set.
func NewMatrix(key Key, pods []string) *Matrix {
	p := slices.Clone(pods)
	slices.Sort(p)
	return &Matrix{Key: key, Pods: slices.Compact(p), cells: map[[2]string]Cell{}}
}

// Set records the cell from -> to.
func (m *Matrix) Set(from, to string, c Cell) { m.cells[[2]string{from, to}] = c }

// Get returns the cell from -> to.
func (m *Matrix) Get(from, to string) Cell {
	if c, ok := m.cells[[2]string{from, to}]; ok {
		return c
	}
	return NotProbed
}

// String renders the truth table.
func (m *Matrix) String() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', 0)
	fmt.Fprint(tw, "-")
	for _, to := range m.Pods {
		fmt.Fprint(tw, "\t", to)
	}
	fmt.Fprintln(tw)
	for _, from := range m.Pods {
		fmt.Fprint(tw, from)
		for _, to := range m.Pods {
			fmt.Fprintf(tw, "\t%c", m.Get(from, to))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	return b.String()
}

// Diff lists the cells where m differs from want, as "from -> to: got ., want X".
func (m *Matrix) Diff(want *Matrix) []string {
	pods := slices.Clone(m.Pods)
	pods = append(pods, want.Pods...)
	slices.Sort(pods)
	pods = slices.Compact(pods)
	var out []string
	for _, from := range pods {
		for _, to := range pods {
			if got, w := m.Get(from, to), want.Get(from, to); got != w {
				out = append(out, fmt.Sprintf("%s -> %s: got %c, want %c", from, to, got, w))
			}
		}
	}
	return out
}

func (m *Matrix) sameCells(o *Matrix) bool {
	return slices.Equal(m.Pods, o.Pods) && len(m.Diff(o)) == 0
}

// Matrices builds one matrix per protocol, port and family found in the
// results, sorted (TCP, UDP, SCTP; port; family), each over every pod that
// appears in the results.
func Matrices(results []probe.Result) []*Matrix { return matrices(results, false) }

// matrices is Matrices; with sides, a blocked probe's cell says where it was
// dropped when the kernel logged it.
func matrices(results []probe.Result, sides bool) []*Matrix {
	var pods []string
	byKey := map[Key]*Matrix{}
	var keys []Key
	for _, r := range results {
		pods = append(pods, r.From, r.To)
		k := Key{Protocol: r.Protocol, Port: r.Port, Family: r.Family}
		if byKey[k] == nil {
			byKey[k] = &Matrix{Key: k, cells: map[[2]string]Cell{}}
			keys = append(keys, k)
		}
		c := Blocked
		if d, ok := droppedCells[r.DroppedBy]; ok && sides {
			c = d
		}
		if r.Connected {
			c = Allowed
		}
		byKey[k].Set(r.From, r.To, c)
	}
	slices.Sort(pods)
	pods = slices.Compact(pods)
	slices.SortFunc(keys, compareKeys)
	out := make([]*Matrix, 0, len(keys))
	for _, k := range keys {
		byKey[k].Pods = pods
		out = append(out, byKey[k])
	}
	return out
}

// WriteJSON writes {"probes": [...]} with the results in their order (the
// lab sorts them by source, destination, protocol, port and family).
func WriteJSON(w io.Writer, results []probe.Result) error {
	if results == nil {
		results = []probe.Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Probes []probe.Result `json:"probes"`
	}{results})
}

const legend = "Rows are sources, columns destinations: . connected, X blocked, - not probed.\n"

const sidesLegend = "Blocked probes show where the kernel logged their drop: E the source's egress, I the destination's ingress,\n" +
	"U an address of the node's pod CIDRs no pod holds; X when no drop was logged.\n"

const sctpNote = "SCTP probes (method sctp-init) send a crafted SCTP INIT from a raw socket in the source pod;\n" +
	". means a raw socket in the destination pod saw it arrive (this kernel has no SCTP sockets).\n"

// WriteTable writes every matrix, then a summary.
func WriteTable(w io.Writer, results []probe.Result) error {
	var b strings.Builder
	b.WriteString(legend)
	if slices.ContainsFunc(results, func(r probe.Result) bool { return r.DroppedBy != "" }) {
		b.WriteString(sidesLegend)
	}
	for _, m := range matrices(results, true) {
		fmt.Fprintf(&b, "\n%s %s\n%s", portName(m.Key.Protocol, m.Key.Port), m.Key.Family, m)
	}
	writeFooter(&b, results)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteCompact writes each distinct matrix once, headed by every protocol,
// port and family that has it.
func WriteCompact(w io.Writer, results []probe.Result) error {
	var groups [][]*Matrix
	for _, m := range Matrices(results) {
		i := slices.IndexFunc(groups, func(g []*Matrix) bool { return g[0].sameCells(m) })
		if i < 0 {
			groups = append(groups, []*Matrix{m})
		} else {
			groups[i] = append(groups[i], m)
		}
	}
	var b strings.Builder
	for i, g := range groups {
		var keys []Key
		for _, m := range g {
			keys = append(keys, m.Key)
		}
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s\n%s", heading(keys), g[0])
	}
	writeFooter(&b, results)
	_, err := io.WriteString(w, b.String())
	return err
}

// heading names a group of keys by address family: "TCP/80, UDP/81 over
// IPv4 and IPv6; UDP/80 over IPv4".
func heading(keys []Key) string {
	type pp struct {
		proto corev1.Protocol
		port  int32
	}
	families := map[pp][]string{}
	var order []pp
	for _, k := range keys {
		p := pp{k.Protocol, k.Port}
		if families[p] == nil {
			order = append(order, p)
		}
		families[p] = append(families[p], string(k.Family))
	}
	byFamilies := map[string][]string{}
	var famOrder []string
	for _, p := range order {
		f := strings.Join(families[p], " and ")
		if byFamilies[f] == nil {
			famOrder = append(famOrder, f)
		}
		byFamilies[f] = append(byFamilies[f], portName(p.proto, p.port))
	}
	var parts []string
	for _, f := range famOrder {
		parts = append(parts, strings.Join(byFamilies[f], ", ")+" over "+f)
	}
	return strings.Join(parts, "; ")
}

func portName(proto corev1.Protocol, port int32) string {
	s := fmt.Sprintf("%s/%d", proto, port)
	if proto == corev1.ProtocolSCTP {
		s += " (sctp-init)"
	}
	return s
}

func writeFooter(b *strings.Builder, results []probe.Result) {
	var connected, sctp int
	var problems []string
	for _, r := range results {
		if r.Connected {
			connected++
		}
		if r.Method == probe.MethodSCTPInit {
			sctp++
		}
		if r.Problem != "" {
			problems = append(problems, fmt.Sprintf("%s -> %s %s/%d %s: %s", r.From, r.To, r.Protocol, r.Port, r.IP, r.Problem))
		}
	}
	if sctp > 0 {
		b.WriteString("\n" + sctpNote)
	}
	fmt.Fprintf(b, "\n%d probes: %d connected, %d blocked", len(results), connected, len(results)-connected)
	if sctp > 0 {
		fmt.Fprintf(b, "; %d by sctp-init", sctp)
	}
	b.WriteString(".\n")
	if len(problems) > 0 {
		b.WriteString("Unexpected answers (a lab wiring problem, not policy):\n  " + strings.Join(problems, "\n  ") + "\n")
	}
}
