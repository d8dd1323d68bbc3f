#!/usr/bin/env bash
# Prints the Netpol specs of e2e.test JUnit reports (junit_01.xml) as one
# Markdown table: a row per spec, a column per report with its result and
# seconds. Specs a run skipped are left out.
#
# Usage: hack/e2e-node-table.sh TITLE=JUNIT.xml...
#   e.g. hack/e2e-node-table.sh "1 node IPv4=_output/e2e-node/junit_01.xml"
set -euo pipefail
(($#)) || { echo "usage: $0 TITLE=JUNIT.xml..." >&2; exit 2; }
for arg in "$@"; do
  title="${arg%%=*}" report="${arg#*=}"
  grep -o '<testcase name="[^"]*Netpol[^"]*"[^>]*>' "$report" |
    sed -E 's/^<testcase name="([^"]*)".* status="([^"]*)".*time="([^"]*)".*/\1\t\2\t\3/' |
    awk -F'\t' -v t="$title" '$2 != "skipped" { printf "%s\t%s\t%s (%.0f s)\n", t, $1, $2, $3 }'
done | sed -e "s/&#39;/'/g" -e 's/&quot;/"/g' -e 's/&amp;/\&/g' -e 's/&lt;/</g' -e 's/&gt;/>/g' \
  -e 's/ \[Feature:NetworkPolicy\]//; s/\[It\] \[sig-network\] //' |
  sort -s -t "$(printf '\t')" -k2,2 |
  awk -F'\t' '
    !($1 in col) { col[$1] = ++ncol; title[ncol] = $1 }
    !($2 in row) { row[$2] = ++nrow; name[nrow] = $2 }
    { cell[row[$2], col[$1]] = $3 }
    END {
      printf "| # | spec |"; for (c = 1; c <= ncol; c++) printf " %s |", title[c]; print ""
      printf "|---|---|"; for (c = 1; c <= ncol; c++) printf "---|"; print ""
      for (r = 1; r <= nrow; r++) {
        printf "| %d | %s |", r, name[r]
        for (c = 1; c <= ncol; c++) printf " %s |", ((r, c) in cell) ? cell[r, c] : "not run"
        print ""
      }
    }'
