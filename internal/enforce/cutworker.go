package enforce

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/kube-fence/kube-fence/internal/conntrack"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// cutWorker cuts the connections the committed plan denies on a goroutine of
// its own, so that the writer does not wait for a dump of the whole
// conntrack table after every commit that may narrow (tens of milliseconds
// at a thousand pods, more with many connections).
//
// It judges every entry with the latest committed plan, not with the plan
// of the commit that asked for the cut: commit is held as a writer around
// the kernel commit and the publication of its plan, and as a reader around
// the judgement and the deletion of each entry (conntrack.Conn.Cut judges
// each denied entry again under it). So an entry is deleted only when the
// table in the kernel at that moment denies it: a newer plan that allows a
// flow again is never undone by a cut of an older one, and a commit waits at
// most for one deletion, never for the dump. An entry that the listing found
// allowed but a commit during the cut denies is left to the next run, which
// that commit asks for.
type cutWorker struct {
	cutter Cutter
	commit sync.RWMutex
	plan   atomic.Pointer[plan.Plan] // the latest committed plan

	mu      sync.Mutex
	changed *sync.Cond // on mu: a run ended
	onCut   func(*conntrack.Result, error)
	due     bool // a run is asked for (a commit, or a retry of a failed run)
	busy    bool
	asked   int // requests so far
	started int // asked when the last run started
	last    *conntrack.Result
	lastErr error

	kick     chan struct{} // capacity 1: requests while busy coalesce
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func newCutWorker(c Cutter) *cutWorker {
	w := &cutWorker{cutter: c, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	w.changed = sync.NewCond(&w.mu)
	go w.run()
	return w
}

// allowed is the verdict of the latest committed plan.
func (w *cutWorker) allowed(f conntrack.Flow) bool {
	pl := w.plan.Load()
	return pl == nil || Allowed(pl)(f)
}

// request asks for a run after the ones under way; several requests while
// one runs make one more run, with the plan committed by then.
func (w *cutWorker) request() {
	w.mu.Lock()
	w.due = true
	w.asked++
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *cutWorker) run() {
	defer close(w.done)
	failures := 0
	var retry <-chan time.Time
	for {
		select {
		case <-w.kick:
		case <-retry:
		case <-w.stop:
			return
		}
		w.mu.Lock()
		if !w.due || w.busy {
			w.mu.Unlock()
			continue
		}
		w.due, w.busy, w.started = false, true, w.asked
		onCut := w.onCut
		w.mu.Unlock()

		res, err := w.cutter.Cut(w.allowed, w.commit.RLocker())
		retry = nil
		if err != nil {
			err = &Error{StageCut, err}
			failures++
			retry = time.After(cutBackoff(failures))
		} else {
			failures = 0
		}
		if onCut != nil {
			onCut(&res, err)
		}
		w.mu.Lock()
		w.busy, w.last, w.lastErr = false, &res, err
		w.due = w.due || err != nil
		w.changed.Broadcast()
		w.mu.Unlock()
	}
}

// cutBackoff grows from 100ms to 30s with consecutive failed runs.
func cutBackoff(failures int) time.Duration {
	return min(100*time.Millisecond<<min(failures-1, 9), 30*time.Second)
}

// wait blocks until no run is under way or asked for, except the retry of
// a failed run that no request followed, and returns the last run's result.
func (w *cutWorker) wait() (*conntrack.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.busy || w.due && (w.lastErr == nil || w.started != w.asked) {
		w.changed.Wait()
	}
	return w.last, w.lastErr
}

// close stops the worker after the run under way, if any.
func (w *cutWorker) close() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
	w.mu.Lock()
	w.busy, w.due = false, false
	w.changed.Broadcast()
	w.mu.Unlock()
}
