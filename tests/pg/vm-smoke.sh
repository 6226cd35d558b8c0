#!/usr/bin/env bash
# PostgreSQL PITR on real OpenZFS, once, inside the test VM: PGDATA on a ZFS dataset (the
# postgresql preset's properties), WAL archived to moto on the guest's 127.0.0.1, a base backup,
# rows A, time T, rows B; then the dataset is destroyed and made again empty, restored with
# barman-cloud-restore and recovered to T (A present, B absent), and a second dataset to the end
# of the archive (A and B). Prints how long each step takes under TCG.
#
#   ZFS_LINES=2.3 VM_EXTRAS=pg tests/vm/setup.sh    # once: PostgreSQL + the venv in the guest root
#   tests/pg/vm-smoke.sh                            # boots the 2.3 VM (ZFS_LINE=2.1 for the other)
#
# Inside the guest it runs itself with --guest. Exit status: 0 when both restores hold the
# expected rows; the VM's 125 when the guest did not finish.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${1:-}" != --guest ]; then
    line=${ZFS_LINE:-2.3}
    vm_dir=${PERSISTCTL_VM_DIR:-/var/cache/persistctl-vm}
    [ -f "$vm_dir/zfs-$line/.extras-pg" ] ||
        { echo "vm-smoke.sh: zfs-$line has no PostgreSQL; run: ZFS_LINES=$line VM_EXTRAS=pg $HERE/../vm/setup.sh" >&2; exit 1; }
    # The guest sees the host's / at /host.
    exec env TIMEOUT="${TIMEOUT:-2400}" "$HERE/../vm/run.sh" "$line" "bash /host$HERE/vm-smoke.sh --guest"
fi

# ---- guest ---------------------------------------------------------------------------------------
PGT_WORK=/tmp/pgvm
mkdir -p "$PGT_WORK"
cd "$PGT_WORK" # run.sh starts in /share, where the postgres user may not go
# shellcheck source=tests/pg/lib.sh
. "$HERE/lib.sh"
export S3_START_TIMEOUT=300
BC_TIMEOUT=900
S3SH=$HERE/s3.sh
chown "$PGT_USER:" "$PGT_WORK"
T0=$(pgt_now)
TIMES=()
lap() { # NAME START: record and print the seconds since START
    local d
    d=$(pgt_since "$2")
    TIMES+=("$(printf '%8s  %s' "$d" "$1")")
    printf '[vm-smoke +%6ss] %s: %s s\n' "$(pgt_since "$T0")" "$1" "$d"
}
fail() { echo "vm-smoke: FAILED: $*" >&2; tail -n 30 "$PGT_WORK"/*.log >&2 2>/dev/null || true; exit 1; }
cleanup() {
    set +e
    for n in primary r_t r_latest; do [ -e "$PGT_WORK/$n.port" ] && pg_stop "$n" immediate; done
    "$S3SH" stop "$PGT_WORK/s3" >/dev/null 2>&1
}
trap cleanup EXIT

echo "vm-smoke: $(zfs version | head -n1), $("$PG_BIN/postgres" --version), $("$VENV/bin/barman-cloud-backup" --version 2>&1)"

# What one barman-cloud process costs here: PostgreSQL starts one per WAL segment.
t=$(pgt_now)
"$VENV/bin/python" -c 'import boto3' && lap "python: import boto3" "$t"
t=$(pgt_now)
"$VENV/bin/barman-cloud-wal-restore" --version >/dev/null && lap "barman-cloud-wal-restore --version" "$t"

t=$(pgt_now)
truncate -s 2G /tmp/pgpool.img
zpool create -f -o cachefile=none -O mountpoint=none tank /tmp/pgpool.img
zfs create -o mountpoint=none tank/persist
# The postgresql preset's dataset properties (README: postgres-data).
DS_PROPS=(-o recordsize=8K -o compression=lz4 -o logbias=latency)
new_dataset() { # NAME: tank/persist/NAME mounted at $PGT_WORK/NAME, empty, postgres' own
    zfs create "${DS_PROPS[@]}" -o mountpoint="$PGT_WORK/$1" "tank/persist/$1"
    chown "$PGT_USER:" "$PGT_WORK/$1"
    chmod 700 "$PGT_WORK/$1"
}
new_dataset primary
lap "zpool + dataset" "$t"

t=$(pgt_now)
URL=$("$S3SH" start "$PGT_WORK/s3")
chmod 644 "$PGT_WORK/s3/env"
ENVF=$PGT_WORK/s3/env
lap "moto server start" "$t"
t=$(pgt_now)
bc check "$ENVF" check-wal-archive s3://pitr main
[ "$RC" = 0 ] || fail "check-wal-archive rc=$RC: $(tail -n2 "$PGT_WORK/log/check.err")"
lap "barman-cloud-check-wal-archive (creates the bucket)" "$t"

t=$(pgt_now)
pg_init primary <<EOF
wal_level = replica
archive_mode = on
archive_command = '$VENV/bin/barman-cloud-wal-archive --endpoint-url $URL s3://pitr main %p'
EOF
lap "initdb on the dataset" "$t"
t=$(pgt_now)
pg_start primary "$ENVF" 300
[ "$RC" = 0 ] || fail "primary did not start"
lap "primary start" "$t"
pg_q primary "create table t (id serial primary key, tag text not null)"
t=$(pgt_now)
bc backup "$ENVF" backup -h "$PGT_WORK/sock" -p "$(pg_port primary)" -U postgres s3://pitr main
[ "$RC" = 0 ] || fail "barman-cloud-backup rc=$RC: $(tail -n2 "$PGT_WORK/log/backup.err")"
lap "barman-cloud-backup" "$t"
pg_q primary "insert into t (tag) select 'A' from generate_series(1, 1000)"
pg_q primary "select pg_switch_wal()" >/dev/null
sleep 1
T=$(pg_q primary "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1
pg_q primary "insert into t (tag) select 'B' from generate_series(1, 1000)"
B_SEG=$(pg_q primary "select pg_walfile_name(pg_current_wal_lsn())")
pg_q primary "select pg_switch_wal()" >/dev/null
t=$(pgt_now)
deadline=$((SECONDS + 600))
while [[ "$(pg_q primary 'select coalesce(last_archived_wal, $$$$) from pg_stat_archiver')" < "$B_SEG" ]]; do
    [ $SECONDS -lt $deadline ] || fail "$B_SEG not archived within 600 s"
    sleep 0.5
done
lap "archive of the last segment after pg_switch_wal" "$t"
t=$(pgt_now)
bc fetch "$ENVF" wal-restore s3://pitr main "$B_SEG" "$PGT_WORK/fetched"
[ "$RC" = 0 ] || fail "wal-restore of $B_SEG rc=$RC"
lap "barman-cloud-wal-restore of one segment (found)" "$t"
echo "vm-smoke: archiver: $(pg_q primary 'select archived_count || $$ archived, $$ || failed_count || $$ failed$$ from pg_stat_archiver')"
BACKUP=$(bc list "$ENVF" backup-list --format json s3://pitr main && "$VENV/bin/python" -c 'import json,sys
print([b["backup_id"] for b in json.load(open(sys.argv[1]))["backups_list"] if b["status"] == "DONE"][-1])' "$PGT_WORK/log/list.out")
pg_stop primary

t=$(pgt_now)
zfs destroy tank/persist/primary
rm -f "$PGT_WORK/primary.port"
new_dataset r_t
lap "the data is lost: dataset destroyed, a new empty one made" "$t"

# restore_and_recover NAME LABEL [TARGET_TIME]
restore_and_recover() {
    local name=$1 label=$2 target=${3:-} t1 target_line=
    [ -z "$target" ] || target_line="recovery_target_time = '$target'"
    t1=$(pgt_now)
    bc "restore-$name" "$ENVF" restore s3://pitr main "$BACKUP" "$PGT_WORK/$name"
    [ "$RC" = 0 ] || fail "barman-cloud-restore rc=$RC: $(tail -n2 "$PGT_WORK/log/restore-$name.err")"
    lap "barman-cloud-restore into the dataset ($label)" "$t1"
    pg_adopt "$name" <<EOF
restore_command = 'echo %f >>$PGT_WORK/$name.calls; exec $VENV/bin/barman-cloud-wal-restore --endpoint-url $URL s3://pitr main %f %p'
recovery_target_action = 'promote'
archive_mode = off
hot_standby = off
$target_line
EOF
    touch "$PGT_WORK/$name/recovery.signal"
    chown "$PGT_USER:" "$PGT_WORK/$name/recovery.signal"
    t1=$(pgt_now)
    pg_start "$name" "$ENVF" 900
    pg_wait_promoted "$name" 300 || fail "$name did not promote"
    lap "recovery ($label: start -> promoted; $(wc -l <"$PGT_WORK/$name.calls") restore_command calls)" "$t1"
    ROWS=$(pg_q "$name" "select 'A=' || count(*) filter (where tag = 'A') || ' B=' || count(*) filter (where tag = 'B') from t")
    echo "vm-smoke: $label: $ROWS, timeline $(pg_q "$name" 'select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)::int')"
    pg_stop "$name"
}

t=$(pgt_now)
restore_and_recover r_t "to T" "$T"
[ "$ROWS" = "A=1000 B=0" ] || fail "restore to T gave $ROWS, wanted A=1000 B=0"
lap "restore to T, total" "$t"
new_dataset r_latest
t=$(pgt_now)
restore_and_recover r_latest "to the end"
[ "$ROWS" = "A=1000 B=1000" ] || fail "restore to the end gave $ROWS, wanted A=1000 B=1000"
lap "restore to the end, total" "$t"
zfs get -H -o name,property,value recordsize,compression,logbias,used tank/persist/r_t
lap "vm-smoke total (guest)" "$T0"
echo
echo "== timings under TCG (seconds) =="
printf '%s\n' "${TIMES[@]}"
echo "vm-smoke: OK"
