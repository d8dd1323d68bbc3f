// Package limits sends objects at the limits of the Kubernetes API through a
// real API server (test/e2e/framework) to the agent as deploy/'s DaemonSet
// runs it: a thousand policies selecting one pod, one policy with
// thousands of ports and peers, names and label sets at their maximum
// lengths, a pod status with dozens of addresses. Each must be enforced
// (the kernel holds exactly the table the objects require) or rejected,
// never crash the agent; and while each is processed, a small unrelated
// change is made again and again and its latency measured: the stall of
// the writer loop. docs/reliability.md has the figures.
package limits
