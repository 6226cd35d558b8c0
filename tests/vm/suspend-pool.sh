#!/usr/bin/env bash
# Make a pool's I/O hang (or fail) on demand, inside the test VM (tests/vm/run.sh), for tests that
# need a `zfs` call that blocks. The guest has no zinject (Debian ships it in zfs-test), so the vdev is a
# device-mapper device over a loop device over a sparse file, and dmsetup does the damage.
#
#   suspend-pool.sh make NAME IMG SIZE   sparse IMG, loop device, dm-linear /dev/mapper/NAME (printed);
#                                        then: zpool create -o failmode=wait POOL /dev/mapper/NAME
#   suspend-pool.sh freeze NAME          dmsetup suspend: I/O to the vdev queues. A `zfs create`/`zfs set`
#                                        (anything waiting for a txg sync) then blocks in D state in
#                                        txg_wait_synced and ignores SIGKILL; `zfs get`/`zfs list`/`zpool
#                                        list` still answer from memory. Same on OpenZFS 2.3 and 2.1.
#   suspend-pool.sh thaw NAME            dmsetup resume: the queued I/O completes and the blocked calls
#                                        finish -- and take effect, even those whose caller gave up.
#   suspend-pool.sh fail NAME            swap in an error table: the next write faults the vdev and, with
#                                        failmode=wait, the pool goes SUSPENDED (see safety_real.rs for
#                                        what each line then does with zfs calls).
#   suspend-pool.sh heal NAME POOL       the linear table back, then zpool clear POOL.
#   suspend-pool.sh remove NAME          after zpool destroy: dmsetup remove, losetup -d.
#
# There is no udev in the guest, hence --noudevsync and dmsetup mknodes.
set -euo pipefail
STATE=/run/suspend-pool
die() { echo "suspend-pool.sh: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: $0 make|freeze|thaw|fail|heal|remove NAME ..."
cmd=$1 name=$2
mkdir -p "$STATE"
case $cmd in
    make)
        [ $# -eq 4 ] || die "usage: $0 make NAME IMG SIZE"
        modprobe dm_mod
        modprobe loop
        truncate -s "$4" "$3"
        loop=$(losetup -f --show "$3")
        table="0 $(blockdev --getsz "$loop") linear $loop 0"
        dmsetup create --noudevsync "$name" --table "$table"
        dmsetup mknodes "$name"
        echo "$table" >"$STATE/$name.table"
        echo "$loop" >"$STATE/$name.loop"
        echo "/dev/mapper/$name"
        ;;
    freeze) dmsetup suspend --noudevsync "$name" ;;
    thaw) dmsetup resume --noudevsync "$name" ;;
    fail)
        sectors=$(awk '{print $2}' "$STATE/$name.table")
        dmsetup suspend --noudevsync "$name"
        dmsetup load "$name" --table "0 $sectors error"
        dmsetup resume --noudevsync "$name"
        ;;
    heal)
        [ $# -eq 3 ] || die "usage: $0 heal NAME POOL"
        dmsetup suspend --noudevsync "$name"
        dmsetup load "$name" --table "$(cat "$STATE/$name.table")"
        dmsetup resume --noudevsync "$name"
        zpool clear "$3"
        ;;
    remove)
        # A suspended device would make `remove` hang; resume first (a no-op on an active one).
        dmsetup resume --noudevsync "$name" 2>/dev/null || true
        dmsetup remove --noudevsync "$name"
        losetup -d "$(cat "$STATE/$name.loop")"
        rm -f "$STATE/$name.table" "$STATE/$name.loop"
        ;;
    *) die "unknown command $cmd" ;;
esac
