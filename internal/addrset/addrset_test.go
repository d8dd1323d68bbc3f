package addrset

import (
	"net/netip"
	"testing"
)

func set(t *testing.T, items ...string) Set {
	t.Helper()
	var b Builder
	for _, it := range items {
		if p, err := netip.ParsePrefix(it); err == nil {
			b.AddPrefix(p)
			continue
		}
		b.AddAddr(netip.MustParseAddr(it))
	}
	return b.Set()
}

func TestCanonicalForm(t *testing.T) {
	cases := []struct {
		name  string
		items []string
		want  string
	}{
		{"empty", nil, "{}"},
		{"single", []string{"10.0.0.1"}, "{10.0.0.1}"},
		{"adjacent addresses merge", []string{"10.0.0.1", "10.0.0.0"}, "{10.0.0.0/31}"},
		{"adjacent prefixes merge", []string{"10.0.0.0/25", "10.0.0.128/25"}, "{10.0.0.0/24}"},
		{"contained prefix disappears", []string{"10.0.0.0/8", "10.1.2.3"}, "{10.0.0.0/8}"},
		{"gap kept", []string{"10.0.0.1", "10.0.0.3"}, "{10.0.0.1, 10.0.0.3}"},
		{"non prefix range", []string{"10.0.0.1", "10.0.0.2"}, "{10.0.0.1-10.0.0.2}"},
		{"families apart", []string{"fd00::1", "10.0.0.1"}, "{10.0.0.1, fd00::1}"},
		{"v6 merge", []string{"fd00::/65", "fd00::8000:0:0:0/65"}, "{fd00::/64}"},
		{"everything", []string{"0.0.0.0/0", "::/0", "1.2.3.4"}, "{0.0.0.0/0, ::/0}"},
		{"unmasked prefix", []string{"10.0.0.7/24"}, "{10.0.0.0/24}"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := set(t, c.items...).String(); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestSubtract(t *testing.T) {
	cases := []struct {
		name      string
		from, cut []string
		want      string
	}{
		{"except in the middle", []string{"10.0.0.0/24"}, []string{"10.0.0.128/26"}, "{10.0.0.0/25, 10.0.0.192/26}"},
		{"except at the start", []string{"10.0.0.0/24"}, []string{"10.0.0.0/25"}, "{10.0.0.128/25}"},
		{"except at the end", []string{"10.0.0.0/24"}, []string{"10.0.0.255"}, "{10.0.0.0-10.0.0.254}"},
		{"except everything", []string{"10.0.0.0/24"}, []string{"10.0.0.0/16"}, "{}"},
		{"except elsewhere", []string{"10.0.0.0/24"}, []string{"192.168.0.0/16"}, "{10.0.0.0/24}"},
		{"two excepts", []string{"10.0.0.0/30"}, []string{"10.0.0.1", "10.0.0.2"}, "{10.0.0.0, 10.0.0.3}"},
		{"except spans two ranges", []string{"10.0.0.0/31", "10.0.0.4/31"}, []string{"10.0.0.0/29"}, "{}"},
		{"v6 except", []string{"fd00::/64"}, []string{"fd00::/65"}, "{fd00::8000:0:0:0/65}"},
		{"whole space minus one", []string{"0.0.0.0/0"}, []string{"0.0.0.0"}, "{0.0.0.1-255.255.255.255}"},
		{"only other family cut", []string{"10.0.0.0/8"}, []string{"::/0"}, "{10.0.0.0/8}"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := set(t, c.from...).Subtract(set(t, c.cut...)).String()
			if got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestContainsAndIntersect(t *testing.T) {
	s := set(t, "10.0.0.0/24", "10.0.2.5", "fd00::/120")
	for addr, want := range map[string]bool{
		"10.0.0.0": true, "10.0.0.255": true, "10.0.1.0": false, "10.0.2.5": true,
		"10.0.2.6": false, "fd00::ff": true, "fd00::100": false, "::ffff:10.0.0.1": false,
	} {
		if got := s.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	got := s.Intersect(set(t, "10.0.0.128/25", "10.0.2.0/24", "fd00::80/121")).String()
	if want := "{10.0.0.128/25, 10.0.2.5, fd00::80/121}"; got != want {
		t.Errorf("Intersect = %s, want %s", got, want)
	}
	if !s.Union(Set{}).Equal(s) || !(Set{}).Union(s).Equal(s) {
		t.Error("union with empty set changed the set")
	}
}

func TestFromCanonical(t *testing.T) {
	a := netip.MustParseAddr
	r := func(from, to string) Range { return Range{From: a(from), To: a(to)} }
	good, err := FromCanonical([]Range{r("10.0.0.1", "10.0.0.3"), r("10.0.0.5", "10.0.0.5")}, []Range{r("fd00::1", "fd00::9")})
	if err != nil {
		t.Fatal(err)
	}
	if want := set(t, "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "fd00::1", "fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6", "fd00::7", "fd00::8", "fd00::9"); !good.Equal(want) {
		t.Errorf("FromCanonical = %v, want %v", good, want)
	}
	if empty, err := FromCanonical([]Range{}, nil); err != nil || !empty.Equal(Set{}) || empty.V4() != nil {
		t.Errorf("FromCanonical of empty lists = %v (v4 %#v), %v; want the zero Set", empty, empty.V4(), err)
	}
	bad := []struct {
		name   string
		v4, v6 []Range
	}{
		{"adjacent", []Range{r("10.0.0.1", "10.0.0.3"), r("10.0.0.4", "10.0.0.5")}, nil},
		{"overlapping", []Range{r("10.0.0.1", "10.0.0.3"), r("10.0.0.3", "10.0.0.5")}, nil},
		{"unsorted", []Range{r("10.0.0.7", "10.0.0.8"), r("10.0.0.1", "10.0.0.3")}, nil},
		{"reversed", []Range{r("10.0.0.3", "10.0.0.1")}, nil},
		{"family", nil, []Range{r("10.0.0.1", "10.0.0.1")}},
		{"zoned", nil, []Range{{From: a("fe80::1%eth0"), To: a("fe80::1%eth0")}}},
	}
	for _, c := range bad {
		if s, err := FromCanonical(c.v4, c.v6); err == nil {
			t.Errorf("%s: FromCanonical accepted %v", c.name, s)
		}
	}
}

func TestEqualSharedAndCopied(t *testing.T) {
	s := set(t, "10.0.0.0/24", "10.2.0.1", "fd00::/64")
	copied := set(t, "10.0.0.0/24", "10.2.0.1", "fd00::/64")
	shared := s
	if !s.Equal(shared) || !s.Equal(copied) || !copied.Equal(s) {
		t.Error("equal sets compare unequal")
	}
	if s.Equal(set(t, "10.0.0.0/24", "10.2.0.2", "fd00::/64")) || s.Equal(set(t, "10.0.0.0/24", "10.2.0.1")) {
		t.Error("different sets compare equal")
	}
}
