package nlrules

import (
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nftext"
)

// TestVerdicts: every verdict google/nftables encodes decodes to the same
// value it decodes; a verdict attribute too short to hold a code, which
// google/nftables v0.3.0 panics on (FuzzParseRule found it), is kept
// undecoded with an error.
func TestVerdicts(t *testing.T) {
	for _, v := range []*expr.Verdict{
		{Kind: expr.VerdictAccept}, {Kind: expr.VerdictDrop}, {Kind: expr.VerdictReturn},
		{Kind: expr.VerdictContinue}, {Kind: expr.VerdictBreak},
		{Kind: expr.VerdictJump, Chain: "KUBE-FENCE-FORWARD"}, {Kind: expr.VerdictGoto, Chain: "x"},
	} {
		raw, err := Encode(unix.NFPROTO_INET, "immediate", v)
		if err != nil {
			t.Fatal(err)
		}
		want := &expr.Verdict{}
		if err := expr.Unmarshal(unix.NFPROTO_INET, raw.Data, want); err != nil {
			t.Fatal(err)
		}
		if got := raw.Decode(unix.NFPROTO_INET); !reflect.DeepEqual(got, want) || !reflect.DeepEqual(got, v) {
			t.Errorf("%+v: decoded %#v, google/nftables decodes %#v", v, got, want)
		}
	}
	short, _ := hex.DecodeString("0800eaff7f00000010000280080002800800010000000001")
	got := RawExpr{Name: "immediate", Data: short}.Decode(unix.NFPROTO_IPV4)
	if u, ok := got.(*nftext.Undecoded); !ok || u.Err == nil || strings.Contains(u.Err.Error(), "panicked") {
		t.Errorf("a truncated verdict decoded as %#v, want it undecoded with a decoding error", got)
	}
}

// TestLogAndConnlimit: log and connlimit expressions decode as
// google/nftables decodes them, and short attributes, which it panics on
// (FuzzParseRule found the log one), are errors.
func TestLogAndConnlimit(t *testing.T) {
	for _, c := range []struct {
		name string
		e    expr.Any
	}{
		{"log", &expr.Log{Key: 1 << unix.NFTA_LOG_GROUP, Group: 5}},
		{"log", &expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_LEVEL | 1<<unix.NFTA_LOG_FLAGS,
			Data: []byte("dropped: "), Level: expr.LogLevelWarning, Flags: expr.LogFlagsTCPSeq}},
		{"log", &expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_SNAPLEN | 1<<unix.NFTA_LOG_QTHRESHOLD,
			Group: 2, Snaplen: 128, QThreshold: 10}},
		{"connlimit", &expr.Connlimit{Count: 10, Flags: 1}},
	} {
		raw, err := Encode(unix.NFPROTO_IPV4, c.name, c.e)
		if err != nil {
			t.Fatal(err)
		}
		if got := raw.Decode(unix.NFPROTO_IPV4); !reflect.DeepEqual(got, c.e) {
			t.Errorf("%s %+v: decoded %#v", c.name, c.e, got)
		}
	}
	for _, c := range []struct{ name, data string }{
		{"log", "0000010000050000"},       // FuzzParseRule's input: an empty group attribute
		{"log", "04000200"},               // an empty prefix
		{"log", "0500030001000000"},       // a snaplen of one byte
		{"connlimit", "0500010001000000"}, // a count of one byte
	} {
		data, _ := hex.DecodeString(c.data)
		got := RawExpr{Name: c.name, Data: data}.Decode(unix.NFPROTO_IPV4)
		if u, ok := got.(*nftext.Undecoded); ok && u.Err != nil && strings.Contains(u.Err.Error(), "panicked") {
			t.Errorf("%s %s: %v", c.name, c.data, u.Err)
		}
	}
}
