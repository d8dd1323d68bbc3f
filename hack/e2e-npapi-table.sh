#!/usr/bin/env bash
# Prints the network-policy-api conformance suite's results (the test2json
# events hack/e2e-npapi.sh writes) as a Markdown table: a row per test
# without subtests and per subtest, with its result, seconds and, for a
# failure, the last probe the suite reported as failed (protocol, target,
# what it saw instead).
#
# Results: pass; fail; "fail (no SCTP)" when that probe was SCTP (this
# kernel has no SCTP sockets: the node's limit, not kube-fence's);
# "skipped (SCTP)" for the tests hack/npapi-conformance leaves out;
# "skipped" for a feature not asked for.
#
# Usage: hack/e2e-npapi-table.sh EVENTS.json
set -euo pipefail
(($# == 1)) || { echo "usage: $0 EVENTS.json" >&2; exit 2; }
echo "| test | result | s | failed probe |"
echo "|---|---|---|---|"
jq -rs '
  def short: sub("^TestNetworkPolicyAPIConformance/"; "") | gsub("_"; " ");
  def clean: sub("^\\s*\\S+\\.go:[0-9]+: "; "") | sub("\\s+$"; "");
  # The last "FAILED Command was" and "Expected ..." lines of each test.
  (reduce (.[] | select(.Action == "output" and .Test != null)) as $e ({};
      if ($e.Output | test("FAILED Command was")) then
        .[$e.Test].cmd = ($e.Output | clean | sub("^FAILED Command was "; ""))
      elif ($e.Output | test("Expected connection|FAILED to execute")) then
        .[$e.Test].why = ($e.Output | clean)
      else . end)) as $probe
  | [.[] | select(.Test != null and (.Action == "pass" or .Action == "fail" or .Action == "skip"))] as $ends
  | [$ends[].Test] as $names
  | $ends[]
  | .Test as $t
  | select($t | startswith("TestNetworkPolicyAPIConformance/"))
  # Leaves only: a test with subtests is the sum of its rows.
  | select([$names[] | startswith($t + "/")] | any | not)
  | ($probe[$t] // {}) as $p
  | (if .Action == "fail" and (($p.cmd // "") | test("protocol=sctp")) then "fail (no SCTP)"
     elif .Action == "pass" and ($t | test("SCTP$")) then "skipped (SCTP)"
     elif .Action == "skip" then "skipped"
     else .Action end) as $result
  | "| \($t | short) | \($result) | \(.Elapsed // 0 | floor) | \(
      if .Action == "fail" then "`\($p.cmd // "")` \($p.why // "" | gsub("\\|"; "/"))" else "" end) |"
' "$1"
