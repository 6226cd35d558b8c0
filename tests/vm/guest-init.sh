#!/bin/bash
# PID 1 of the persistctl test VM, started by the initramfs (tests/vm/initramfs-init)
# once / is the overlay root. tests/vm/run.sh copies this file to
# $SHARE/.persistctl-vm/init.sh for every boot.
#
# It finishes the minimal system setup, loads ZFS, runs the payload written by
# run.sh and stores its exit status in /share/.persistctl-vm/rc, then powers
# the VM off. PID 1 must never return, so every path ends in finish().
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
CTL=/share/.persistctl-vm
HALT_FIFO=/run/persistctl-vm-halt
mkfifo "$HALT_FIFO"

uptime_s() { cut -d' ' -f1 /proc/uptime; }
say() { echo "[vm $(uptime_s)s] $*"; }

finish() {
    echo "$1" >"$CTL/rc.tmp" && mv "$CTL/rc.tmp" "$CTL/rc"
    sync
    say "exit status $1, powering off"
    echo o >/proc/sysrq-trigger
    # The power-off runs asynchronously; wait with a shell builtin, because
    # executing anything from the 9p root now can fail with EIO.
    read -r -t 60 <>"$HALT_FIFO"
}

# Plain "\n" on the serial console instead of "\r\n", so output captured on
# the host looks like ordinary program output.
stty -onlcr 2>/dev/null

mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mkdir -p /dev/pts /dev/shm /run/lock
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
# devtmpfs lacks these links; bash process substitution needs /dev/fd.
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
hostname persistctl-vm
busybox ip link set lo up 2>/dev/null || true

say "kernel $(uname -r), $(nproc) CPUs, $(($(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo) / 1024)) MiB"
if ! modprobe zfs; then
    say "FATAL: modprobe zfs failed"
    finish 1
fi
for _ in $(seq 100); do
    [ -c /dev/zfs ] && break
    sleep 0.1
done
if [ ! -c /dev/zfs ]; then
    say "FATAL: zfs module loaded but /dev/zfs did not appear"
    finish 1
fi
say "zfs $(cat /sys/module/zfs/version) loaded"
zfs version

if [ -f "$CTL/udev" ] && [ -x /lib/systemd/systemd-udevd ]; then
    # Optional (VM_UDEV=1): needed for /dev/zvol/* links.
    /lib/systemd/systemd-udevd --daemon && udevadm trigger && udevadm settle --timeout=30
    say "udevd started"
fi

say "running payload"
bash "$CTL/payload.sh" </dev/null
finish $?
