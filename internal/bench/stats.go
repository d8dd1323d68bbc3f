package bench

import (
	"fmt"
	"slices"
	"syscall"
	"time"
)

// Sample is repeated measurements of one quantity.
type Sample []float64

// Median returns the middle value (the mean of the two middle ones for an
// even count), or 0 for no values.
func (s Sample) Median() float64 {
	if len(s) == 0 {
		return 0
	}
	v := slices.Sorted(slices.Values(s))
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// Quantile returns the q-quantile (0 <= q <= 1) by the nearest rank, or 0
// for no values.
func (s Sample) Quantile(q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	v := slices.Sorted(slices.Values(s))
	return v[min(len(v)-1, int(q*float64(len(v))))]
}

// Min and Max return the extremes, or 0 for no values.
func (s Sample) Min() float64 {
	if len(s) == 0 {
		return 0
	}
	return slices.Min(s)
}

func (s Sample) Max() float64 {
	if len(s) == 0 {
		return 0
	}
	return slices.Max(s)
}

// Spread formats the median and the range, "12.3 (10.1-15.2)", with a
// precision that suits the magnitude.
func (s Sample) Spread() string {
	if len(s) == 0 {
		return "-"
	}
	if len(s) == 1 {
		return num(s[0])
	}
	return fmt.Sprintf("%s (%s-%s)", num(s.Median()), num(s.Min()), num(s.Max()))
}

// num prints a value with three significant digits or so.
func num(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuTime is the CPU time (user and system) of this process so far: it
// counts the kernel's work done in our system calls, and is less disturbed
// than wall time by other processes on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stopwatch measures one step in wall and CPU time.
type stopwatch struct {
	wall time.Time
	cpu  time.Duration
}

func start() stopwatch { return stopwatch{time.Now(), cpuTime()} }

// lap returns the wall and CPU milliseconds since start.
func (s stopwatch) lap() (wall, cpu float64) {
	return ms(time.Since(s.wall)), ms(cpuTime() - s.cpu)
}
