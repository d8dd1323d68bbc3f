package nftext

import "github.com/google/nftables/expr"

// Undecoded stands for an expression that github.com/google/nftables could
// not decode (an unknown kind, or one whose attributes failed to parse). It
// keeps the expression's name and raw attribute bytes so reports can still
// show it and a restore can write it back unchanged.
//
// The embedded expr.Any is always nil: it only lets the value sit in an
// []expr.Any. Never pass an Undecoded to google/nftables for marshalling.
type Undecoded struct {
	expr.Any
	Name string
	Data []byte
	Err  error // why decoding failed; nil when the kind is simply unknown
}
