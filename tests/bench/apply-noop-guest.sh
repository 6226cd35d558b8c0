#!/usr/bin/env bash
# Guest half of apply-noop.sh: runs inside the real-ZFS VM.
set -euo pipefail
BIN=${BENCH_BIN:?}
REAL_ZFS=$(command -v zfs)
W=/tmp/bench
mkdir -p "$W/bin"
cat > "$W/bin/zfs" <<WRAP
#!/bin/sh
echo x >> $W/zfs-calls
exec $REAL_ZFS "\$@"
WRAP
chmod +x "$W/bin/zfs"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-6s %-14s %-12s %-12s %-7s %s\n' N zfs-processes apply-s bare-get-s ratio max-rss
for n in ${BENCH_SIZES:-10 100 500}; do
    pool=bench$n
    truncate -s 1G "$W/$pool.img"
    zpool create -f -o cachefile=none -O mountpoint=none "$pool" "$W/$pool.img"
    zfs create -o mountpoint=legacy "$pool/persist"
    mkdir -p "$W/mnt$n"
    mount -t zfs "$pool/persist" "$W/mnt$n"
    python3 - "$pool" "$W/mnt$n" "$n" > "$W/config$n.json" <<'PY'
import json, sys
pool, mount, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
services = {f"svc{i:03d}": {"recordsize": "16K", "compression": "lz4",
                            "properties": {"com.sun:auto-snapshot": "true"}, "mode": "0750"} for i in range(n)}
print(json.dumps({"version": 1, "datasets": {"parentDataset": f"{pool}/persist", "parentMount": mount,
                                             "services": services}}))
PY
    export PERSISTCTL_LOCK=$W/lock
    "$BIN" --config "$W/config$n.json" apply > /dev/null 2>&1
    "$BIN" --config "$W/config$n.json" plan > /dev/null 2>&1  # exit 0 = in sync (set -e)
    rm -f "$W/zfs-calls"
    PATH="$W/bin:$PATH" "$BIN" --config "$W/config$n.json" apply > /dev/null
    calls=$(wc -l < "$W/zfs-calls")
    apply_times=(); get_times=()
    for _ in 1 2 3 4 5; do
        t0=$(now); "$BIN" --config "$W/config$n.json" apply > /dev/null; t1=$(now)
        apply_times+=("$(python3 -c "print($t1 - $t0)")")
        t0=$(now); zfs get -H -p -o name,property,value,source -r -t filesystem all "$pool/persist" > /dev/null; t1=$(now)
        get_times+=("$(python3 -c "print($t1 - $t0)")")
    done
    a=$(printf '%s\n' "${apply_times[@]}" | median)
    g=$(printf '%s\n' "${get_times[@]}" | median)
    rss=$(RUST_LOG=debug "$BIN" --config "$W/config$n.json" apply 2>&1 >/dev/null | sed -n 's/.*max_rss_kib=\([0-9]*\).*/\1/p')
    printf '%-6s %-14s %-12.3f %-12.3f %-7.2f %s KiB\n' "$n" "$calls" "$a" "$g" "$(python3 -c "print($a / $g)")" "$rss"
    umount -R "$W/mnt$n"
    zpool destroy -f "$pool"
    rm -f "$W/$pool.img"
done
