package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"
)

// Scenario is a parsed and validated lab scenario: the Kubernetes objects it
// declares, each kind in document order. Namespaces are defaulted to
// "default" for pods and policies that leave metadata.namespace out.
type Scenario struct {
	Namespaces []*corev1.Namespace
	Nodes      []*corev1.Node
	Pods       []*corev1.Pod
	Policies   []*networkingv1.NetworkPolicy

	// ClusterNetworkPolicies are cluster-scoped (no namespace), written as
	// policy.networking.k8s.io/v1beta1 or v1alpha2.
	ClusterNetworkPolicies []*v1beta1.ClusterNetworkPolicy

	// origin says where each object was declared, for error messages.
	origin map[any]string
}

// InvalidError lists everything wrong with a scenario, one problem a line,
// each naming the object (or the document) and the field.
type InvalidError struct {
	Problems []string
}

func (e *InvalidError) Error() string {
	return "invalid scenario:\n  " + strings.Join(e.Problems, "\n  ")
}

// IsInvalid reports whether err says the input (a scenario or a snapshot
// given to the lab) is invalid, as opposed to the machine failing.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

// Parse decodes and validates a scenario. Documents are separated by `---`
// lines; each is YAML or JSON (a JSON document may hold several objects one
// after the other). Unknown and duplicate fields are errors, as with kubectl's
// strict field validation. A `kind: List` contributes its items.
func Parse(data []byte) (*Scenario, error) {
	s, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Read parses a scenario from r.
func Read(r io.Reader) (*Scenario, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return Parse(data)
}

type decoder struct {
	s        *Scenario
	problems []string
}

func decode(data []byte) (*Scenario, error) {
	d := &decoder{s: &Scenario{origin: map[any]string{}}}
	for i, doc := range splitDocuments(data) {
		d.document(fmt.Sprintf("document %d (line %d)", i+1, doc.line), doc.text)
	}
	if len(d.problems) > 0 {
		return nil, &InvalidError{Problems: d.problems}
	}
	return d.s, nil
}

func (d *decoder) problem(where string, format string, args ...any) {
	d.problems = append(d.problems, where+": "+fmt.Sprintf(format, args...))
}

func (d *decoder) document(where string, text []byte) {
	trimmed := bytes.TrimSpace(text)
	if len(trimmed) == 0 {
		return
	}
	if trimmed[0] == '{' {
		// JSON: possibly several objects back to back, as `kubectl get -o
		// json` output pasted one after another.
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		for n := 0; ; n++ {
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if err == io.EOF {
				return
			}
			w := where
			if n > 0 {
				w = fmt.Sprintf("%s, JSON object %d", where, n+1)
			}
			if err != nil {
				d.problem(w, "invalid JSON: %v", err)
				return
			}
			d.object(w, raw)
		}
	}
	j, err := yaml.YAMLToJSONStrict(text)
	if err != nil {
		msg := err.Error()
		if strings.HasPrefix(msg, "unsupported map key") {
			// sigs.k8s.io/yaml formats a null key as "%!s(<nil>)".
			msg = "a mapping key is null (an empty `?` key or `~`): every key must be a field name"
		}
		d.problem(where, "%s", msg)
		return
	}
	if string(j) == "null" { // only comments
		return
	}
	d.object(where, j)
}

func (d *decoder) object(where string, j []byte) {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		d.problem(where, "not a Kubernetes object: %v", err)
		return
	}
	switch {
	case tm.Kind == "":
		d.problem(where, "kind: Required value")
	case tm.APIVersion == "":
		d.problem(where, "apiVersion: Required value")
	case tm.APIVersion == "v1" && tm.Kind == "Namespace":
		o := &corev1.Namespace{}
		if d.strict(where, "namespace", j, o) {
			d.s.Namespaces = append(d.s.Namespaces, o)
			d.s.origin[o] = where
		}
	case tm.APIVersion == "v1" && tm.Kind == "Node":
		o := &corev1.Node{}
		if d.strict(where, "node", j, o) {
			d.s.Nodes = append(d.s.Nodes, o)
			d.s.origin[o] = where
		}
	case tm.APIVersion == "v1" && tm.Kind == "Pod":
		o := &corev1.Pod{}
		if d.strict(where, "pod", j, o) {
			if o.Namespace == "" {
				o.Namespace = corev1.NamespaceDefault
			}
			d.s.Pods = append(d.s.Pods, o)
			d.s.origin[o] = where
		}
	case tm.APIVersion == "networking.k8s.io/v1" && tm.Kind == "NetworkPolicy":
		o := &networkingv1.NetworkPolicy{}
		if d.strict(where, "networkpolicy", j, o) {
			if o.Namespace == "" {
				o.Namespace = corev1.NamespaceDefault
			}
			d.s.Policies = append(d.s.Policies, o)
			d.s.origin[o] = where
		}
	case isClusterNetworkPolicy(tm.APIVersion, tm.Kind):
		d.clusterNetworkPolicy(where, j)
	case tm.APIVersion == "v1" && tm.Kind == "List":
		l := &metav1.List{}
		if d.strict(where, "list", j, l) {
			for i, item := range l.Items {
				d.object(fmt.Sprintf("%s items[%d]", where, i), item.Raw)
			}
		}
	default:
		d.problem(where, "apiVersion %q kind %q is not supported: a scenario holds v1 Namespace, Node, Pod and List, networking.k8s.io/v1 NetworkPolicy, and %s (or %s) %s",
			tm.APIVersion, tm.Kind, cnpAPIVersion, cnpAPIVersion2, cnpKind)
	}
}

// strict decodes j into obj, reporting unknown and duplicate fields with
// their full path (kubectl's strict validation wording).
func (d *decoder) strict(where, kind string, j []byte, obj any) bool {
	strictErrs, err := kjson.UnmarshalStrict(j, obj)
	name := kind
	if o, ok := obj.(metav1.Object); ok && o.GetName() != "" {
		name = kind + " " + qualified(o.GetNamespace(), o.GetName())
	}
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "cannot unmarshal bool into") {
			// YAML 1.1, which kubectl speaks too, reads these as booleans.
			hint = ` (unquoted y, n, yes, no, on, off, true and false are booleans in YAML: quote the value, as in namespace: "y")`
		}
		d.problem(where, "%s: %v%s", name, err, hint)
		return false
	}
	for _, e := range strictErrs {
		d.problem(where, "%s: %v", name, e)
	}
	return len(strictErrs) == 0
}

func qualified(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

type document struct {
	text []byte
	line int // first line with content, 1-based
}

// splitDocuments cuts a YAML stream at `---` lines (a separator may carry a
// comment) and drops documents holding only blanks and comments. Unlike a
// YAML parser it keeps where each document starts, so errors can point there.
func splitDocuments(data []byte) []document {
	var docs []document
	var cur document
	for i, l := range bytes.SplitAfter(data, []byte("\n")) {
		if isSeparator(l) {
			if cur.line > 0 {
				docs = append(docs, cur)
			}
			cur = document{}
			continue
		}
		cur.text = append(cur.text, l...)
		if t := bytes.TrimSpace(l); cur.line == 0 && len(t) > 0 && t[0] != '#' {
			cur.line = i + 1
		}
	}
	if cur.line > 0 {
		docs = append(docs, cur)
	}
	return docs
}

func isSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := bytes.TrimSpace(line[3:])
	return len(rest) == 0 || rest[0] == '#'
}
