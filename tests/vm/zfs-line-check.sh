#!/usr/bin/env bash
# Self-test of the ZFS test VMs.
#
#   tests/vm/zfs-line-check.sh [LINE...]      (host; default: $ZFS_LINES or "2.3 2.1")
#
# Boots each line once through tests/vm/run.sh and runs this same script in
# the guest with --in-guest: file-vdev pool in /tmp, a dataset created with
# recordsize=16K, the recursive `zfs get` that persistctl parses, a user
# property, pool destroy, and a check that the loaded module is the expected
# OpenZFS line. Exit status 0 only if every line passed.
set -uo pipefail

if [ "${1:-}" = --in-guest ]; then
    expect=${2:?expected zfs line}
    set -e
    pool=pvmcheck
    vdev=/tmp/pvmcheck.vdev
    t0=$(date +%s.%N)
    echo "== zfs version"
    zfs version
    kmod=$(cat /sys/module/zfs/version)
    case $kmod in
        "$expect".*) ;;
        *) echo "FAIL: loaded zfs module is $kmod, expected $expect.x"; exit 1 ;;
    esac
    truncate -s 256M "$vdev"
    zpool create -f -o cachefile=none -O mountpoint=/"$pool" "$pool" "$vdev"
    zfs create -o recordsize=16K "$pool/data"
    zfs set persistctl:check=yes "$pool/data"
    out=$(zfs get -H -p -o name,property,value,source -r -t filesystem all "$pool")
    echo "== zfs get -H -p -o name,property,value,source -r -t filesystem all $pool: $(wc -l <<<"$out") lines, e.g."
    grep -E $'\t(recordsize|compression|mountpoint|persistctl:check)\t' <<<"$out"
    grep -qxF "$(printf '%s\trecordsize\t16384\tlocal' "$pool/data")" <<<"$out" ||
        { echo "FAIL: recordsize 16384 local not reported for $pool/data"; exit 1; }
    grep -qxF "$(printf '%s\trecordsize\t131072\tdefault' "$pool")" <<<"$out" ||
        { echo "FAIL: default recordsize not reported for $pool"; exit 1; }
    grep -qxF "$(printf '%s\tpersistctl:check\tyes\tlocal' "$pool/data")" <<<"$out" ||
        { echo "FAIL: user property not reported for $pool/data"; exit 1; }
    [ "$(zfs get -H -o value mounted "$pool/data")" = yes ] || { echo "FAIL: $pool/data not mounted"; exit 1; }
    echo data >"/$pool/data/file"
    zpool destroy "$pool"
    rm -f "$vdev"
    t1=$(date +%s.%N)
    echo "zfs-line-check: OK (zfs $kmod, kernel $(uname -r), $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s in the guest)"
    exit 0
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")
read -r -a lines <<<"${*:-${ZFS_LINES:-2.3 2.1}}"
failed=()
for line in "${lines[@]}"; do
    echo "=== zfs-line-check: line $line"
    start=$SECONDS
    "$HERE/run.sh" "$line" "bash $(printf %q "/host$SELF") --in-guest $line"
    rc=$?
    echo "=== zfs-line-check: line $line: exit $rc, $((SECONDS - start))s wall"
    [ "$rc" = 0 ] || failed+=("$line")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "zfs-line-check: FAILED lines: ${failed[*]}"
    exit 1
fi
echo "zfs-line-check: all lines passed (${lines[*]})"
