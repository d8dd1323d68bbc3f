package kernel

import (
	"fmt"

	"github.com/kube-fence/kube-fence/internal/nft"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nlrules"
)

// Rules are read with one dump of the whole table and decoded by
// internal/nlrules, which keeps an expression google/nftables cannot decode
// as an opaque one: a rule carrying it never compares equal to ours, where
// google/nftables' own listing would drop it and let the rule look like ours.

// keptRule is a rule read back with the chain it belongs to.
type keptRule struct {
	nft.Rule
	chain string
}

func readRules(sock *netlink.Conn) ([]keptRule, error) {
	req, err := request(unix.NFT_MSG_GETRULE, netlink.Dump,
		netlink.Attribute{Type: unix.NFTA_RULE_TABLE, Data: cstring(nft.TableName)})
	if err != nil {
		return nil, err
	}
	msgs, err := sock.Execute(req)
	if err != nil {
		return nil, fmt.Errorf("list rules of table inet %s: %w", nft.TableName, err)
	}
	out := make([]keptRule, 0, len(msgs))
	for _, m := range msgs {
		r, err := nlrules.ParseRule(m)
		if err != nil {
			return nil, fmt.Errorf("decode rule: %w", err)
		}
		out = append(out, keptRule{
			Rule:  nft.Rule{Exprs: r.Decoded(), Comment: nlrules.UserComment(r.UserData)},
			chain: r.Chain,
		})
	}
	return out, nil
}
