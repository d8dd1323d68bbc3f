// Package scale holds the tests that measure kube-fence against a real API
// server at cluster scale (test/e2e/framework): the agent's memory (and its
// heap profile's biggest consumers, through --profiling) holding a
// synthetic cluster created through the API, and the time from an API change
// to the committed kernel table. By default they run at a small size, to
// keep working in CI; docs/benchmarks.md gives the command for the 10k-pod
// run. They need root, etcd and the test kube-apiserver, like test/e2e.
package scale
