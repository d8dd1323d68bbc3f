# Shortcuts only: hack/test.sh is the test command (CI runs it).
.PHONY: test conformance fuzz bench-peer e2e-node e2e-netpol e2e-npapi soak
comma := ,
empty :=
space := $(empty) $(empty)

test:
	./hack/test.sh

# The conformance suite's long mode: every generated case on every layout,
# the results written to _output/conformance.md (see docs/conformance.md).
conformance:
	mkdir -p _output
	go test -count=1 -timeout 60m -v ./test/conformance/ \
		-conformance.long -conformance.report=$(CURDIR)/_output/conformance.md

# Every fuzz target for FUZZTIME each (default 10m; see docs/testing-fuzz.md).
# CI runs the same targets for 20s each from hack/test.sh.
FUZZTIME ?= 10m
fuzz:
	./hack/fuzz.sh $(FUZZTIME)

# kube-fence against kube-router's network policy controller in one sitting
# (test/peer, docs/benchmarks-peer.md): builds kube-router from the Go module
# proxy, then alternates them at 100 and 1k pods. Not part of `go test
# ./...` (build tag peer). PEER_ROUTERS takes upstream versions or
# MODULE@VERSION for a fork (hack/build-kube-router.sh); the default is the
# kube-router K3s embeds (its k3s-io fork) and upstream v2.10.0.
PEER_ROUTERS ?= github.com/k3s-io/kube-router/v2@v2.6.3-k3s1 v2.10.0
PEER_FLAGS ?= -peer.sizes=100,1000 -peer.rounds=5
PEER_OUT ?= $(CURDIR)/_output/benchmarks-peer.json
bench-peer:
	./hack/build-kube-apiserver.sh
	./hack/build-kube-router.sh $(PEER_ROUTERS)
	mkdir -p _output
	go test -tags peer -count=1 -timeout 90m -v ./test/peer/ -run '^TestPeer$$' $(PEER_FLAGS) \
		-peer.kube-router=$(subst $(space),$(comma),$(foreach r,$(PEER_ROUTERS),$(CURDIR)/_output/bin/kube-router-$(lastword $(subst @, ,$(r))))) \
		-peer.out=$(PEER_OUT)

# Both suites against a real node (hack/node.sh) with kube-fence installed
# from deploy/, one after the other, each on a node of its own; see
# docs/conformance.md. NODES=2 for two nodes, IPV6=1 for IPv6 first (Netpol).
e2e-node: e2e-netpol e2e-npapi

# The upstream Netpol e2e suite; results in _output/e2e-node/.
e2e-netpol:
	./hack/e2e-node.sh --nodes $(or $(NODES),1) $(if $(IPV6),--ipv6)

# The network-policy-api conformance suite (ClusterNetworkPolicy, the
# module hack/npapi-conformance pins) with its CRD; results in
# _output/e2e-npapi/results.md. Two nodes at least (NPAPI_NODES).
e2e-npapi:
	./hack/e2e-npapi.sh --nodes $(or $(NPAPI_NODES),2)
# The churn soak's long size (test/soak, docs/reliability.md): 20 changes per
# second for 30 minutes against a real API server while probes run without
# pause, the agent SIGKILLed about every minute, a fault every 3 minutes (a
# notification flood, etcd restarted, the API server away for 10 minutes).
# CI runs the short size (one minute, 3 changes per second) in go test ./...
SOAK_FLAGS ?= -soak.duration=30m -soak.rate=20 -soak.kill-every=1m -soak.fault-every=3m -soak.api-outage=10m
soak:
	./hack/build-kube-apiserver.sh
	mkdir -p _output
	go test -count=1 -timeout 60m -v ./test/soak/ -run '^TestSoak$$' $(SOAK_FLAGS) -soak.out=$(CURDIR)/_output/soak.json
