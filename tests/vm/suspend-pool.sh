#!/usr/bin/env bash
# Make a pool's I/O hang on demand, inside the test VM (tests/vm/run.sh), for tests that need a `zfs`
# call that blocks. The guest roots have no zinject (Debian ships it in zfs-test) and the 2.1 root has no
# dmsetup, but both have mkfs.ext4, fsfreeze and the loop module: the pool's vdev is a file on an ext4 on a
# loop device, and freezing that ext4 makes every write to the vdev block.
#
#   suspend-pool.sh make NAME SIZE   ext4 on a loop device in /tmp/suspend-pool-NAME, a sparse vdev file of
#                                    SIZE on it; prints the vdev's path (then: zpool create ... PATH)
#   suspend-pool.sh freeze NAME      fsfreeze -f: a `zfs create`/`zfs set` (anything that waits for a txg
#                                    sync) then blocks in D state (txg_wait_synced) and ignores SIGKILL;
#                                    `zfs get`, `zfs list`, `zpool list` still answer from memory.
#                                    Measured the same on OpenZFS 2.3 and 2.1.
#   suspend-pool.sh thaw NAME        fsfreeze -u (a no-op when not frozen): the blocked calls finish -- and
#                                    take effect, even those whose caller gave up on them.
#   suspend-pool.sh remove NAME      after zpool destroy: unmount the ext4, detach the loop device.
set -euo pipefail
die() { echo "suspend-pool.sh: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: $0 make NAME SIZE | freeze|thaw|remove NAME"
cmd=$1 name=$2
dir=/tmp/suspend-pool-$name
case $cmd in
    make)
        [ $# -eq 3 ] || die "usage: $0 make NAME SIZE"
        modprobe loop
        mkdir -p "$dir/fs"
        truncate -s 1G "$dir/ext4.img"
        loop=$(losetup -f --show "$dir/ext4.img")
        echo "$loop" >"$dir/loop"
        mkfs.ext4 -q -F "$loop"
        mount -t ext4 "$loop" "$dir/fs"
        truncate -s "$3" "$dir/fs/vdev.img"
        echo "$dir/fs/vdev.img"
        ;;
    freeze) fsfreeze -f "$dir/fs" ;;
    thaw) fsfreeze -u "$dir/fs" 2>/dev/null || true ;;
    remove)
        fsfreeze -u "$dir/fs" 2>/dev/null || true
        umount "$dir/fs"
        losetup -d "$(cat "$dir/loop")"
        rm -rf "$dir"
        ;;
    *) die "unknown command $cmd" ;;
esac
