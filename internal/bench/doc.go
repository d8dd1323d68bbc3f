// Package bench measures kube-fence at cluster scale, with the real pipeline
// and the real kernel, in network namespaces it creates and removes:
//
//   - compiling one node's plan of synthetic clusters (package synth) of
//     growing size;
//   - applying that node's whole table over netlink and, in the same run,
//     `nft -f` loading the same table as text (the kernel plus nftables' C
//     userspace: the reference for what the kernel allows);
//   - incremental changes (a pod added, a pod relabelled into a selector, a
//     policy added, a namespace relabelled): the time from the change to the
//     committed kernel state and the size of the netlink transaction;
//   - the datapath: TCP connection setup and throughput between two lab pods
//     with no policy and with thousands of policies selecting them.
//
// Every quantity is measured several times and reported as a median with
// its spread. Nothing here asserts anything about time; Run returns the
// numbers, Markdown prints them and Plot draws sync time against cluster
// size. docs/benchmarks.md holds a full run and explains each number.
package bench
