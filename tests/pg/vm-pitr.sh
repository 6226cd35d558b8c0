#!/usr/bin/env bash
# persistctl's barman source on real OpenZFS, inside the test VM: `persistctl apply` makes the
# postgres-data and postgres-wal datasets (the preset's properties, owner postgres), `persistctl
# preseed` restores a real barman-cloud backup into them (moto on the guest's 127.0.0.1) to the end of
# the archive; then the data dataset is destroyed, and the rerun restores it to time T, setting the
# WAL dataset's old pg_wal aside. Each restored cluster is started and its rows counted.
#
#   ZFS_LINES=2.3 VM_EXTRAS=pg tests/vm/setup.sh    # once: PostgreSQL + the venv in the guest root
#   PERSISTCTL=target/debug/persistctl tests/pg/vm-pitr.sh   # boots the 2.3 VM (ZFS_LINE=2.1 ...)
#
# Exit status: 0 when every check holds; the VM's 125 when the guest did not finish.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${1:-}" != --guest ]; then
    line=${ZFS_LINE:-2.3}
    vm_dir=${PERSISTCTL_VM_DIR:-/var/cache/persistctl-vm}
    [ -f "$vm_dir/zfs-$line/.extras-pg" ] ||
        { echo "vm-pitr.sh: zfs-$line has no PostgreSQL; run: ZFS_LINES=$line VM_EXTRAS=pg $HERE/../vm/setup.sh" >&2; exit 1; }
    bin=$(readlink -f "${PERSISTCTL:?set PERSISTCTL to the persistctl binary}")
    exec env TIMEOUT="${TIMEOUT:-2400}" "$HERE/../vm/run.sh" "$line" "bash /host$HERE/vm-pitr.sh --guest /host$bin"
fi

# ---- guest ---------------------------------------------------------------------------------------
PERSISTCTL=$2
PGT_WORK=/tmp/pgvm
mkdir -p "$PGT_WORK"
cd "$PGT_WORK"
# shellcheck source=tests/pg/lib.sh
. "$HERE/lib.sh"
export S3_START_TIMEOUT=300
BC_TIMEOUT=900
chown "$PGT_USER:" "$PGT_WORK"
FAILED=0
check() { # id what expected observed
    local verdict=OK
    [ "$3" = "$4" ] || { verdict=DIFFERENT; FAILED=1; }
    printf 'vm-pitr %-8s %-9s %s: expected [%s], observed [%s]\n' "$1" "$verdict" "$2" "$3" "$4"
}
cleanup() {
    set +e
    for n in src r1 r2; do [ -e "$PGT_WORK/$n.port" ] && pg_stop "$n" immediate; done
    bash "$HERE/s3.sh" stop "$PGT_WORK/s3" >/dev/null 2>&1
}
trap cleanup EXIT
echo "vm-pitr: $(zfs version | head -n1), $("$PG_BIN/postgres" --version)"

URL=$(bash "$HERE/s3.sh" start "$PGT_WORK/s3")
ENVF=$PGT_WORK/s3/env
chmod 644 "$ENVF"
pg_source_a_t_b src "$ENVF" "$URL" src 600
check base "base backup" 0 "$BACKUP_RC"

truncate -s 2G /tmp/pitrpool.img
zpool create -f -o cachefile=none -O mountpoint=none tank /tmp/pitrpool.img
zfs create -o mountpoint=/pvm tank/persist
write_config() { # [targetTime]
    python3 - "$URL" "$ENVF" "$PG_BIN" "${1:-}" >/etc/persistctl-pitr.json <<'PY'
import json, sys
url, envf, pgbin, target = sys.argv[1:]
own = {"owner": "postgres", "group": "postgres", "mode": "0700"}
data = dict(own, recordsize="8K", compression="lz4", properties={"logbias": "latency"},
            preseed={"enable": True, "sources": ["barman"], "dataMarkers": ["PG_VERSION"], "timeout": 3000})
wal = dict(own, recordsize="128K", compression="off", properties={"logbias": "throughput"})
pg = {"archive": {"destination": "s3://pitr", "serverName": "src", "endpointUrl": url, "environmentFile": envf},
      "binDir": pgbin, "walService": "postgres-wal", "walTimeout": 600}
if target:
    pg["targetTime"] = target
print(json.dumps({"version": 1,
                  "datasets": {"parentDataset": "tank/persist", "parentMount": "/pvm",
                               "services": {"postgres-data": data, "postgres-wal": wal}},
                  "postgresql": {"postgres-data": pg}}))
PY
}
pc() {
    PERSISTCTL_BARMAN_DIR="$VENV/bin" PERSISTCTL_PRESEED_STATUS=/tmp/pgvm/preseed.json \
        timeout --kill-after=30 3000 "$PERSISTCTL" --config /etc/persistctl-pitr.json "$@"
}
counted() { # NAME: "A/B" of the restored cluster at /pvm/postgres-data, started like postgresql.service would
    local name=$1
    ln -sfn /pvm/postgres-data "$PGT_WORK/$name"
    rm -f "$PGT_WORK/$name.port"
    echo "archive_mode = off" | pg_adopt "$name"
    pg_start "$name" "$ENVF" 600
    echo "$(pg_q "$name" "select count(*) from a" 2>/dev/null || echo none)/$(pg_q "$name" "select count(*) from b" 2>/dev/null || echo none)"
    pg_stop "$name"
}

write_config
pc apply
check props "postgres-data properties" "8K lz4 latency" "$(zfs get -H -o value recordsize,compression,logbias tank/persist/postgres-data | xargs)"
set +e; t0=$SECONDS; pc preseed postgres-data; RC=$?; set -e
check latest "preseed to the end of the archive ($((SECONDS - t0)) s)" 0 "$RC"
check owner "PGDATA's owner and mode" "postgres 700" "$(stat -c '%U %a' /pvm/postgres-data)"
check walink "pg_wal on the WAL dataset" /pvm/postgres-wal/pg_wal "$(readlink /pvm/postgres-data/pg_wal)"
check walfs "pg_wal's filesystem" tank/persist/postgres-wal "$(df --output=source /pvm/postgres-wal/pg_wal/ | tail -n1)"
check prov "provenance" barman "$(zfs get -H -o value persistctl:restored-from tank/persist/postgres-data)"
check rows1 "rows after the restore to the end" 1000/1000 "$(counted r1)"

# The data is lost: the dataset is destroyed; the rerun restores to T.
zfs destroy -r tank/persist/postgres-data
write_config "$T"
set +e; t0=$SECONDS; pc preseed postgres-data; RC=$?; set -e
check totime "preseed to T into a new dataset ($((SECONDS - t0)) s)" 0 "$RC"
check aside "the WAL dataset's old pg_wal set aside, not deleted" 1 "$(find /pvm/postgres-wal -maxdepth 1 -name 'pg_wal.persistctl-aside-*' | wc -l)"
check rows2 "rows after the restore to T" 1000/none "$(counted r2)"
zpool destroy tank
echo "vm-pitr: $([ "$FAILED" = 0 ] && echo OK || echo FAILED)"
exit "$FAILED"
