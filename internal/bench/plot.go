package bench

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
)

// series is one line of the plot: a median per cluster size.
type series struct {
	label string
	color color.RGBA
	x, y  []float64 // pods, milliseconds
}

// Plot draws the sync time of the measured node against cluster size, both
// axes logarithmic: the full compile, the full sync (compile, render,
// apply), nft -f loading the same table, and one incremental change to the
// committed kernel state.
func Plot(w io.Writer, r *Results) error {
	if len(r.Sync) == 0 {
		return errors.New("plot: no sync results")
	}
	lines := []series{
		{label: "nft -f of the same table", color: color.RGBA{150, 150, 150, 255}},
		{label: "full sync: compile+render+apply", color: color.RGBA{200, 40, 40, 255}},
		{label: "full compile", color: color.RGBA{230, 140, 20, 255}},
		{label: "one change to commit (median of kinds)", color: color.RGBA{30, 90, 200, 255}},
	}
	for _, s := range r.Sync {
		x := float64(s.Pods)
		lines[0].x, lines[0].y = append(lines[0].x, x), append(lines[0].y, s.Nft.Median())
		lines[1].x, lines[1].y = append(lines[1].x, x), append(lines[1].y, s.Total.Median())
		lines[2].x, lines[2].y = append(lines[2].x, x), append(lines[2].y, s.Compile.Median())
		var changes Sample
		for _, c := range r.Changes {
			if c.Size == s.Size {
				changes = append(changes, c.ToCommit.Median())
			}
		}
		if len(changes) > 0 {
			lines[3].x, lines[3].y = append(lines[3].x, x), append(lines[3].y, changes.Median())
		}
	}
	return png.Encode(w, draw(lines))
}

const (
	plotW, plotH                       = 1100, 640
	marginL, marginR, marginT, marginB = 110, 330, 60, 90
)

func draw(lines []series) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	fillRect(img, 0, 0, plotW, plotH, color.White)
	black, grid := color.RGBA{0, 0, 0, 255}, color.RGBA{225, 225, 225, 255}

	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, l := range lines {
		for i := range l.x {
			xmin, xmax = math.Min(xmin, l.x[i]), math.Max(xmax, l.x[i])
			if l.y[i] > 0 {
				ymin, ymax = math.Min(ymin, l.y[i]), math.Max(ymax, l.y[i])
			}
		}
	}
	lx0, lx1 := math.Log10(xmin)-0.05, math.Log10(xmax)+0.05
	if lx1-lx0 < 0.5 {
		lx0, lx1 = lx0-0.3, lx1+0.3
	}
	ly0, ly1 := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
	if ly1 == ly0 {
		ly1++
	}
	pw, ph := plotW-marginL-marginR, plotH-marginT-marginB
	px := func(x float64) int { return marginL + int(float64(pw)*(math.Log10(x)-lx0)/(lx1-lx0)) }
	py := func(y float64) int { return marginT + ph - int(float64(ph)*(math.Log10(y)-ly0)/(ly1-ly0)) }

	// Grid and ticks: every decade of milliseconds, 1-2-5 steps of pods.
	for e := ly0; e <= ly1; e++ {
		y := py(math.Pow(10, e))
		fillRect(img, marginL, y, pw, 1, grid)
		label := msLabel(math.Pow(10, e))
		drawText(img, marginL-12-textWidth(label, 2), y-7, label, black, 2)
	}
	for e := math.Floor(lx0); e <= lx1; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if l := math.Log10(v); l < lx0 || l > lx1 {
				continue
			}
			x := px(v)
			fillRect(img, x, marginT, 1, ph, grid)
			label := podsLabel(v)
			drawText(img, x-textWidth(label, 2)/2, marginT+ph+12, label, black, 2)
		}
	}
	fillRect(img, marginL, marginT, 2, ph, black)
	fillRect(img, marginL, marginT+ph, pw, 2, black)

	title := "kube-fence: one node's table (110 pods) against cluster size"
	drawText(img, marginL, 8, title, black, 2)
	xlabel := "pods in the cluster (policies: a tenth of that)"
	drawText(img, marginL+pw/2-textWidth(xlabel, 2)/2, plotH-40, xlabel, black, 2)
	drawText(img, 10, marginT-22, "milliseconds", black, 2)

	for i, l := range lines {
		for j := range l.x {
			x, y := px(l.x[j]), py(math.Max(l.y[j], math.Pow(10, ly0)))
			fillRect(img, x-4, y-4, 9, 9, l.color)
			if j > 0 {
				line(img, px(l.x[j-1]), py(math.Max(l.y[j-1], math.Pow(10, ly0))), x, y, l.color)
			}
		}
		ly := marginT + 20 + i*34
		fillRect(img, plotW-marginR+20, ly+3, 24, 5, l.color)
		drawText(img, plotW-marginR+52, ly, l.label, black, 1)
		if n := len(l.y); n > 0 {
			drawText(img, plotW-marginR+52, ly+12, fmt.Sprintf("%s at %s pods", msLabel(l.y[n-1]), podsLabel(l.x[n-1])), black, 1)
		}
	}
	return img
}

// line draws a 3-pixel-wide segment.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := x1-x0, y1-y0
	steps := max(abs(dx), abs(dy), 1)
	for s := 0; s <= steps; s++ {
		x, y := x0+dx*s/steps, y0+dy*s/steps
		fillRect(img, x-1, y-1, 3, 3, c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func msLabel(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%gs", math.Round(v/100)/10)
	case v >= 1:
		return fmt.Sprintf("%gms", math.Round(v*10)/10)
	}
	return fmt.Sprintf("%gms", math.Round(v*1000)/1000)
}

func podsLabel(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%gk", math.Round(v/100)/10)
	}
	return fmt.Sprintf("%g", v)
}
