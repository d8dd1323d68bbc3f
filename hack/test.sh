#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root: installs what
# the tests need (apt packages, Go modules, the test kube-apiserver), then runs
# `go test ./...`, prints a summary, and runs every fuzz target for a short
# time (hack/fuzz.sh; FUZZTIME sets it, default 20s, 0 skips it). Extra
# arguments go to go test.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
require_root
ensure_go
./hack/ci-deps.sh

mkdir -p _output
log=_output/test.log
start=$(date +%s)
set +e
go test -count=1 -timeout 45m "$@" ./... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

echo
echo "== go test summary ($(( $(date +%s) - start ))s; full log in $log)"
passed=$(grep -c '^ok ' "$log" || true)
failed=$(grep -c '^FAIL\s' "$log" || true)
notests=$(grep -c 'no test files' "$log" || true)
echo "packages: ${passed} passed, ${failed} failed, ${notests} without tests"
grep -E '^(--- FAIL|FAIL\s)' "$log" || true

fuzztime="${FUZZTIME:-20s}"
if [ "$fuzztime" != "0" ]; then
	echo
	set +e
	./hack/fuzz.sh "$fuzztime" 2>&1 | tee _output/fuzz.log
	[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
	set -e
fi

if [ "$status" -ne 0 ]; then
	echo "RESULT: FAIL"
else
	echo "RESULT: PASS"
fi
exit "$status"
