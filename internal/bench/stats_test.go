package bench

import (
	"bytes"
	"image/png"
	"testing"
)

func TestSample(t *testing.T) {
	cases := []struct {
		s                     Sample
		median, q10, min, max float64
		spread                string
	}{
		{nil, 0, 0, 0, 0, "-"},
		{Sample{5}, 5, 5, 5, 5, "5.00"},
		{Sample{3, 1, 2}, 2, 1, 1, 3, "2.00 (1.00-3.00)"},
		{Sample{4, 1, 3, 2}, 2.5, 1, 1, 4, "2.50 (1.00-4.00)"},
		{Sample{1200, 900, 1000}, 1000, 900, 900, 1200, "1000 (900-1200)"},
	}
	for _, c := range cases {
		if c.s.Median() != c.median || c.s.Quantile(0.1) != c.q10 || c.s.Min() != c.min || c.s.Max() != c.max || c.s.Spread() != c.spread {
			t.Errorf("%v: median %v q10 %v min %v max %v spread %q; want %v %v %v %v %q", c.s,
				c.s.Median(), c.s.Quantile(0.1), c.s.Min(), c.s.Max(), c.s.Spread(), c.median, c.q10, c.min, c.max, c.spread)
		}
	}
}

// TestPlot draws a plot from made-up results and checks it is a PNG of the
// intended size with the series' colours in it.
func TestPlot(t *testing.T) {
	r := &Results{
		Sync: []SyncResult{
			{Size: "a", Pods: 1000, Compile: Sample{10}, Total: Sample{100}, Nft: Sample{180}},
			{Size: "b", Pods: 10000, Compile: Sample{70}, Total: Sample{600}, Nft: Sample{1200}},
			{Size: "c", Pods: 50000, Compile: Sample{350}, Total: Sample{3000}, Nft: Sample{7000}},
		},
		Changes: []ChangeResult{
			{Size: "a", ToCommit: Sample{2}}, {Size: "b", ToCommit: Sample{3}}, {Size: "c", ToCommit: Sample{4}},
		},
	}
	var buf bytes.Buffer
	if err := Plot(&buf, r); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
		t.Errorf("plot is %v, want %dx%d", b, plotW, plotH)
	}
	blue := 0
	for x := 0; x < plotW; x++ {
		for y := 0; y < plotH; y++ {
			if r, g, b, _ := img.At(x, y).RGBA(); r>>8 == 30 && g>>8 == 90 && b>>8 == 200 {
				blue++
			}
		}
	}
	if blue < 100 {
		t.Errorf("the incremental series is hardly drawn (%d pixels)", blue)
	}
	if err := Plot(&buf, &Results{}); err == nil {
		t.Error("plot of nothing succeeded")
	}
}
