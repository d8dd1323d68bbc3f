#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root: installs what
# the tests need (apt packages, Go modules, the test kube-apiserver), then runs
# `go test ./...` and prints a summary. Extra arguments go to go test.
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
if [ "$status" -ne 0 ]; then
	echo "RESULT: FAIL"
else
	echo "RESULT: PASS"
fi
exit "$status"
