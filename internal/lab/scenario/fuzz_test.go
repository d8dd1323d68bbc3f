package scenario

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the scenario decoder and validator, and
// Snapshot to what they accept. Nothing may panic, every rejection must be
// an InvalidError, and every problem line must say where (the document and
// its line, or the object's kind and name) and what (the field, or for a
// document that is not even YAML, the parser's reason).
func FuzzParse(f *testing.F) {
	f.Add([]byte(twoPods))
	if demo, err := os.ReadFile("../demo/scenario.yaml"); err == nil {
		f.Add(demo)
	} else {
		f.Fatalf("read the demo scenario for the seed corpus: %v", err)
	}
	for _, tc := range parseErrorCases {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(snapshotScenario))
	f.Add([]byte(jsonStreamScenario))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			requireProblemsLocated(t, data, err)
			return
		}
		snap, err := s.Snapshot()
		if err != nil {
			requireProblemsLocated(t, data, err)
			return
		}
		if err := Normalize(snap); err != nil {
			t.Fatalf("normalizing a normalized snapshot again failed: %v", err)
		}
	})
}

var (
	// A decode problem starts with its document (and, inside it, the JSON
	// object or List item).
	documentPrefix = regexp.MustCompile(`^document \d+ \(line \d+\)(, JSON object \d+)?( items\[\d+\])*: `)
	// A validation problem names the object, where it was declared and the
	// field: "pod x/a (document 2 (line 5)): spec.nodeName: ...". The name
	// may be anything, even invalid (it is one of the problems then).
	// Snapshot's problems come after validation, with valid names and
	// without a document: "pod x/a: spec.nodeName: ...".
	objectProblem = regexp.MustCompile(`^(namespace|node|pod|networkpolicy) (.* \(document \d+ \(line \d+\)(, JSON object \d+)?( items\[\d+\])*\)|\S+): (` + fieldPath + `): `)
	fieldPath     = `[a-zA-Z][a-zA-Z0-9]*(\[[^\]]*\])*(\.[a-zA-Z][a-zA-Z0-9]*(\[[^\]]*\])*)*`
	// An object that decoded far enough to have a kind says which field its
	// decoding failed at.
	decodedObject = regexp.MustCompile(`^(namespace|node|pod|networkpolicy|list)( \S+)?: `)
	namesField    = regexp.MustCompile(`unknown field "|duplicate field "|Go struct field |field |` + fieldPath + `: `)
)

func requireProblemsLocated(t *testing.T, data []byte, err error) {
	t.Helper()
	ie, ok := err.(*InvalidError)
	if !ok {
		t.Fatalf("error %T is not an *InvalidError: %v", err, err)
	}
	if len(ie.Problems) == 0 {
		t.Fatalf("an InvalidError without problems for:\n%q", data)
	}
	for _, p := range ie.Problems {
		if strings.Contains(p, "%!") {
			t.Fatalf("problem with a broken format verb: %q\ninput:\n%q", p, data)
		}
		if objectProblem.MatchString(p) {
			continue
		}
		rest, ok := strings.CutPrefix(p, documentPrefix.FindString(p))
		if !ok || rest == p {
			t.Fatalf("problem names neither a document nor an object and field: %q\ninput:\n%q", p, data)
		}
		if decodedObject.MatchString(rest) && !namesField.MatchString(rest) {
			t.Fatalf("problem with a decoded object names no field: %q\ninput:\n%q", p, data)
		}
	}
}
