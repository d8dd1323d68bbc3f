package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// FuzzCompilerDifferential lets the fuzzer make the random choices of the
// cross-check tests: which cluster randomSnapshot draws, which changes the
// mutator makes (pods, namespaces, policies and nodes added, changed, broken
// and deleted) and in what batches. After every batch the incremental
// Compiler's plan must equal a full Compile of the same objects, and at the
// end every node's compiled plan must decide every probe as the reference
// evaluator does.
func FuzzCompilerDifferential(f *testing.F) {
	// The streams the property tests draw from with their first seeds.
	for seed := range uint64(4) {
		for _, stream := range []uint64{0x1c4e, 0xfe11ce, 0xc4a05} {
			r := rand.New(rand.NewPCG(seed, stream))
			b := make([]byte, 256)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, choices []byte) {
		rnd := rand.New(&byteSource{b: choices})
		s := randomSnapshot(rnd)
		opts := Options{DefaultDenyUnknown: rnd.IntN(4) == 0}
		c := NewCompiler("node-1", opts)
		c.Load(s)
		requireSamePlan(t, c, opts, "initial")
		m := &mutator{rnd: rnd, g: &randGen{rnd: rnd}, c: c, next: 100}
		var history []string
		for step := range 1 + rnd.IntN(12) {
			var did []string
			for range 1 + rnd.IntN(4) {
				did = append(did, m.mutate())
			}
			history = append(history, strings.Join(did, "; "))
			requireSamePlan(t, c, opts, fmt.Sprintf("step %d after %s", step, strings.Join(history, " | ")))
		}
		if opts.DefaultDenyUnknown {
			return // unknown addresses are denied by design there; the reference knows no such option
		}
		snap := c.Snapshot()
		plans := planCache(snap, opts)
		eps := uniqueAddresses(endpoints(snap))
		for _, from := range eps {
			for _, to := range eps {
				if !from.IP.IsValid() || !to.IP.IsValid() || from.IP.Is4() != to.IP.Is4() {
					continue
				}
				// One pair in eight, chosen by the input, keeps an
				// execution short enough to fuzz; TestCompiledPlansMatchReference
				// checks every pair of its clusters.
				if rnd.IntN(8) != 0 {
					continue
				}
				for _, pp := range probePorts {
					want := Allowed(snap, from, to, pp.proto, pp.port)
					if got := planAllowed(plans, from, to, pp.proto, pp.port); got != want {
						t.Fatalf("after %s: %s -> %s %v/%d: plan says %v, reference says %v\n%s",
							strings.Join(history, " | "), describe(from), describe(to), pp.proto, pp.port, got, want, dump(snap))
					}
				}
			}
		}
	})
}

// uniqueAddresses drops the endpoints whose address another endpoint holds
// too (the mutator gives new pods the addresses of others, as a finished
// pod's address is reused): the reference judges a connection by the pod,
// the dataplane by the address, so only an address with one holder asks
// both the same question.
func uniqueAddresses(eps []Endpoint) []Endpoint {
	holders := map[netip.Addr]int{}
	for _, e := range eps {
		holders[e.IP]++
	}
	var out []Endpoint
	for _, e := range eps {
		if holders[e.IP] == 1 {
			out = append(out, e)
		}
	}
	return out
}

// byteSource is a rand.Source that hands out the fuzzer's bytes, one a
// draw, so that changing a byte changes one choice rather than all that
// follow. When the bytes run out it continues with a PCG seeded by them.
type byteSource struct {
	b    []byte
	i    int
	tail *rand.PCG
}

func (s *byteSource) Uint64() uint64 {
	if s.i < len(s.b) {
		v := s.b[s.i]
		s.i++
		// The top byte decides IntN (it scales the high bits); the rest,
		// spread from it, keeps rand's rejection loop from spinning.
		return uint64(v)<<56 | (uint64(v)*0x9e3779b97f4a7c15)>>8 | uint64(s.i)
	}
	if s.tail == nil {
		var seed uint64
		for _, v := range s.b {
			seed = seed*31 + uint64(v)
		}
		s.tail = rand.NewPCG(seed, uint64(len(s.b)))
	}
	return s.tail.Uint64()
}
