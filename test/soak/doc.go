// Package soak runs the agent, as deploy/'s DaemonSet runs it, against a
// real API server (test/e2e/framework) under continuous churn: pods created
// and deleted, pods relabelled, NetworkPolicies created, changed and
// deleted at a steady rate, while probes between every pair of lab pods run
// without pause and faults strike (the agent killed with SIGKILL and
// restarted). Every probe is checked against every state the API server
// acknowledged in the window it could have seen (see TestSoak), and the
// run reports the probe count, the agent's CPU and memory over time, and the
// latency from an API write to the kernel's table reflecting it.
//
// By default it runs at CI size (about a minute, a few changes per second);
// `make soak` runs the long size (docs/reliability.md).
package soak
