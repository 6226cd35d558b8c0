#!/usr/bin/env bash
# A long fuzz campaign over tests/fuzz_props.rs (proptest): the config loader/validator, `zfs get` trees,
# `zfs list -t snapshot` and `restic snapshots --json`. Runs the properties again and again, each run with
# PROPTEST_CASES cases per property and fresh random seeds, until DURATION seconds have passed, then prints
# the figures: runs, cases per target, panics, findings (failing properties, with proptest's minimal case
# kept in the log).
#
#   tests/fuzz/long-campaign.sh                      10 minutes, 20000 cases per property per run
#   DURATION=3600 PROPTEST_CASES=50000 tests/fuzz/long-campaign.sh
#
# Exit 0 when nothing was found, 1 otherwise. The log of every run is in $LOG (default
# target/fuzz-campaign.log).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-600}
export PROPTEST_CASES=${PROPTEST_CASES:-20000}
LOG=${LOG:-target/fuzz-campaign.log}
mkdir -p "$(dirname "$LOG")"
: > "$LOG"

bin=$(cargo test --quiet --test fuzz_props --no-run --message-format=json 2>/dev/null | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "fuzz_props":
        print(m["executable"])' | tail -n1)
[ -n "$bin" ] || { echo "long-campaign: could not build tests/fuzz_props.rs" >&2; exit 1; }

start=$(date +%s)
runs=0
failed_runs=0
while [ $(( $(date +%s) - start )) -lt "$DURATION" ]; do
    runs=$((runs + 1))
    echo "== run $runs" >> "$LOG"
    if ! "$bin" --nocapture --test-threads=2 >> "$LOG" 2>&1; then
        failed_runs=$((failed_runs + 1))
    fi
done
elapsed=$(( $(date +%s) - start ))

python3 - "$LOG" "$runs" "$failed_runs" "$elapsed" "$PROPTEST_CASES" <<'PY'
import re, sys
log, runs, failed_runs, elapsed, per_run = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
cases, panics, findings = {}, {}, {}
for line in open(log, errors="replace"):
    m = re.match(r"fuzz-figures target=(\S+) cases=(\d+) panics=(\d+) findings=(\d+)", line)
    if m:
        t = m.group(1)
        cases[t] = cases.get(t, 0) + int(m.group(2))
        panics[t] = panics.get(t, 0) + int(m.group(3))
        findings[t] = findings.get(t, 0) + int(m.group(4))
print(f"fuzz campaign: {elapsed} s, {runs} runs of PROPTEST_CASES={per_run}, {failed_runs} failing runs")
print(f"{'target':<22} {'cases':>12} {'panics':>7} {'findings':>9}")
for t in sorted(cases):
    print(f"{t:<22} {cases[t]:>12} {panics[t]:>7} {findings[t]:>9}")
total = sum(cases.values()); p = sum(panics.values()); f = sum(findings.values())
print(f"{'total':<22} {total:>12} {p:>7} {f:>9}")
print(f"{runs * len(cases) - failed_runs} passed, {f} failed")
sys.exit(1 if f or p or failed_runs else 0)
PY
