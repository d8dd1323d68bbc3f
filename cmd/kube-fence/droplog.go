package main

import (
	"github.com/spf13/pflag"

	"github.com/kube-fence/kube-fence/internal/nft"
)

// dropLogFlags are the flags saying how the table logs what it drops; the
// agent and render share them so render prints the agent's table.
type dropLogFlags struct {
	on          bool
	group       uint16
	rate, burst uint32
}

func addDropLogFlags(f *pflag.FlagSet) *dropLogFlags {
	d := &dropLogFlags{on: true}
	f.BoolVar(&d.on, "log-denied", d.on, "log every packet the table denies to an NFLOG group, rate limited in the kernel (the agent writes one line per denied connection)")
	f.Uint16Var(&d.group, "log-group", nft.DefaultLogGroup, "the NFLOG group the table logs denied packets to")
	f.Uint32Var(&d.rate, "log-rate", nft.DefaultLogRate, "most denied packets logged per second on each side (egress, ingress, unknown address); those above are dropped, counted and not logged")
	f.Uint32Var(&d.burst, "log-burst", nft.DefaultLogBurst, "how many denied packets each side may log at once above --log-rate")
	return d
}

func (d *dropLogFlags) value() nft.DropLog {
	return nft.DropLog{Off: !d.on, Group: d.group, Rate: d.rate, Burst: d.burst}
}
