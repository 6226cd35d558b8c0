#!/usr/bin/env bash
# Every test, on a fresh Debian 12 machine (root): installs what the tests need, provisions the
# real-ZFS VMs (OpenZFS 2.3 and 2.1), then runs
#   1. cargo fmt --check, cargo clippy -D warnings (the core's clippy.toml forbids I/O), core deps
#   2. cargo test: unit tables, the CLI against a fake zfs/restic, Nix eval tests (reported as
#      ignored without NIXPKGS_LIB or ../shared/nixpkgs-lib), the real-ZFS tests ignored on the host
#   3. PostgreSQL PITR against real PostgreSQL 15, barman-cloud and an S3 server on loopback (the
#      scenarios and kill -9 trials with the fake zfs, the postgresql.service sandbox), then through
#      persistctl on real OpenZFS 2.3 in the VM
#   4. the real-ZFS suites inside one VM per OpenZFS line (2.3, then 2.1)
# Set NIXPKGS_LIB=<dir containing lib/> (nixpkgs' lib, e.g. nix-community/nixpkgs.lib) to run the
# module evaluation tests. ZFS_LINES="2.3" runs one line only.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=never
T0=$(date +%s)
step() { echo; echo "== [+$(( $(date +%s) - T0 ))s] $*"; }

step "host packages (nix-instantiate for the Nix tests)"
if ! command -v nix-instantiate >/dev/null; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends nix-bin >/dev/null
fi
export NIX_CONFIG=$'substituters =\nexperimental-features = nix-command flakes'

step "real-ZFS VMs (tests/vm/setup.sh; minutes on a fresh machine, seconds afterwards)"
ZFS_LINES=${ZFS_LINES:-2.3 2.1} tests/vm/setup.sh
# PostgreSQL and barman-cloud in the 2.3 root, for the PITR run on real ZFS (tests/pg/vm-pitr.sh).
ZFS_LINES=2.3 VM_EXTRAS=pg tests/vm/setup.sh

step "cargo fmt --check; cargo clippy -D warnings"
cargo fmt --check
cargo clippy --quiet --workspace --all-targets -- -D warnings
# The core may not even link anything that does I/O (its clippy.toml forbids the std calls).
if cargo tree -p persistctl-core -e normal --prefix none | grep -E '^(nix|duct|ureq|tempfile|walkdir|libc|tracing) '; then
    echo "persistctl-core must not depend on the crates above: it is the pure core"; exit 1
fi

step "cargo test (host)"
[ -n "${NIXPKGS_LIB:-}" ] || [ -f ../shared/nixpkgs-lib/lib/default.nix ] || echo "NOTE: NIXPKGS_LIB is not set and there is no ../shared/nixpkgs-lib: the module evaluation tests are reported as ignored"
cargo test --workspace --all-targets 2>&1 | tee /tmp/persistctl-host-tests.log

step "PostgreSQL PITR against real PostgreSQL 15, barman-cloud and moto on 127.0.0.1 (tests/pg/)"
tests/pg/setup.sh
cargo test --test pg_real -- --ignored 2>&1 | tee /tmp/persistctl-pg-tests.log

step "PostgreSQL PITR through persistctl on real OpenZFS 2.3 (tests/pg/vm-pitr.sh)"
cargo build --quiet --bin persistctl
PERSISTCTL=target/debug/persistctl ZFS_LINE=2.3 tests/pg/vm-pitr.sh 2>&1 | tee /tmp/persistctl-vm-pitr.log

step "real OpenZFS (one VM per line)"
suites=real_zfs
for s in preseed_real status_real safety_real hostile_real; do [ -f "tests/$s.rs" ] && suites+=" $s"; done
SUITES=$suites ZFS_LINES=${ZFS_LINES:-2.3 2.1} tests/vm/real-zfs-tests.sh 2>&1 | tee /tmp/persistctl-vm-tests.log

step "done"
python3 - /tmp/persistctl-host-tests.log /tmp/persistctl-pg-tests.log /tmp/persistctl-vm-tests.log <<'PY'
import re, sys
passed = failed = ignored = 0
for path in sys.argv[1:]:
    for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", open(path, errors="replace").read()):
        passed += int(m[1]); failed += int(m[2]); ignored += int(m[3])
print(f"all suites (host, PostgreSQL, VMs; what the host run ignores is the real-ZFS tests, run in the VMs, and pg_real, run after tests/pg/setup.sh): {ignored} ignored")
print(f"{passed} passed, {failed} failed")
PY
echo "PITR on real OpenZFS 2.3 (tests/pg/vm-pitr.sh): $(grep -c '^vm-pitr .* OK ' /tmp/persistctl-vm-pitr.log || true) checks OK, $(grep -c '^vm-pitr .* DIFFERENT ' /tmp/persistctl-vm-pitr.log || true) different"
