#!/usr/bin/env bash
# Provision the real-OpenZFS test VMs used by tests/vm/run.sh.
#
# Runs as root on a plain Debian 12 (bookworm, amd64) machine and installs
# everything it needs itself. For every OpenZFS line it builds a guest root
# filesystem with debootstrap, installs a Debian kernel plus zfs-dkms into it
# (DKMS compiles zfs.ko for that kernel inside the root) and builds a tiny
# initramfs that boots the root over virtio-9p. Nothing ZFS-related is
# installed on the host itself: the host kernel need not support modules.
#
#   zfs-2.3  kernel from bookworm-backports + OpenZFS 2.3.x (bookworm-backports contrib)
#   zfs-2.1  kernel 6.1 from bookworm       + OpenZFS 2.1.x (bookworm contrib)
#
# Environment:
#   ZFS_LINES           lines to provision, default "2.3 2.1"
#   PERSISTCTL_VM_DIR   where roots, initramfs images and logs go,
#                       default /var/cache/persistctl-vm
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR   archive URLs (deb.debian.org by default)
#   VM_EXTRAS           optional additions to the provisioned roots, space-separated:
#                         pg  PostgreSQL 15 and the barman-cloud + moto venv of tests/pg/setup.sh
#                             (/opt/persistctl-test/venv in the guest), for the PITR tests
#                       e.g. ZFS_LINES=2.3 VM_EXTRAS=pg tests/vm/setup.sh. Extras go on top of a
#                       provisioned root and have their own marker (zfs-LINE/.extras-NAME): a run
#                       without VM_EXTRAS neither installs nor re-checks them, so it is as fast
#                       as before; they stay in the root until the root is rebuilt.
#
# Idempotent: a line whose marker matches the current package list and script
# version is skipped, so a re-run on a provisioned machine takes seconds.
# A changed list re-runs apt-get inside the existing root (no new debootstrap).
set -Eeuo pipefail

# Bump when the provisioning steps or the initramfs change in a way that
# requires existing roots to be redone.
SETUP_VERSION=2

# Packages installed (without recommends) into every guest root, on top of the
# kernel, its headers and zfs-dkms. Extend this list when tests need more tools
# in the guest; the next setup.sh run installs the additions.
GUEST_PACKAGES="bash coreutils util-linux procps kmod zfsutils-linux busybox-static restic sanoid python3 sqlite3"

# Host tools. qemu-system-x86 is handled separately (see install_host_tools).
HOST_PACKAGES="debootstrap debian-archive-keyring cpio gzip xz-utils zstd kmod"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_DIR=${PERSISTCTL_VM_DIR:-/var/cache/persistctl-vm}
ZFS_LINES=${ZFS_LINES:-"2.3 2.1"}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
INITRAMFS_INIT=$HERE/initramfs-init
# Kernel modules the initramfs needs to reach the 9p root (plus their dependencies).
INITRAMFS_MODULES="virtio_pci 9pnet_virtio 9p overlay"
HOST_SOURCES=/etc/apt/sources.list.d/persistctl-vm.sources
VM_EXTRAS=${VM_EXTRAS:-}
PG_SETUP=$HERE/../pg/setup.sh
APT=(apt-get -o DPkg::Lock::Timeout=600 -o APT::Install-Recommends=false -y)

export DEBIAN_FRONTEND=noninteractive LC_ALL=C

T0=$SECONDS
step() { printf '[setup %s +%4ds] %s\n' "$(date +%H:%M:%S)" $((SECONDS - T0)) "$*"; }
die() { printf 'setup.sh: ERROR: %s\n' "$*" >&2; exit 1; }
on_err() { printf 'setup.sh: FAILED (exit %s) at line %s: %s\n' "$1" "$2" "$3" >&2; }
trap 'on_err "$?" "$LINENO" "$BASH_COMMAND"' ERR

# --------------------------------------------------------------------------
# Mount handling for the chroots. Everything mounted below a root is
# unmounted again on exit, whatever the exit path.
ACTIVE_ROOT=""

unmount_below() {
    # Unmount every mount point at or below $1, deepest first.
    local dir m
    dir=$(readlink -m "$1")
    awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts |
        sort -r | while read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" || echo "setup.sh: warning: could not unmount $m" >&2
        done
}

cleanup() {
    if [ -n "$ACTIVE_ROOT" ]; then
        unmount_below "$ACTIVE_ROOT"
        ACTIVE_ROOT=""
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mount_chroot_fs() {
    local root=$1
    ACTIVE_ROOT=$root
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --bind /dev "$root/dev"
    mount --bind /dev/pts "$root/dev/pts"
}

# Run a command inside a root with a clean environment. Leading NAME=VALUE
# arguments become environment variables (env(1) semantics).
in_root() {
    local root=$1
    shift
    nice -n 10 chroot "$root" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"
}

# logged NAME CMD...: run CMD with its output in $LOG_DIR/NAME.log; on failure
# show the end of the log and stop.
logged() {
    local log=$LOG_DIR/$1.log
    shift
    if ! "$@" >"$log" 2>&1; then
        {
            echo "---- last 50 lines of $log ----"
            tail -n 50 "$log"
            echo "---- end of $log ----"
        } >&2
        die "step failed: $* (full log: $log)"
    fi
}

pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

# --------------------------------------------------------------------------
install_host_tools() {
    local missing=() p plain=()
    for p in $HOST_PACKAGES; do pkg_installed "$p" || missing+=("$p"); done
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    [ ${#missing[@]} -eq 0 ] && { step "host tools present"; return 0; }

    # QEMU comes from bookworm-backports: Debian 12 images may already carry
    # qemu-utils 10.x from backports, which Breaks bookworm's qemu-system-common
    # 7.2, so installing bookworm's qemu-system-x86 would fail.
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        step "adding bookworm-backports to the host's apt sources ($HOST_SOURCES)"
        cat >"$HOST_SOURCES" <<EOF
# Added by persistctl tests/vm/setup.sh (QEMU for the ZFS test VMs).
Types: deb
URIs: $MIRROR
Suites: $SUITE-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    step "host: apt-get update"
    logged host-apt-update "${APT[@]}" update
    for p in "${missing[@]}"; do [ "$p" = qemu-system-x86 ] || plain+=("$p"); done
    if [ ${#plain[@]} -gt 0 ]; then
        step "host: installing ${plain[*]}"
        logged host-apt-install "${APT[@]}" install "${plain[@]}"
    fi
    if ! command -v qemu-system-x86_64 >/dev/null; then
        step "host: installing qemu-system-x86 from $SUITE-backports"
        logged host-apt-qemu "${APT[@]}" install -t "$SUITE-backports" qemu-system-x86
    fi
    step "host: $(qemu-system-x86_64 --version | head -n1)"
}

# --------------------------------------------------------------------------
# Per-line settings: LINE_RELEASE is the apt target release for the kernel
# and zfs packages ("" = the default, i.e. bookworm + security updates).
line_settings() {
    case $1 in
        2.3) LINE_RELEASE=$SUITE-backports ;;
        2.1) LINE_RELEASE="" ;;
        *) die "unknown ZFS line '$1' (known lines: 2.3 2.1)" ;;
    esac
}

provision_hash() {
    {
        echo "setup-version=$SETUP_VERSION"
        echo "line=$1"
        echo "guest-packages=$GUEST_PACKAGES"
        echo "initramfs-modules=$INITRAMFS_MODULES"
        sha256sum <"$INITRAMFS_INIT"
    } | sha256sum | cut -d' ' -f1
}

write_root_apt_config() {
    local root=$1 line=$2
    {
        echo "deb $MIRROR $SUITE main contrib"
        echo "deb $MIRROR $SUITE-updates main contrib"
        echo "deb $SECURITY_MIRROR $SUITE-security main contrib"
        if [ "$line" = 2.3 ]; then
            echo "deb $MIRROR $SUITE-backports main contrib"
        fi
    } >"$root/etc/apt/sources.list"
    if [ "$line" = 2.3 ]; then
        # Keep every OpenZFS package on the backports version, also for
        # packages added to GUEST_PACKAGES later (e.g. zfs-zed).
        cat >"$root/etc/apt/preferences.d/persistctl-zfs" <<EOF
Package: zfs-* zfsutils-linux libzfs* libzpool* libnvpair* libuutil* libpam-zfs python3-pyzfs
Pin: release n=$SUITE-backports
Pin-Priority: 990
EOF
    fi
    # No daemon may start inside the chroot (nor later in the guest via invoke-rc.d).
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    echo persistctl-vm >"$root/etc/hostname"
}

build_initramfs() {
    local root=$1 kver=$2 out=$3 work m ko name
    work=$(mktemp -d)
    mkdir -p "$work"/{bin,dev,proc,sys,lower,upper,newroot,modules}
    cp "$root/bin/busybox" "$work/bin/busybox"
    cp "$INITRAMFS_INIT" "$work/init"
    chmod 755 "$work/init" "$work/bin/busybox"
    for m in $INITRAMFS_MODULES; do
        modprobe -d "$root" -S "$kver" --show-depends "$m" ||
            { rm -rf "$work"; die "module $m not found for kernel $kver in $root"; }
    done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$work/modules.list"
    : >"$work/modules.order"
    while read -r ko; do
        case $ko in
            "$root"/*) ;;
            *) ko=$root$ko ;;
        esac
        name=$(basename "$ko")
        case $name in
            *.ko) cp "$ko" "$work/modules/$name" ;;
            *.ko.xz) name=${name%.xz}; xz -dc "$ko" >"$work/modules/$name" ;;
            *.ko.zst) name=${name%.zst}; zstd -qdc "$ko" >"$work/modules/$name" ;;
            *.ko.gz) name=${name%.gz}; gzip -dc "$ko" >"$work/modules/$name" ;;
            *) rm -rf "$work"; die "unexpected module file $ko" ;;
        esac
        echo "${name%.ko}" >>"$work/modules.order"
    done <"$work/modules.list"
    rm -f "$work/modules.list"
    (cd "$work" && find . -print | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -6) >"$out.tmp"
    mv "$out.tmp" "$out"
    step "initramfs $out: $(wc -l <"$work/modules.order") modules, $(du -h "$out" | cut -f1)"
    rm -rf "$work"
}

provision_line() {
    local line=$1 dir root hash t kver zfsver krel=()
    line_settings "$line"
    dir=$VM_DIR/zfs-$line
    root=$dir/root
    hash=$(provision_hash "$line")
    if [ -f "$dir/.provisioned" ] && [ "$(head -n1 "$dir/.provisioned")" = "$hash" ] &&
        [ -f "$dir/initrd.img" ] && [ -f "$dir/KVER" ] &&
        [ -f "$root/boot/vmlinuz-$(cat "$dir/KVER")" ]; then
        step "zfs-$line: already provisioned ($(sed -n 2p "$dir/.provisioned"))"
        return 0
    fi
    t=$SECONDS
    mkdir -p "$dir"
    rm -f "$dir/.provisioned"
    # Left-over mounts from an interrupted run must go before anything else.
    unmount_below "$root"

    if [ ! -f "$dir/.debootstrap-done" ]; then
        if [ -e "$root" ]; then
            step "zfs-$line: removing incomplete root $root"
            rm -rf --one-file-system "$root"
        fi
        step "zfs-$line: debootstrap --variant=minbase $SUITE"
        logged "zfs-$line-debootstrap" nice -n 10 debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR"
        touch "$dir/.debootstrap-done"
    else
        step "zfs-$line: reusing debootstrapped root $root"
    fi

    write_root_apt_config "$root" "$line"
    mount_chroot_fs "$root"

    step "zfs-$line: apt-get update"
    logged "zfs-$line-apt-update" in_root "$root" "${APT[@]}" update
    [ -n "$LINE_RELEASE" ] && krel=(-t "$LINE_RELEASE")

    # zfs-dkms goes in before the kernel headers so that the headers' DKMS
    # hook compiles this version of zfs.ko (and not an older one).
    step "zfs-$line: installing zfs-dkms + zfsutils-linux ${LINE_RELEASE:-(bookworm)}"
    logged "zfs-$line-zfs" in_root "$root" "${APT[@]}" install "${krel[@]}" zfs-dkms zfsutils-linux
    # shellcheck disable=SC2016 # ${Version} is a dpkg-query format field
    zfsver=$(in_root "$root" dpkg-query -W -f='${Version}' zfs-dkms)
    case $zfsver in
        "$line".*) ;;
        *) die "zfs-$line: expected zfs-dkms $line.x, got '$zfsver'" ;;
    esac

    kver=$(in_root "$root" apt-cache depends "${krel[@]}" linux-image-amd64 |
        sed -n 's/^ *Depends: linux-image-\([^ ]*\)$/\1/p' | head -n1)
    [ -n "$kver" ] || die "zfs-$line: could not resolve the kernel version from linux-image-amd64"
    step "zfs-$line: installing kernel $kver + headers (DKMS builds zfs $zfsver; the slow part)"
    logged "zfs-$line-kernel" in_root "$root" INITRD=No "${APT[@]}" install "${krel[@]}" \
        "linux-image-$kver" "linux-headers-$kver"
    if [ -z "$(find "$root/lib/modules/$kver" -name 'zfs.ko*' -print -quit)" ]; then
        step "zfs-$line: zfs.ko missing after the kernel install, running dkms autoinstall"
        logged "zfs-$line-dkms" in_root "$root" dkms autoinstall -k "$kver"
        [ -n "$(find "$root/lib/modules/$kver" -name 'zfs.ko*' -print -quit)" ] ||
            die "zfs-$line: DKMS did not produce zfs.ko for $kver (see $LOG_DIR/zfs-$line-*.log)"
    fi

    # Kernels that compress their modules (6.12) get xz-compressed DKMS modules
    # too. Decompressing the 11 MB zfs.ko under TCG costs seconds on every boot,
    # so store them uncompressed (depmod below updates modules.dep).
    find "$root/lib/modules/$kver/updates" -name '*.ko.xz' -print0 |
        while IFS= read -r -d '' ko; do
            xz -dc "$ko" >"${ko%.xz}.tmp" && mv "${ko%.xz}.tmp" "${ko%.xz}" && rm -f "$ko"
        done

    step "zfs-$line: installing guest packages: $GUEST_PACKAGES"
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    logged "zfs-$line-packages" in_root "$root" "${APT[@]}" install $GUEST_PACKAGES
    logged "zfs-$line-depmod" in_root "$root" depmod -a "$kver"
    in_root "$root" apt-get clean
    cleanup

    step "zfs-$line: building initramfs"
    build_initramfs "$root" "$kver" "$dir/initrd.img"
    echo "$kver" >"$dir/KVER"
    printf '%s\nzfs %s, kernel %s, provisioned %s\n' "$hash" "$zfsver" "$kver" "$(date -u +%FT%TZ)" \
        >"$dir/.provisioned.tmp"
    mv "$dir/.provisioned.tmp" "$dir/.provisioned"
    step "zfs-$line: done in $((SECONDS - t))s (zfs $zfsver, kernel $kver, root $(du -sh --one-file-system "$root" | cut -f1))"
}

# --------------------------------------------------------------------------
# Extras (VM_EXTRAS) on top of a provisioned root. The marker names the root it was made for
# (its .provisioned) and the inputs of the extra, so a rebuilt root or changed inputs redo it.
extras_hash() {
    local line=$1 extra=$2
    {
        echo "extra=$extra"
        cat "$VM_DIR/zfs-$line/.provisioned"
        case $extra in
            pg) sha256sum <"$PG_SETUP"; sha256sum <"$(dirname "$PG_SETUP")/requirements.txt" ;;
        esac
    } | sha256sum | cut -d' ' -f1
}

provision_extras() {
    local line=$1 dir root extra hash t
    dir=$VM_DIR/zfs-$line
    root=$dir/root
    for extra in $VM_EXTRAS; do
        hash=$(extras_hash "$line" "$extra")
        if [ -f "$dir/.extras-$extra" ] && [ "$(head -n1 "$dir/.extras-$extra")" = "$hash" ]; then
            step "zfs-$line: extra '$extra' already installed ($(sed -n 2p "$dir/.extras-$extra"))"
            continue
        fi
        t=$SECONDS
        rm -f "$dir/.extras-$extra"
        unmount_below "$root"
        # Same sources as the base provisioning (the root's lists may be stale: refreshed by
        # the extra's own apt-get update when it installs anything).
        write_root_apt_config "$root" "$line"
        mount_chroot_fs "$root"
        case $extra in
            pg)
                step "zfs-$line: extra 'pg': PostgreSQL 15 + barman-cloud/moto venv (tests/pg/setup.sh in the root)"
                logged "zfs-$line-extra-pg" nice -n 10 env PG_SETUP_ROOT="$root" bash "$PG_SETUP"
                ;;
        esac
        in_root "$root" apt-get clean
        cleanup
        printf '%s\nadded in %ss on %s\n' "$hash" $((SECONDS - t)) "$(date -u +%FT%TZ)" >"$dir/.extras-$extra.tmp"
        mv "$dir/.extras-$extra.tmp" "$dir/.extras-$extra"
        step "zfs-$line: extra '$extra' added in $((SECONDS - t))s (root now $(du -sh --one-file-system "$root" | cut -f1))"
    done
}

# --------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root"
[ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] || die "only amd64 hosts are supported"
grep -q '^VERSION_CODENAME=bookworm' /etc/os-release || echo "setup.sh: warning: host is not Debian 12 (bookworm); continuing" >&2
[ -f "$INITRAMFS_INIT" ] || die "missing $INITRAMFS_INIT"
for line in $ZFS_LINES; do line_settings "$line"; done
for extra in $VM_EXTRAS; do
    case $extra in
        pg) [ -f "$PG_SETUP" ] || die "VM_EXTRAS=pg needs $PG_SETUP" ;;
        *) die "unknown VM_EXTRAS entry '$extra' (known: pg)" ;;
    esac
done

mkdir -p "$VM_DIR"
LOG_DIR=$VM_DIR/logs
mkdir -p "$LOG_DIR"
# One setup.sh per VM directory at a time (e.g. CI and a developer).
exec 9>"$VM_DIR/.setup.lock"
if ! flock -n 9; then
    step "waiting for another setup.sh (lock $VM_DIR/.setup.lock)"
    flock -w 3600 9 || die "timed out waiting for $VM_DIR/.setup.lock"
fi

step "persistctl VM setup v$SETUP_VERSION: lines '$ZFS_LINES'${VM_EXTRAS:+, extras: $VM_EXTRAS} in $VM_DIR"
install_host_tools
# One line after the other: each DKMS build already keeps both cores busy.
for line in $ZFS_LINES; do
    provision_line "$line"
    provision_extras "$line"
done
step "all done"
