#!/usr/bin/env bash
# Benchmark: a no-op `persistctl apply` over 10, 100 and 500 datasets on real OpenZFS, in the VM.
# Prints, per N: zfs processes spawned, wall time (median of 5), the ratio to one bare
# `zfs get -H -p -r` of the same tree in the same run, and persistctl's own peak RSS.
# Targets (issue 2): 1 zfs process for any N, ratio <= 1.2, RSS < 15 MB. Figures, not a pass/fail test.
#
#   tests/bench/apply-noop.sh            (ZFS_LINE=2.3 by default; SIZES="10 100 500")
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LINE=${ZFS_LINE:-2.3}
SIZES=${SIZES:-10 100 500}
cd "$REPO"
cargo build --quiet --release --bin persistctl
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export BENCH_BIN=/host$TARGET/release/persistctl BENCH_SIZES=$SIZES
VM_ENV="BENCH_BIN BENCH_SIZES" "$HERE/../vm/run.sh" "$LINE" "bash /host$HERE/apply-noop-guest.sh"
