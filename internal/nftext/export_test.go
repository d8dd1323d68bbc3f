package nftext

import "github.com/google/nftables/expr"

// SeedRules gives the fuzz test (package nftext_test, which may import the
// rule decoder) the rules of TestRule, with the family each is read in.
func SeedRules() (families []byte, rules [][]expr.Any) {
	for _, c := range ruleCases {
		families = append(families, c.o.Family)
		rules = append(rules, c.exprs)
	}
	return families, rules
}
