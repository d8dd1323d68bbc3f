// Package enforce owns a node's enforcement: the one pipeline the agent, the
// lab and the bench drive. A Pipeline holds the incremental compiler, the
// renderer and the connection to the node's nftables, and turns object
// changes into the kernel's table:
//
//	object changes -> plan (policy.Compiler) -> table (nft.Renderer)
//	  -> diff -> one transaction -> read back what changed -> repair
//
// Callers decide only when: the agent debounces, backs off and verifies on
// a timer; the lab syncs after each scenario step; the bench times the
// steps. What the lab proves with packets is therefore what the agent runs.
package enforce
