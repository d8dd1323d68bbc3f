package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/kube-fence/kube-fence/internal/nlrules"
)

// Check is one run of the doctor: repair when asked, scan, report.
type Check struct {
	Scan Options
	// Fix repairs before scanning; FixOptions.NetnsPath is Scan's.
	Fix        bool
	FixOptions FixOptions
	// JSON prints the report as the documented JSON document, else text.
	JSON bool
	// Out receives the report; Log the repair lines and --watch's notes
	// (keep them apart to keep Out one JSON document).
	Out, Log io.Writer
	// Resync makes Watch check again after this long without a change
	// (0: only on changes), in case a notification was lost.
	Resync time.Duration
}

// Result is one check's outcome, for callers that act on it (the guard).
type Result struct {
	Report   *Report
	Fixed    FixResult
	FixErr   error
	Duration time.Duration // the scan, without the repair
}

// Once repairs (when asked), scans and writes the report.
func (c Check) Once(ctx context.Context) (Result, error) {
	var res Result
	if c.Fix {
		fo := c.FixOptions
		fo.NetnsPath = c.Scan.NetnsPath
		if fo.Log == nil {
			fo.Log = c.Log
		}
		res.Fixed, res.FixErr = Fix(fo)
		if res.FixErr != nil {
			return res, fmt.Errorf("fix: %w", res.FixErr)
		}
	}
	start := time.Now()
	rep, err := Scan(ctx, c.Scan)
	if err != nil {
		return res, fmt.Errorf("scan failed: %w", err)
	}
	res.Duration, res.Report = time.Since(start), rep
	if c.Out == nil {
		return res, nil
	}
	if c.JSON {
		enc := json.NewEncoder(c.Out)
		enc.SetIndent("", "  ")
		return res, enc.Encode(rep)
	}
	return res, WriteText(c.Out, rep)
}

// Settle is how long Watch lets a burst of transactions (a tool restoring
// many rules) go on before it checks again.
const Settle = 200 * time.Millisecond

// Watch runs Once, then again after every burst of nf_tables transactions
// in the namespace, until ctx ends. Each result goes to observe (may be
// nil); a failed check is logged and the watch goes on.
func (c Check) Watch(ctx context.Context, observe func(Result, error)) error {
	ns, err := openNamespace(c.Scan.NetnsPath)
	if err != nil {
		return err
	}
	defer ns.close()
	changes, err := nlrules.Changes(ctx, ns.fd())
	if err != nil {
		return err
	}
	log := c.Log
	if log == nil {
		log = io.Discard
	}
	report := func() {
		res, err := c.Once(ctx)
		if err != nil {
			fmt.Fprintln(log, "kube-fence:", err)
		}
		if observe != nil {
			observe(res, err)
		}
	}
	report()
	var resync <-chan time.Time
	for {
		if c.Resync > 0 {
			resync = time.After(c.Resync)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-resync:
			report()
			continue
		case _, ok := <-changes:
			if !ok {
				return nil
			}
		}
		if !settle(ctx, changes) {
			return nil
		}
		fmt.Fprintf(log, "--- nftables changed at %s, checking again\n", time.Now().Format(time.RFC3339))
		report()
	}
}

// settle waits Settle, then drains the notifications that arrived
// meanwhile; false when the watch is over.
func settle(ctx context.Context, changes <-chan error) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(Settle):
	}
	for {
		select {
		case _, ok := <-changes:
			if !ok {
				return false
			}
		default:
			return true
		}
	}
}
