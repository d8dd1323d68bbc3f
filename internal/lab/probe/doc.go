// Package probe serves and probes the lab's pods with real packets: a TCP
// listener and a UDP echo per declared port that answer with the pod's
// identity ("namespace/name"), and a raw-socket receiver that notices SCTP
// INITs, since this kernel has no SCTP sockets.
//
// Sockets are created inside a pod's network namespace and used from
// ordinary goroutines afterwards: a socket keeps the namespace it was made
// in, so no goroutine has to stay locked inside a namespace while it waits.
package probe
