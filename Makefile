# Shortcuts only: hack/test.sh is the test command (CI runs it).
.PHONY: test conformance fuzz

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
