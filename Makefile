# Shortcuts only: hack/test.sh is the test command (CI runs it).
.PHONY: test conformance e2e-node

test:
	./hack/test.sh

# The conformance suite's long mode: every generated case on every layout,
# the results written to _output/conformance.md (see docs/conformance.md).
conformance:
	mkdir -p _output
	go test -count=1 -timeout 60m -v ./test/conformance/ \
		-conformance.long -conformance.report=$(CURDIR)/_output/conformance.md

# The upstream Netpol e2e suite against a real node (hack/node.sh) with
# kube-fence installed from deploy/; results in _output/e2e-node/ and
# docs/conformance.md. NODES=2 for two nodes, IPV6=1 for IPv6 first.
e2e-node:
	./hack/e2e-node.sh --nodes $(or $(NODES),1) $(if $(IPV6),--ipv6)
