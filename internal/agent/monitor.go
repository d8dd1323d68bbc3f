package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/google/nftables"
)

// watchNftables reports, on notify, every nftables transaction in the
// namespace that another process committed: with the table's owner flag no
// other process can change it, but without (ownership off or an old kernel)
// this is what turns `nft delete table` into a repair within milliseconds
// instead of at the next verification. Our own transactions are ignored.
// A broken subscription is reported too and then re-established.
func watchNftables(ctx context.Context, log *slog.Logger, netnsFD int, notify chan<- struct{}) {
	for ctx.Err() == nil {
		err := monitorOnce(ctx, netnsFD, notify)
		if ctx.Err() != nil {
			return
		}
		log.Warn("nftables notifications interrupted; verifying the table and subscribing again", "err", err)
		signal(notify)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func monitorOnce(ctx context.Context, netnsFD int, notify chan<- struct{}) error {
	conn, err := nftables.New(nftables.WithNetNSFd(netnsFD))
	if err != nil {
		return err
	}
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(64))
	defer mon.Close()
	events, err := conn.AddGenerationalMonitor(mon)
	if err != nil {
		return fmt.Errorf("subscribe to nftables notifications: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("notification channel closed")
			}
			if ev.GeneratedBy != nil && ev.GeneratedBy.Error != nil {
				return ev.GeneratedBy.Error
			}
			if !ours(ev) {
				signal(notify)
			}
		}
	}
}

// ours reports whether a transaction came from one of this process's
// threads. The kernel records the committing task's thread ID.
func ours(ev *nftables.MonitorEvents) bool {
	if ev.GeneratedBy == nil {
		return false
	}
	gen, ok := ev.GeneratedBy.Data.(*nftables.GenMsg)
	if !ok {
		return false
	}
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", gen.ProcPID))
	return err == nil
}

func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
