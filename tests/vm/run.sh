#!/usr/bin/env bash
# Run one shell command as root inside a QEMU VM with real OpenZFS.
#
#   tests/vm/run.sh LINE 'shell command'        (LINE: 2.3 or 2.1)
#
# The VM (provisioned by tests/vm/setup.sh) boots the line's Debian kernel
# under TCG with the line's debootstrap root as / (read-only 9p, writes go to a
# tmpfs overlay and are discarded). Inside the guest:
#   /share  the host directory $SHARE, read-write; the command's working directory
#   /host   the host's whole /, read-only (host binaries run there unchanged,
#           e.g. /host/work/main/target/debug/persistctl)
#   /tmp    tmpfs
# The command runs under bash with `set -o pipefail`, stdin from /dev/null, and
# the guest's serial console (kernel messages, the command's output) goes to
# this script's stdout.
#
# Exit status: the command's exit status; 125 if the guest did not finish
# (timeout, kernel panic, QEMU error) or the line is not provisioned; 2 on
# usage errors. If zfs fails to load, the guest exits 1 before the command.
#
# Environment:
#   SHARE    host directory mounted at /share (default: a fresh temporary
#            directory, removed again afterwards)
#   VM_ENV   names of host environment variables to pass to the command,
#            e.g. VM_ENV="RUST_BACKTRACE PERSISTCTL_TEST_FILTER"
#   MEM      guest memory in MiB (default 3072)
#   SMP      guest CPUs (default: nproc)
#   TIMEOUT  seconds before the VM is killed (default 1800)
#   VM_UDEV  1 = start systemd-udevd in the guest if the root has it (zvol links)
#   PERSISTCTL_VM_DIR  as for setup.sh (default /var/cache/persistctl-vm)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_DIR=${PERSISTCTL_VM_DIR:-/var/cache/persistctl-vm}

msg() { printf 'run.sh: %s\n' "$*" >&2; }
usage() {
    msg "usage: $0 LINE 'shell command'   (LINE: 2.3 or 2.1)"
    exit 2
}
infra_fail() {
    msg "ERROR: $*"
    exit 125
}

[ $# -ge 2 ] || usage
LINE=$1
shift
CMD=$*
case $LINE in
    2.3 | 2.1) ;;
    *) usage ;;
esac

MEM=${MEM:-3072}
SMP=${SMP:-$(nproc)}
TIMEOUT=${TIMEOUT:-1800}
for v in MEM SMP TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { msg "$v must be a positive integer, got '${!v}'"; exit 2; }
done

DIR=$VM_DIR/zfs-$LINE
if [ ! -f "$DIR/.provisioned" ] || [ ! -f "$DIR/KVER" ] || [ ! -f "$DIR/initrd.img" ]; then
    infra_fail "ZFS line $LINE is not provisioned in $DIR; run: ZFS_LINES=$LINE $HERE/setup.sh"
fi
KVER=$(cat "$DIR/KVER")
KERNEL=$DIR/root/boot/vmlinuz-$KVER
[ -f "$KERNEL" ] || infra_fail "missing $KERNEL; re-run $HERE/setup.sh"
command -v qemu-system-x86_64 >/dev/null || infra_fail "qemu-system-x86_64 not found; run $HERE/setup.sh"

OWN_SHARE=0
if [ -n "${SHARE:-}" ]; then
    mkdir -p "$SHARE" || infra_fail "cannot create SHARE=$SHARE"
else
    SHARE=$(mktemp -d "${TMPDIR:-/tmp}/persistctl-vm-share.XXXXXX") || infra_fail "mktemp failed"
    OWN_SHARE=1
fi
SHARE=$(cd "$SHARE" && pwd -P)
for p in "$SHARE" "$DIR/root"; do
    # QEMU's -virtfs option list cannot carry commas in a path.
    case $p in *,*) infra_fail "path must not contain a comma: $p" ;; esac
done

CTL=$SHARE/.persistctl-vm
rm -rf "$CTL"
mkdir -p "$CTL" || infra_fail "cannot write to $SHARE"
cp "$HERE/guest-init.sh" "$CTL/init.sh"
chmod 755 "$CTL/init.sh"
[ "${VM_UDEV:-0}" = 1 ] && touch "$CTL/udev"

# The payload: requested environment (each value shell-quoted), then the
# command verbatim, so multi-line scripts and `exit N` work as expected.
{
    echo '#!/bin/bash'
    echo 'set -o pipefail'
    for name in ${VM_ENV:-}; do
        if [[ ! $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
            msg "VM_ENV: '$name' is not a valid variable name"
            exit 2
        fi
        if [[ -v $name ]]; then
            printf 'export %s=%q\n' "$name" "${!name}"
        else
            msg "VM_ENV: $name is not set on the host; not passed"
        fi
    done
    echo 'cd /share || exit 1'
    printf '%s\n' "$CMD"
} >"$CTL/payload.sh" || exit $?

QPID=""
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
    [ -n "$QPID" ] && kill -TERM "$QPID" 2>/dev/null
    if [ "$OWN_SHARE" = 1 ]; then
        rm -rf "$SHARE"
    else
        rm -rf "$CTL"
    fi
}
trap cleanup EXIT

APPEND="console=ttyS0 loglevel=3 quiet panic=-1 oops=panic mitigations=off spl.spl_panic_halt=1"
V9P=security_model=none,multidevs=remap
msg "booting zfs-$LINE (kernel $KVER), ${SMP} CPUs, ${MEM} MiB, timeout ${TIMEOUT}s, share $SHARE"
START=$SECONDS
timeout --kill-after=15 "$TIMEOUT" qemu-system-x86_64 \
    -name "persistctl-vm-zfs-$LINE" \
    -accel tcg,thread=multi -cpu max -smp "$SMP" -m "$MEM" \
    -display none -nodefaults -no-user-config -no-reboot \
    -serial stdio \
    -kernel "$KERNEL" -initrd "$DIR/initrd.img" -append "$APPEND" \
    -virtfs "local,path=$DIR/root,mount_tag=pvm-root,readonly=on,$V9P" \
    -virtfs "local,path=/,mount_tag=pvm-host,readonly=on,$V9P" \
    -virtfs "local,path=$SHARE,mount_tag=pvm-share,$V9P" \
    </dev/null &
QPID=$!
# Ctrl-C / TERM: stop the VM (timeout forwards the signal to QEMU) and report 125.
INTERRUPTED=0
trap 'INTERRUPTED=1; kill -TERM "$QPID" 2>/dev/null' INT TERM HUP
while :; do
    wait "$QPID"
    QRC=$?
    kill -0 "$QPID" 2>/dev/null || break
done
QPID=""
ELAPSED=$((SECONDS - START))

if [ -f "$CTL/rc" ]; then
    RC=$(cat "$CTL/rc")
    [[ $RC =~ ^[0-9]+$ ]] || infra_fail "guest wrote an invalid exit status '$RC'"
    msg "zfs-$LINE: guest exit status $RC after ${ELAPSED}s"
    exit "$RC"
fi
if [ "$INTERRUPTED" = 1 ]; then
    infra_fail "zfs-$LINE: interrupted after ${ELAPSED}s, VM stopped"
fi
if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
    infra_fail "zfs-$LINE: guest did not finish: TIMEOUT=${TIMEOUT}s exceeded, VM killed"
fi
infra_fail "zfs-$LINE: guest did not finish: no exit status after ${ELAPSED}s (QEMU exit $QRC: kernel panic, crash, or QEMU error; see the console output above)"
