package doctor

import (
	"fmt"
	"strings"
)

// hits names the programs a finding breaks and how, from its chain and
// what the modelled versions do.
func hits(f *Finding) []string {
	var out []string
	fatal189 := f.IPTables["1.8.9"].Check.Exit == 3
	incompatible := f.IPTables["1.8.9"].List.Exit == 1
	filterHook := f.Table == "filter" && (f.Chain == "INPUT" || f.Chain == "FORWARD" || f.Chain == "OUTPUT")
	natHook := f.Table == "nat" && (f.Chain == "PREROUTING" || f.Chain == "OUTPUT" || f.Chain == "POSTROUTING")
	if fatal189 && filterHook && f.Family == "ip" {
		out = append(out, fmt.Sprintf("K3s's embedded kube-router (bundled iptables 1.8.9): its `iptables -t filter -C %s ... -j KUBE-ROUTER-%s` check exits 3, kube-router calls klog.Fatalf and K3s exits, restarts and crashes again: a crash loop", f.Chain, f.Chain))
	}
	if fatal189 && (filterHook || natHook) {
		out = append(out, fmt.Sprintf("kube-proxy in iptables mode: `iptables -C %s` on its KUBE-* jump rules exits 3, every sync fails", f.Chain))
	}
	if fatal189 && ((f.Table == "filter" && f.Chain == "FORWARD") || natHook) {
		out = append(out, "Docker with its iptables backend: checks of its DOCKER-USER/DOCKER jump rules exit 3 at start and when networks are created")
	}
	if incompatible {
		out = append(out, fmt.Sprintf("every tool and person running `iptables -t %s -S`/`-L` gets exit 1; iptables-save silently leaves the %s table out, so save/restore based tools (kube-router, kube-proxy, Calico in iptables mode) work from a dump without it", f.Table, f.Table))
	}
	for _, v := range []string{"1.8.7", "1.8.8", "1.8.9", "1.8.10", "1.8.11"} {
		o := f.IPTables[v]
		if o.MisreadAs == "" {
			continue
		}
		var what []string
		if o.Save == "ok" {
			what = append(what, "an iptables-save | iptables-restore round trip (kube-router, kube-proxy) rewrites it so")
		}
		if strings.Contains(o.Note, "compare interface masks") {
			what = append(what, "its `-C`/`-D` find the rule by no spec at all")
		} else {
			what = append(what, "`-C`/`-D` with that spec match it")
		}
		out = append(out, fmt.Sprintf("iptables %s reads this rule as `%s`: %s", v, o.MisreadAs, strings.Join(what, ", and ")))
		break
	}
	return out
}
