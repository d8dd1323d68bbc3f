package kernel

import (
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/nlrules"
)

// ReadSuppressed returns, per logging chain, how many packets the table in
// the network namespace netnsFD (0: the caller's) did not log because the
// chain's rate limit was exceeded (nft.Suppressed). It opens a socket of
// its own and dumps only those chains, so it costs the same however big
// the table. Chains that are missing (logging off, no audit policies, no
// table) are absent.
func ReadSuppressed(netnsFD int) (map[nft.LogChain]uint64, error) {
	sock, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netnsFD})
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	defer sock.Close()
	t := nft.NewTable()
	for _, lc := range nft.LogChains {
		name := lc.Name()
		req, err := request(unix.NFT_MSG_GETRULE, netlink.Dump,
			netlink.Attribute{Type: unix.NFTA_RULE_TABLE, Data: cstring(nft.TableName)},
			netlink.Attribute{Type: unix.NFTA_RULE_CHAIN, Data: cstring(name)})
		if err != nil {
			return nil, err
		}
		msgs, err := sock.Execute(req)
		if err != nil {
			if errors.Is(err, unix.ENOENT) { // no table or no such chain: nothing logged there
				continue
			}
			return nil, fmt.Errorf("list rules of chain %s: %w", name, err)
		}
		c := &nft.Chain{Name: name}
		for _, m := range msgs {
			r, err := nlrules.ParseRule(m)
			if err != nil {
				return nil, fmt.Errorf("decode rule of chain %s: %w", name, err)
			}
			c.Rules = append(c.Rules, nft.Rule{Exprs: r.Decoded()})
		}
		t.AddChain(c)
	}
	return nft.Suppressed(t), nil
}
