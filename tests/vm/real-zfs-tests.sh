#!/usr/bin/env bash
# Runs the real-OpenZFS test suites (tests/real_zfs.rs, and whatever else is listed in SUITES) inside
# ONE VM per OpenZFS line. Builds on the host first: compiling under TCG would be slow.
#
#   tests/vm/real-zfs-tests.sh              both lines (2.3 first: what NixOS 25.11 ships)
#   ZFS_LINES=2.3 tests/vm/real-zfs-tests.sh
#   TEST_FILTER=owner tests/vm/real-zfs-tests.sh     only tests whose name contains "owner"
#
# Needs tests/vm/setup.sh to have provisioned the lines. Exit status: non-zero if any line failed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LINES=${ZFS_LINES:-2.3 2.1}
SUITES=${SUITES:-real_zfs}
TEST_FILTER=${TEST_FILTER:-}

cd "$REPO"
cargo build --quiet --bin persistctl
declare -A TESTBIN=()
for suite in $SUITES; do
    TESTBIN[$suite]=$(cargo test --quiet --test "$suite" --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$suite" | tail -n1)
    [ -n "${TESTBIN[$suite]}" ] || { echo "real-zfs-tests: could not build test binary $suite" >&2; exit 1; }
done
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/persistctl

payload="set -e; cd /tmp; export PERSISTCTL_BIN=/host$BIN RUST_BACKTRACE=1; zfs version | head -n1;"
for suite in $SUITES; do
    # --show-output: the fault-injection figures (trials, killed mid-run, failures) reach the log.
    payload+=" echo '== suite $suite'; /host${TESTBIN[$suite]} --ignored --test-threads=1 --show-output $TEST_FILTER;"
done

# Knobs the suites read inside the guest, passed through when set on the host.
for knob in PRESEED_TRIALS PRESEED_REPLICA_TRIALS MIGRATE_TRIALS; do
    [ -n "${!knob:-}" ] && VM_ENV="${VM_ENV:-} $knob"
done
export VM_ENV=${VM_ENV:-}

failed=()
for line in $LINES; do
    echo "== OpenZFS $line: booting one VM for: $SUITES"
    start=$(date +%s)
    if "$HERE/run.sh" "$line" "$payload"; then
        echo "== OpenZFS $line: passed in $(( $(date +%s) - start )) s"
    else
        rc=$?
        echo "== OpenZFS $line: FAILED (exit $rc) after $(( $(date +%s) - start )) s"
        failed+=("$line")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "real-zfs-tests: failed on OpenZFS ${failed[*]}" >&2
    exit 1
fi
