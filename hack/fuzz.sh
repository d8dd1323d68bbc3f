#!/usr/bin/env bash
# hack/fuzz.sh [TIME]: runs every Go fuzz target for TIME each (a go test
# -fuzztime value: 20s, 10m, 5000x; default 20s) and fails when one finds an
# input that breaks it. hack/test.sh runs it with a short TIME after
# `go test ./...`; `make fuzz` runs it longer. A failing input is written to
# the package's testdata/fuzz/<Target>/, where plain `go test` replays it:
# commit it with the fix as the regression test. See docs/testing-fuzz.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
ensure_go

time="${1:-20s}"
# package and target, one pair a line; keep docs/testing-fuzz.md in step.
targets=(
	"./internal/lab/scenario FuzzParse"
	"./internal/nlrules FuzzParseRule"
	"./internal/nlrules FuzzUserComment"
	"./internal/doctor/iptmodel FuzzModel"
	"./internal/nftext FuzzRule"
	"./internal/policy FuzzCompilerDifferential"
	"./internal/droplog FuzzDecode"
)

start=$(date +%s)
failed=()
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "== fuzz ${name} (${pkg}) for ${time}"
	# One worker: the fuzzer shares the machine with whatever else runs.
	# One minimization attempt per new input (FUZZ_MINIMIZE to change it):
	# the targets find new inputs often, and minimizing each for the default
	# minute left the compiler target 113 executions in 3 minutes instead
	# of 9,000. A failing input is replayed as found, unminimized.
	# Go's fuzzing engine sometimes ends a run that found nothing with
	# "context deadline exceeded" when -fuzztime expires while a worker is
	# busy with a new input: no failing input is written then. Such a run is
	# repeated once; a real failure always writes its input.
	for attempt in 1 2; do
		out="$(mktemp)"
		if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$time" -fuzzminimizetime="${FUZZ_MINIMIZE:-1x}" \
			-parallel="${FUZZ_PARALLEL:-1}" "$pkg" 2>&1 | tee "$out"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
			rm -f "$out"
			break
		fi
		if [ "$attempt" -eq 1 ] && grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written to' "$out"; then
			echo "== ${name}: the engine stopped at its deadline without a failing input; running it again"
			rm -f "$out"
			continue
		fi
		rm -f "$out"
		failed+=("${name}")
		break
	done
done

echo
echo "== fuzz summary ($(($(date +%s) - start))s, ${#targets[@]} targets, ${time} each)"
if [ "${#failed[@]}" -gt 0 ]; then
	echo "FUZZ: FAIL: ${failed[*]} (the failing inputs are in testdata/fuzz/ of their packages)"
	exit 1
fi
echo "FUZZ: PASS"
