# Shortcuts only: hack/test.sh is the test command (CI runs it).
.PHONY: test conformance

test:
	./hack/test.sh

# The conformance suite's long mode: every generated case on every layout,
# the results written to _output/conformance.md (see docs/conformance.md).
conformance:
	mkdir -p _output
	go test -count=1 -timeout 60m -v ./test/conformance/ \
		-conformance.long -conformance.report=$(CURDIR)/_output/conformance.md
