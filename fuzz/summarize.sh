#!/usr/bin/env bash
# One RUNS.md table row per libFuzzer log: fuzz/summarize.sh LOG... (logs of fuzz/run.sh).
set -euo pipefail
for log in "$@"; do
  t=$(basename "$log" .log)
  stat() { grep -o "stat::$1: *[0-9]*" "$log" | grep -o '[0-9]*$' | tail -1; }
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' <<<"$last" | cut -d' ' -f2)
  if grep -q "Done [0-9]* runs in" "$log"; then result="no crash"; else result="FAILED (see log)"; fi
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*')
  echo "| $t | ${secs:-?} s | $(stat number_of_executed_units) | $(stat average_exec_per_sec) | $cov | $ft | $corp | $(stat peak_rss_mb) MB | $result |"
done
