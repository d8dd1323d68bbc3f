package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// SyncResult is the full sync of one node's table at one cluster size:
// compile, render, apply over netlink, read back, and nft -f of the same
// table for reference. Times are milliseconds.
type SyncResult struct {
	Size     string `json:"size"`
	Pods     int    `json:"pods"`
	Policies int    `json:"policies"`

	// The table: what the node enforces.
	Profiles  int `json:"profiles"`
	Chains    int `json:"chains"`
	Rules     int `json:"rules"`
	Sets      int `json:"sets"`
	Elements  int `json:"elements"`
	TextBytes int `json:"textBytes"`
	Messages  int `json:"messages"`
	Bytes     int `json:"bytes"`

	Compile    Sample `json:"compileMs"`
	CompileCPU Sample `json:"compileCpuMs"`
	CompileMiB Sample `json:"compileAllocMiB"`
	Render     Sample `json:"renderMs"`
	// Apply is one transaction creating the whole table: encoding, sending
	// and the kernel's commit, until its acknowledgement.
	Apply    Sample `json:"applyMs"`
	ApplyCPU Sample `json:"applyCpuMs"`
	// Total is compile + render + apply of one run: targets (a)+(b).
	Total Sample `json:"totalMs"`
	// Verify is reading the whole table back and comparing.
	Verify Sample `json:"verifyMs"`
	// Nft is `nft -f` loading the same table from a file, process start to
	// exit, and NftCPU the nft process's CPU time.
	Nft    Sample `json:"nftMs"`
	NftCPU Sample `json:"nftCpuMs"`
	// Ratio is Apply / Nft and CPURatio ApplyCPU / NftCPU, of the same run.
	Ratio    Sample `json:"ratio"`
	CPURatio Sample `json:"cpuRatio"`
	// SameTable says the table nft loaded read back equal to the desired
	// one, so both sides did the same work.
	SameTable bool `json:"sameTable"`
}

func measureSync(ctx context.Context, sz Size, runs int, log func(string, ...any)) (SyncResult, error) {
	s := synth.Generate(sz.Config)
	node := synth.NodeName(0)
	r := SyncResult{Size: sz.Name, Pods: sz.Config.Pods, Policies: sz.Config.Policies}
	runtime.GC() // the generator's garbage is not the compiler's

	log("%s: compiling %d times", sz.Name, runs)
	var pl *plan.Plan
	for range runs {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		sw := start()
		pl = policy.Compile(s, node, options)
		wall, cpu := sw.lap()
		runtime.ReadMemStats(&after)
		r.Compile, r.CompileCPU = append(r.Compile, wall), append(r.CompileCPU, cpu)
		r.CompileMiB = append(r.CompileMiB, float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	}
	var table *nft.Table
	for range runs {
		sw := start()
		table = nft.Render(pl)
		wall, _ := sw.lap()
		r.Render = append(r.Render, wall)
	}
	r.Profiles = len(pl.Profiles)
	r.Chains, r.Rules, r.Sets, r.Elements = table.Counts()

	dir, err := os.MkdirTemp("", "kube-fence-bench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "table.nft")
	text := nft.Text(table)
	r.TextBytes = len(text)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return r, err
	}

	log("%s: %d chains, %d sets, %d elements; applying over netlink and with nft -f, %d times each",
		sz.Name, r.Chains, r.Sets, r.Elements, runs)
	for i := range runs {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		if err := applyOnce(s, node, &r); err != nil {
			return r, err
		}
		if err := nftOnce(table, file, i == 0, &r); err != nil {
			return r, err
		}
		n := len(r.Apply) - 1
		r.Total = append(r.Total, r.Compile[min(n, len(r.Compile)-1)]+r.Render[min(n, len(r.Render)-1)]+r.Apply[n])
		r.Ratio = append(r.Ratio, r.Apply[n]/r.Nft[n])
		r.CPURatio = append(r.CPURatio, r.ApplyCPU[n]/r.NftCPU[n])
	}
	return r, nil
}

// applyOnce enforces the snapshot through a new pipeline in a new
// namespace, which creates the whole table in one transaction, and reads it
// back whole. The compile and render before the transaction stay out of the
// measurement (they are measured above).
func applyOnce(s *cluster.Snapshot, node string, r *SyncResult) error {
	ns, err := netns.New()
	if err != nil {
		return err
	}
	defer ns.Close()
	pipe, err := enforce.Open(node, options, kernel.Options{NetNSFD: ns.FD()})
	if err != nil {
		return err
	}
	defer pipe.Close()
	pipe.Load(s)
	pipe.Pending() // compile and render now, not inside the measurement
	runtime.GC()
	a, err := pipe.Apply()
	if err != nil {
		return fmt.Errorf("apply the whole table: %w", err)
	}
	r.Apply, r.ApplyCPU = append(r.Apply, ms(a.Transaction.Wall)), append(r.ApplyCPU, ms(a.Transaction.CPU))
	r.Messages, r.Bytes = a.Result.Messages, a.Result.Bytes
	sw := start()
	chk, err := pipe.Verify()
	wall, _ := sw.lap()
	if err != nil {
		return fmt.Errorf("read the table back: %w", err)
	}
	if len(chk.Differences) > 0 {
		return fmt.Errorf("the kernel's table differs right after the apply: %s", strings.Join(chk.Differences[:min(5, len(chk.Differences))], "; "))
	}
	r.Verify = append(r.Verify, wall)
	return nil
}

// nftOnce loads the table's text with nft -f in a new namespace; the first
// time, it also reads the loaded table back and compares it with the
// desired one.
func nftOnce(table *nft.Table, file string, compare bool, r *SyncResult) error {
	ns, err := netns.New()
	if err != nil {
		return err
	}
	defer ns.Close()
	cmd := exec.Command("nft", "-f", file)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := ns.Run(cmd); err != nil {
		return fmt.Errorf("nft -f: %w: %s", err, stderr.String())
	}
	r.Nft = append(r.Nft, ms(time.Since(t0)))
	r.NftCPU = append(r.NftCPU, ms(cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()))
	if !compare {
		return nil
	}
	conn, err := kernel.Open(kernel.Options{NetNSFD: ns.FD(), Ownership: kernel.OwnershipOff})
	if err != nil {
		return err
	}
	defer conn.Close()
	d, err := conn.Verify(table)
	if err != nil {
		return fmt.Errorf("read back the table nft loaded: %w", err)
	}
	if !d.Empty() {
		return errors.New("the table nft loaded differs from the desired one: " + strings.Join(d.Differences[:min(5, len(d.Differences))], "; "))
	}
	r.SameTable = true
	return nil
}
