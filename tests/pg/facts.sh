#!/usr/bin/env bash
# A spike against the REAL tools: checks each "fact that bites" of issue 11 (barman-cloud's exit
# codes and behaviour against a real S3 server on loopback, PostgreSQL 15's recovery rules, the
# whole backup -> point-in-time restore cycle) and prints a table: fact, expected, observed,
# OK/DIFFERENT. "expected" is the issue's claim where it makes one, otherwise what a fail-closed
# design has to be able to rely on (tests/pg/FACTS.md says which is which).
#
#   tests/pg/setup.sh && tests/pg/facts.sh
#
# Runs as root on the host (PostgreSQL and barman run as the postgres user); about 3 minutes
# (FACTS_HUNG_DEFAULT=1 adds two 3-minute waits on a hung S3 with barman's default read timeout).
# Work directory: a fresh /tmp/persistctl-pgfacts.XXXXXX (FACTS_WORK=DIR to choose), removed at
# the end unless FACTS_KEEP=1 or something failed. Exit status: 0 when every fact was observed
# (OK or DIFFERENT: a DIFFERENT is a finding, not a failure), 1 when the spike itself broke.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ "$(id -u)" = 0 ] || { echo "facts.sh: run as root (the tools run as postgres)" >&2; exit 1; }
PGT_WORK=${FACTS_WORK:-$(mktemp -d /tmp/persistctl-pgfacts.XXXXXX)}
mkdir -p "$PGT_WORK"
# shellcheck source=tests/pg/lib.sh
. "$HERE/lib.sh"
S3SH=$HERE/s3.sh
if [ ! -x "$VENV/bin/barman-cloud-backup" ] || [ ! -x "$PG_BIN/postgres" ]; then
    echo "facts.sh: run tests/pg/setup.sh first" >&2
    exit 1
fi

chmod 755 "$PGT_WORK"
chown "$PGT_USER:" "$PGT_WORK"
mkdir -p "$PGT_WORK/log" "$PGT_WORK/bin"
# PERSISTCTL=path/to/persistctl: also the facts about `persistctl pg-wal-restore` (copied where the
# postgres user can run it).
if [ -n "${PERSISTCTL:-}" ]; then
    install -m 755 "$PERSISTCTL" "$PGT_WORK/bin/persistctl"
fi
FACTS=$PGT_WORK/facts.tsv
TIMES=$PGT_WORK/timings.tsv
NOTES=$PGT_WORK/notes.txt
: >"$FACTS"
: >"$TIMES"
: >"$NOTES"
T_START=$(pgt_now)
BUCKET=pitr
SRC=s3://$BUCKET

OK_EXIT=0
cleanup() {
    local rc=$? f
    set +e
    for f in "$PGT_WORK"/*.port; do
        [ -e "$f" ] || continue
        f=${f##*/}
        pg_stop "${f%.port}" immediate
    done
    for f in "$PGT_WORK"/s3-*; do
        [ -d "$f" ] && "$S3SH" stop "$f" >/dev/null
    done
    if [ $rc -eq 0 ] && [ "$OK_EXIT" = 1 ] && [ "${FACTS_KEEP:-0}" != 1 ]; then
        rm -rf "$PGT_WORK"
    else
        echo "facts.sh: work directory kept: $PGT_WORK (logs in log/, server logs *.log)" >&2
    fi
}
trap cleanup EXIT

say() { printf '[facts +%5ss] %s\n' "$(pgt_since "$T_START")" "$*"; }
note() { printf '%s: %s\n' "$1" "$2" | tee -a "$NOTES"; }
timing() { printf '%s\t%s\n' "$1" "$2" >>"$TIMES"; say "time: $1 = $2 s"; }
# fact ID DESCRIPTION EXPECTED OBSERVED
fact() {
    local v=OK
    [ "$3" = "$4" ] || v=DIFFERENT
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$v" >>"$FACTS"
    printf '  %-9s %s %s: expected [%s] observed [%s]\n' "$v" "$1" "$2" "$3" "$4"
}
# last_error NAME: the last ERROR/exception line of a command's stderr, shortened.
last_error() {
    grep -E 'ERROR|Error|error|exception' "$PGT_WORK/log/$1.err" 2>/dev/null | tail -n1 | cut -c1-160 || true
}
rc_note() { note "$1" "rc=$RC in ${DUR}s; $(last_error "$1")"; }

env_variant() { # SRC_ENV DST_ENV SED_EXPR
    sed "$3" "$1" >"$2"
}

backup_ids() { # ENVFILE SERVER: DONE backup ids, oldest first
    bc list-tmp "$1" backup-list --format json "$SRC" "$2"
    [ "$RC" = 0 ] || return 1
    "$VENV/bin/python" -c 'import json,sys
for b in json.load(open(sys.argv[1]))["backups_list"]:
    if b["status"] == "DONE": print(b["backup_id"])' "$PGT_WORK/log/list-tmp.out"
}

counts() { # NAME: "A=n B=m" from a running cluster
    pg_q "$1" "select 'A=' || count(*) filter (where tag = 'A') || ' B=' || count(*) filter (where tag = 'B') from t"
}
timeline() { pg_q "$1" "select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)::int"; }

# restore_into NAME ENVFILE BACKUP_ID: barman-cloud-restore into a new, empty PGDATA.
restore_into() {
    local d
    d=$(pg_dir "$1")
    install -d -o "$PGT_USER" -g "$PGT_USER" -m 700 "$d"
    bc "restore-$1" "$2" restore "$SRC" main "$3" "$d"
}

# outcome NAME: what became of a cluster that was started for recovery.
outcome() {
    if pg_running "$1" && pg_wait_promoted "$1" 60; then
        echo "promoted TL$(timeline "$1") $(counts "$1")"
    elif pg_running "$1"; then
        echo "running, still in recovery"
    else
        echo "not running, pg_control TL$(control_tl "$1")"
    fi
}
# fatal_line NAME: the server's first FATAL/PANIC, not counting refused connection attempts.
fatal_line() {
    grep -E 'FATAL|PANIC' "$PGT_WORK/$1.log" 2>/dev/null | grep -v -E 'not accepting connections|is starting up' |
        head -n1 | sed 's/^.*\(FATAL\|PANIC\): *//' | cut -c1-150
}
# control_tl NAME: the timeline of the latest checkpoint in pg_control (a promotion raises it).
control_tl() {
    as_pg -- "$PG_BIN/pg_controldata" -D "$(pg_dir "$1")" 2>/dev/null | sed -n "s/^Latest checkpoint's TimeLineID: *//p"
}

# ==== S3 server =================================================================================
say "versions"
note "postgresql" "$("$PG_BIN/postgres" --version)"
note "barman" "$("$VENV/bin/barman-cloud-backup" --version 2>&1)"
note "boto3/botocore" "$("$VENV/bin/python" -c 'import boto3, botocore; print(boto3.__version__, botocore.__version__)')"
note "moto" "$("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"

S3A=$PGT_WORK/s3-a
t0=$(pgt_now)
URL_A=$("$S3SH" start "$S3A")
timing "moto server start" "$(pgt_since "$t0")"
A_ENV=$S3A/env
chmod 644 "$A_ENV"
CLOSED=$("$S3SH" closed-port)
env_variant "$A_ENV" "$PGT_WORK/closed.env" "s|^S3_ENDPOINT_URL=.*|S3_ENDPOINT_URL=$CLOSED|"
CLOSED_ENV=$PGT_WORK/closed.env
DUMMY_WAL=$PGT_WORK/wal/000000010000000000000001
install -d -o "$PGT_USER" "$PGT_WORK/wal"
head -c 16777216 /dev/zero >"$DUMMY_WAL"
chown "$PGT_USER:" "$DUMMY_WAL"

# ==== arguments =================================================================================
say "arguments (the seed's sketches)"
bc seed-archive "$A_ENV" wal-archive "$SRC" "$DUMMY_WAL"
rc_note seed-archive
fact args-1 "seed archive_command 'barman-cloud-wal-archive s3://B %p' (no server name)" "rc=3" "rc=$RC"
bc seed-backup "$A_ENV" backup --compression gzip "$SRC" pg-main
fact args-2 "seed 'barman-cloud-backup --compression gzip' (no such option; -z/--gzip)" "rc=3" "rc=$RC"
bc args-restore "$A_ENV" wal-restore "$SRC" main
fact args-3 "wal-restore with missing arguments" "rc=3" "rc=$RC"
bc args-walname "$A_ENV" wal-restore "$SRC" main notawal "$PGT_WORK/x"
fact args-4 "wal-restore with an invalid WAL name" "rc=3" "rc=$RC"

# ==== a bucket that does not exist, then an empty one ===========================================
say "missing and empty bucket"
MISSING=s3://nosuchbucket
bc miss-list "$A_ENV" backup-list --format json "$MISSING" main
rc_note miss-list
fact bucket-1 "backup-list, bucket missing (must not look like 'no backup' = rc 0)" "rc=4" "rc=$RC"
bc miss-walrestore "$A_ENV" wal-restore "$MISSING" main 000000010000000000000001 "$PGT_WORK/x"
rc_note miss-walrestore
fact bucket-2 "wal-restore, bucket missing (must not look like 'end of archive' = 1)" "rc=4" "rc=$RC"
install -d -o "$PGT_USER" -m 700 "$PGT_WORK/miss-restore"
bc miss-restore "$A_ENV" restore "$MISSING" main latest "$PGT_WORK/miss-restore"
rc_note miss-restore
fact bucket-3 "restore 'latest', bucket missing" "rc=1 or 4" "$(case $RC in 1 | 4) echo 'rc=1 or 4' ;; *) echo "rc=$RC" ;; esac)"
bc miss-keep "$A_ENV" backup-keep --status "$MISSING" main 20260101T000000
fact bucket-4 "backup-keep --status, bucket missing" "rc=4" "rc=$RC"
s3ctl "$A_ENV" exists nosuchbucket && b=exists || b=missing
fact bucket-5 "none of the reads above created the bucket" "missing" "$b"
bc miss-check "$A_ENV" check-wal-archive "$MISSING" main
rc_note miss-check
s3ctl "$A_ENV" exists nosuchbucket && b=created || b=missing
fact bucket-6 "check-wal-archive on a missing bucket: rc, bucket afterwards (issue: creates it)" "rc=0 created" "rc=$RC $b"
bc empty-list "$A_ENV" backup-list --format json "$MISSING" main
fact bucket-7 "backup-list on an empty bucket: rc, output (issue: 'no DONE backup', exit 0)" \
    'rc=0 {"backups_list": []}' "rc=$RC $(cat "$PGT_WORK/log/empty-list.out")"
bc empty-walrestore "$A_ENV" wal-restore "$MISSING" main 000000010000000000000001 "$PGT_WORK/x"
fact bucket-8 "wal-restore from an empty bucket (WAL not found)" "rc=1" "rc=$RC"
bc empty-restore "$A_ENV" restore "$MISSING" main latest "$PGT_WORK/miss-restore"
rc_note empty-restore
fact bucket-9 "restore 'latest' from an empty bucket" "rc=1" "rc=$RC"
bc empty-restore-auto "$A_ENV" restore "$MISSING" main auto "$PGT_WORK/miss-restore"
rc_note empty-restore-auto
fact bucket-9b "restore 'auto' from an empty bucket" "rc=1" "rc=$RC"
bc miss-archive "$A_ENV" wal-archive s3://createdbyarchive main "$DUMMY_WAL"
s3ctl "$A_ENV" exists createdbyarchive && b=created || b=missing
fact bucket-10 "wal-archive to a missing bucket: rc, bucket afterwards" "rc=0 created" "rc=$RC $b"
# Only check-wal-archive creates a bucket (see bucket-10, cycle-0): it is the pre-flight here too.
bc create-pitr "$A_ENV" check-wal-archive "$SRC" main
[ "$RC" = 0 ] || { echo "facts.sh: could not create $SRC" >&2; exit 1; }

# ==== unreachable endpoint (closed port) =========================================================
say "unreachable endpoint ($CLOSED, connection refused)"
bc down-walrestore "$CLOSED_ENV" wal-restore "$SRC" main 000000010000000000000001 "$PGT_WORK/x"
rc_note down-walrestore
fact down-1 "wal-restore, endpoint refuses connections (issue: 4, not 2)" "rc=4" "rc=$RC"
timing "wal-restore against a closed port (botocore retries)" "$DUR"
bc down-walrestore-t "$CLOSED_ENV" wal-restore --test "$SRC" main 000000010000000000000001 "$PGT_WORK/x"
fact down-2 "wal-restore --test, endpoint refuses (issue: 2 only for --test and check-wal-archive)" "rc=2" "rc=$RC"
bc down-archive "$CLOSED_ENV" wal-archive "$SRC" main "$DUMMY_WAL"
fact down-3 "wal-archive, endpoint refuses" "rc=4" "rc=$RC"
bc down-check "$CLOSED_ENV" check-wal-archive "$SRC" main
fact down-4 "check-wal-archive, endpoint refuses" "rc=2" "rc=$RC"
bc down-list "$CLOSED_ENV" backup-list --format json "$SRC" main
fact down-5 "backup-list, endpoint refuses" "rc=4" "rc=$RC"
bc down-restore "$CLOSED_ENV" restore "$SRC" main latest "$PGT_WORK/miss-restore"
fact down-6 "restore, endpoint refuses" "rc=4" "rc=$RC"
bc down-keep "$CLOSED_ENV" backup-keep --target full "$SRC" main 20260101T000000
fact down-7 "backup-keep, endpoint refuses" "rc=4" "rc=$RC"
bc down-delete "$CLOSED_ENV" backup-delete -r "REDUNDANCY 1" "$SRC" main
fact down-8 "backup-delete, endpoint refuses" "rc=4" "rc=$RC"

# ==== the primary: archive, base backup, rows A, time T, rows B ===================================
say "primary: initdb, archive_command = barman-cloud-wal-archive, base backup, A, T, B"
ARCHIVE_CMD="$VENV/bin/barman-cloud-wal-archive --endpoint-url $URL_A $SRC main %p"
t0=$(pgt_now)
pg_init primary <<EOF
wal_level = replica
archive_mode = on
archive_command = '$ARCHIVE_CMD'
max_wal_senders = 3
EOF
timing "initdb" "$(pgt_since "$t0")"
t0=$(pgt_now)
pg_start primary "$A_ENV"
[ "$RC" = 0 ] || { cat "$PGT_WORK/primary.log" >&2; exit 1; }
timing "primary start" "$(pgt_since "$t0")"
pg_q primary "create table t (id serial primary key, tag text not null, at timestamptz not null default clock_timestamp())"
bc backup1 "$A_ENV" backup -h "$PGT_WORK/sock" -p "$(pg_port primary)" -U postgres "$SRC" main
rc_note backup1
fact cycle-1 "barman-cloud-backup of the primary" "rc=0" "rc=$RC"
timing "barman-cloud-backup (empty cluster, ~40 MB; includes waiting for the end WAL's archive)" "$DUR"
bc backup-missing "$A_ENV" backup -h "$PGT_WORK/sock" -p "$(pg_port primary)" -U postgres s3://nosuchbucket2 main
rc_note backup-missing
fact cycle-0 "barman-cloud-backup to a missing bucket (does not create it)" "rc=1" "rc=$RC"
B1=$(backup_ids "$A_ENV" main | tail -n1)
note "backup 1" "$B1"
pg_q primary "insert into t (tag) select 'A' from generate_series(1, 1000)"
A_SEG=$(pg_q primary "select pg_walfile_name(pg_current_wal_lsn())")
pg_q primary "select pg_switch_wal()" >/dev/null
sleep 1
T=$(pg_q primary "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1
pg_q primary "insert into t (tag) select 'B' from generate_series(1, 1000)"
B_SEG=$(pg_q primary "select pg_walfile_name(pg_current_wal_lsn())")
pg_q primary "select pg_switch_wal()" >/dev/null
sleep 1
T_AFTER_B=$(pg_q primary "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
note "A in segment" "$A_SEG"
note "T" "$T"
note "B in segment" "$B_SEG"
t0=$(pgt_now)
deadline=$((SECONDS + 60))
while [[ "$(pg_q primary 'select coalesce(last_archived_wal, $$$$) from pg_stat_archiver')" < "$B_SEG" ]]; do
    [ $SECONDS -lt $deadline ] || { echo "facts.sh: $B_SEG not archived within 60 s" >&2; exit 1; }
    sleep 0.2
done
timing "archive of the B segment after pg_switch_wal" "$(pgt_since "$t0")"
fact cycle-2 "archive_command = barman-cloud-wal-archive: pg_stat_archiver failed_count" "0" \
    "$(pg_q primary 'select failed_count from pg_stat_archiver')"
note "archived WAL objects" "$(s3ctl "$A_ENV" keys "$BUCKET" main/wals/ | wc -l)"

# ==== facts on a filled archive ===================================================================
say "filled archive"
install -d -o "$PGT_USER" -m 700 "$PGT_WORK/fetch"
bc walrestore-found "$A_ENV" wal-restore "$SRC" main "$A_SEG" "$PGT_WORK/fetch/$A_SEG"
fact fill-1 "wal-restore, WAL found: rc, file size" "rc=0 16777216" "rc=$RC $(stat -c %s "$PGT_WORK/fetch/$A_SEG" 2>/dev/null || echo none)"
timing "wal-restore of one segment" "$DUR"
bc walrestore-missing "$A_ENV" wal-restore "$SRC" main 0000000100000000000000F0 "$PGT_WORK/fetch/x"
fact fill-2 "wal-restore, WAL not found (end of the archive)" "rc=1" "rc=$RC"
bc walrestore-hist "$A_ENV" wal-restore "$SRC" main 00000002.history "$PGT_WORK/fetch/h"
fact fill-3 "wal-restore of a missing timeline history file (PostgreSQL asks for them)" "rc=1" "rc=$RC"
bc check-full "$A_ENV" check-wal-archive "$SRC" main
rc_note check-full
fact fill-4 "check-wal-archive, same server name, archive not empty (issue: 1)" "rc=1" "rc=$RC"
bc check-tl2 "$A_ENV" check-wal-archive --timeline 2 "$SRC" main
fact fill-5 "check-wal-archive --timeline 2 on an archive with only timeline 1" "rc=0" "rc=$RC"
bc check-other "$A_ENV" check-wal-archive "$SRC" main-restored-1
fact fill-6 "check-wal-archive, same bucket, a new server name" "rc=0" "rc=$RC"
bc list-json "$A_ENV" backup-list --format json "$SRC" main
note "backup-list --format json keys" "$("$VENV/bin/python" -c 'import json,sys
d = json.load(open(sys.argv[1])); b = d["backups_list"][0]
print("top:", sorted(d), "entry:", ", ".join(sorted(b)))' "$PGT_WORK/log/list-json.out")"
note "backup-list entry (selected)" "$("$VENV/bin/python" -c 'import json,sys
b = json.load(open(sys.argv[1]))["backups_list"][0]
print({k: b.get(k) for k in ("backup_id", "backup_name", "status", "begin_wal", "end_wal", "begin_time", "end_time", "timeline", "begin_xlog", "end_xlog", "version", "pgdata")})' "$PGT_WORK/log/list-json.out")"
fact fill-7 "backup-list --format json: shape and status" '{"backups_list": [..]} status=DONE' \
    "$("$VENV/bin/python" -c 'import json,sys
d = json.load(open(sys.argv[1])); print("{\"backups_list\": [..]} status=" + ",".join(b["status"] for b in d["backups_list"]))' "$PGT_WORK/log/list-json.out")"
bc show-json "$A_ENV" backup-show --format json "$SRC" main "$B1"
note "backup-show --format json top-level" "$("$VENV/bin/python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sorted(d), sorted(next(iter(d.values()))) if len(d)==1 else "")' "$PGT_WORK/log/show-json.out" 2>&1 | cut -c1-400)"

# restore into a non-empty destination
NE=$(pg_dir nonempty)
install -d -o "$PGT_USER" -m 700 "$NE"
echo precious >"$NE/PG_VERSION"
chown "$PGT_USER:" "$NE/PG_VERSION"
bc restore-nonempty "$A_ENV" restore "$SRC" main "$B1" "$NE"
rc_note restore-nonempty
fact restore-1 "restore into a non-empty directory: rc, its files (issue: refuses)" "rc!=0 untouched" \
    "$([ "$RC" != 0 ] && echo 'rc!=0' || echo "rc=0") $([ "$(ls -A "$NE")" = PG_VERSION ] && [ "$(cat "$NE/PG_VERSION")" = precious ] && echo untouched || echo "changed ($(ls -A "$NE" | wc -l) entries)")"
note "restore into a non-empty directory" "rc=$RC; $(last_error restore-nonempty)"
bc restore-missingdir "$A_ENV" restore "$SRC" main "$B1" "$PGT_WORK/does/not/exist"
fact restore-2 "restore into a directory that does not exist: rc, created" "rc=0 created" \
    "rc=$RC $([ -f "$PGT_WORK/does/not/exist/PG_VERSION" ] && echo created || echo absent)"
rm -rf "$PGT_WORK/does"

# ==== the full cycle: restore to T and to the end =================================================
RESTORE_CMD="$VENV/bin/barman-cloud-wal-restore --endpoint-url $URL_A $SRC main %f %p"
say "full cycle: restore to T ($T)"
t0=$(pgt_now)
restore_into r_t "$A_ENV" "$B1"
fact restore-3 "restore into an empty directory" "rc=0" "rc=$RC"
timing "barman-cloud-restore (empty cluster)" "$DUR"
RT=$(pg_dir r_t)
fact restore-4 "after restore: recovery.signal / standby.signal / restore_command written (issue: none)" \
    "none none none" "$([ -e "$RT/recovery.signal" ] && echo present || echo none) $([ -e "$RT/standby.signal" ] && echo present || echo none) $(grep -qsE '^\s*restore_command' "$RT/postgresql.auto.conf" "$RT/postgresql.conf" && echo present || echo none)"
note "after restore: backup_label, pg_wal entries, archive_command from the backup" \
    "$([ -f "$RT/backup_label" ] && echo 'backup_label present' || echo 'no backup_label'), pg_wal: $(find "$RT/pg_wal" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) entries, archive_command: $(grep -h '^archive_command' "$RT/postgresql.conf" | cut -c1-60)…"
pg_adopt r_t <<EOF
restore_command = '$RESTORE_CMD'
recovery_target_time = '$T'
recovery_target_action = 'promote'
archive_mode = off
hot_standby = off
EOF
touch "$RT/recovery.signal"
chown "$PGT_USER:" "$RT/recovery.signal"
t1=$(pgt_now)
pg_start r_t "$A_ENV" 300
o=$(outcome r_t)
timing "recovery to T (start -> promoted)" "$(pgt_since "$t1")"
timing "restore to T, total (restore + recovery)" "$(pgt_since "$t0")"
fact cycle-3 "restore to T, recovery_target_action=promote: A present, B absent" "promoted TL2 A=1000 B=0" "$o"
fact cycle-4 "after promotion: recovery.signal gone; recovery settings left in postgresql.auto.conf" "gone kept" \
    "$([ -e "$RT/recovery.signal" ] && echo present || echo gone) $(grep -q '^restore_command' "$RT/postgresql.auto.conf" && grep -q '^recovery_target_time' "$RT/postgresql.auto.conf" && echo kept || echo removed)"
pg_stop r_t

say "full cycle: restore to the end of the archive (no target)"
t0=$(pgt_now)
restore_into r_latest "$A_ENV" "$B1"
pg_adopt r_latest <<EOF
restore_command = '$RESTORE_CMD'
recovery_target_action = 'promote'
archive_mode = off
hot_standby = off
EOF
touch "$(pg_dir r_latest)/recovery.signal"
chown "$PGT_USER:" "$(pg_dir r_latest)/recovery.signal"
t1=$(pgt_now)
pg_start r_latest "$A_ENV" 300
o=$(outcome r_latest)
timing "recovery to the end (start -> promoted)" "$(pgt_since "$t1")"
timing "restore to the end, total" "$(pgt_since "$t0")"
fact cycle-5 "restore with no target: A and B present" "promoted TL2 A=1000 B=1000" "$o"
pg_stop r_latest

# ==== the archive goes away during a replay (each case on its own copy of the archive) ============
cat >"$PGT_WORK/bin/restore-cut.sh" <<EOF
#!/bin/sh
# restore-cut.sh MODE CUT FLAGS ENDPOINT %f %p: barman-cloud-wal-restore, but when PostgreSQL asks
# for CUT the S3 server is stopped first (FLAGS/cut-reached -> the test stops it -> FLAGS/stopped).
# MODE bare: barman's exit status as is; mapped: 0 and 1 as is, anything else 200 (> 125: abort).
mode=\$1 cut=\$2 flags=\$3 ep=\$4 f=\$5 p=\$6
if [ "\$f" = "\$cut" ] || [ -e "\$flags/cut-reached" ]; then
    : >"\$flags/cut-reached"
    i=0
    while [ ! -e "\$flags/stopped" ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i + 1)); done
fi
if [ "\$mode" = persistctl ]; then
    PERSISTCTL_BARMAN_DIR=$VENV/bin $PGT_WORK/bin/persistctl pg-wal-restore --timeout 60 --endpoint-url "\$ep" \
        --destination $SRC --server-name main "\$f" "\$p"
else
    $VENV/bin/barman-cloud-wal-restore --endpoint-url "\$ep" $SRC main "\$f" "\$p"
fi
rc=\$?
echo "\$f \$rc" >>"\$flags/calls"
if [ "\$mode" = mapped ]; then
    case \$rc in 0 | 1) exit \$rc ;; *) exit 200 ;; esac
fi
exit \$rc
EOF
chmod 755 "$PGT_WORK/bin/restore-cut.sh"

# outage NAME MODE CUT [TARGET_TIME]: restore from a copy of the archive on its own S3 server,
# stop that server when recovery asks for CUT ("start": before recovery starts; "none": never),
# report.
outage() {
    local name=$1 mode=$2 cut=$3 target=${4:-} s3 flags url watcher=
    s3=$PGT_WORK/s3-$name
    flags=$PGT_WORK/flags-$name
    install -d -o "$PGT_USER" "$flags"
    local target_line=
    [ -z "$target" ] || target_line="recovery_target_time = '$target'"
    url=$("$S3SH" start "$s3")
    chmod 644 "$s3/env"
    s3ctl "$s3/env" clone "$URL_A" "$BUCKET" >/dev/null
    restore_into "$name" "$s3/env" "$B1"
    [ "$RC" = 0 ] || { echo "facts.sh: restore for $name failed" >&2; exit 1; }
    pg_adopt "$name" <<EOF
restore_command = '$PGT_WORK/bin/restore-cut.sh $mode $cut $flags $url %f %p'
recovery_target_action = 'promote'
archive_mode = off
hot_standby = off
$target_line
EOF
    touch "$(pg_dir "$name")/recovery.signal"
    chown "$PGT_USER:" "$(pg_dir "$name")/recovery.signal"
    if [ "$cut" = start ]; then
        "$S3SH" stop "$s3" >/dev/null
        touch "$flags/stopped"
    elif [ "$cut" = none ]; then
        : # the store stays up
    else
        (
            deadline=$((SECONDS + 240))
            while [ ! -e "$flags/cut-reached" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
            "$S3SH" stop "$s3" >/dev/null
            touch "$flags/stopped"
        ) &
        watcher=$!
    fi
    pg_start "$name" "$s3/env" 300
    OUTCOME=$(outcome "$name")
    [ -z "$watcher" ] || wait "$watcher" || true
    note "$name restore_command calls" "$(tr '\n' ' ' <"$flags/calls" 2>/dev/null)"
    note "$name first FATAL" "$(fatal_line "$name")"
    pg_stop "$name"
    "$S3SH" stop "$s3" >/dev/null
}

say "S3 stopped mid-replay (when recovery asks for $B_SEG, the segment with B)"
outage mid_bare bare "$B_SEG"
fact outage-1 "S3 stopped mid-replay, restore_command = bare barman-cloud-wal-restore, no target (issue: ends early, promotes, loses data)" \
    "promoted TL2 A=1000 B=0" "$OUTCOME"
outage mid_mapped mapped "$B_SEG"
fact outage-2 "the same with a wrapper mapping 2/3/4 to 200 (issue: recovery aborts, server does not start)" \
    "not running, pg_control TL1" "$OUTCOME"
if [ -n "${PERSISTCTL:-}" ]; then
    outage mid_persistctl persistctl "$B_SEG"
    fact persistctl-1 "S3 stopped mid-replay, restore_command = persistctl pg-wal-restore: recovery aborts, server does not start" \
        "not running, pg_control TL1" "$OUTCOME"
    outage end_persistctl persistctl none
    fact persistctl-2 "restore_command = persistctl pg-wal-restore, S3 up: recovery to the end, A and B present" \
        "promoted TL2 A=1000 B=1000" "$OUTCOME"
fi
outage mid_target bare "$B_SEG" "$T_AFTER_B"
fact outage-3 "S3 stopped mid-replay with recovery_target_time past the archive's end, bare command (PG >= 13: FATAL)" \
    "not running, pg_control TL1" "$OUTCOME"
outage down_start bare start
fact outage-4 "S3 down before replay starts, bare command (base backup never consistent: FATAL)" \
    "not running, pg_control TL1" "$OUTCOME"

# ==== a hung S3 (frozen server: connections accepted, never answered) =============================
say "hung S3 (SIGSTOP): how long barman-cloud-wal-restore waits"
S3H=$PGT_WORK/s3-hung
"$S3SH" start "$S3H" >/dev/null
chmod 644 "$S3H/env"
s3ctl "$S3H/env" clone "$URL_A" "$BUCKET" >/dev/null
"$S3SH" freeze "$S3H" >/dev/null
bc hung-5 "$S3H/env" wal-restore --read-timeout 5 "$SRC" main "$A_SEG" "$PGT_WORK/fetch/hung"
fact hung-1 "wal-restore --read-timeout 5 against a hung S3: rc" "rc=4" "rc=$RC"
timing "wal-restore --read-timeout 5, hung S3 (read timeout x attempts)" "$DUR"
if [ -n "${PERSISTCTL:-}" ]; then
    t_hung=$(pgt_now)
    set +e
    as_pg "$S3H/env" -- env PERSISTCTL_BARMAN_DIR="$VENV/bin" "$PGT_WORK/bin/persistctl" pg-wal-restore --timeout 5 \
        --endpoint-url "$(sed -n 's/^S3_ENDPOINT_URL=//p' "$S3H/env")" --destination "$SRC" --server-name main \
        "$A_SEG" "$PGT_WORK/fetch/hung-persistctl" >"$PGT_WORK/log/hung-persistctl.out" 2>"$PGT_WORK/log/hung-persistctl.err"
    rc=$?
    set -e
    d_hung=$(pgt_since "$t_hung")
    fact persistctl-3 "persistctl pg-wal-restore --timeout 5 against a hung S3: rc, within the deadline" "rc=200 in time" \
        "rc=$rc $(awk -v d="$d_hung" 'BEGIN { print (d < 15) ? "in time" : "late (" d " s)" }')"
    timing "persistctl pg-wal-restore --timeout 5, hung S3" "$d_hung"
fi
if [ "${FACTS_HUNG_DEFAULT:-0}" = 1 ]; then # ~6 minutes more
    BC_TIMEOUT=400 bc hung-default "$S3H/env" wal-restore "$SRC" main "$A_SEG" "$PGT_WORK/fetch/hung"
    fact hung-2 "wal-restore with the default read timeout (60 s), hung S3" "rc=4" "rc=$RC"
    timing "wal-restore, default read timeout, hung S3" "$DUR"
    BC_TIMEOUT=400 bc hung-test "$S3H/env" wal-restore --test "$SRC" main "$A_SEG" "$PGT_WORK/fetch/hung"
    fact hung-3 "wal-restore --test, default read timeout, hung S3 (2 only when refused?)" "rc=2" "rc=$RC"
    timing "wal-restore --test, default read timeout, hung S3" "$DUR"
fi
"$S3SH" stop "$S3H" >/dev/null

# ==== restore_command exit codes (PostgreSQL 15 alone) ============================================
say "PostgreSQL 15: restore_command exit status -> recovery outcome"
pg_init plain <<EOF
wal_level = replica
EOF
pg_start plain
pg_q plain "create table t (id int, tag text); insert into t values (1, 'A')"
pg_stop plain
for code in 1 125 126 127 200 kill9; do
    name=x$code
    cp -a "$(pg_dir plain)" "$(pg_dir "$name")"
    case $code in
        kill9) cmd='kill -9 $$' ;;
        *) cmd="exit $code" ;;
    esac
    pg_adopt "$name" <<EOF
restore_command = '$cmd'
recovery_target_action = 'promote'
hot_standby = off
EOF
    touch "$(pg_dir "$name")/recovery.signal"
    chown "$PGT_USER:" "$(pg_dir "$name")/recovery.signal"
    pg_start "$name" "" 60
    o=$(outcome "$name")
    o=${o% A=*}
    case $code in
        1 | 125) want="promoted TL2" ;;
        *) want="not running, pg_control TL1" ;;
    esac
    fact "pg-$code" "restore_command '$cmd' (from the first call)" "$want" "$o"
    note "$name first FATAL" "$(fatal_line "$name")"
    pg_stop "$name"
done

# ==== wrong credentials (moto with IAM authentication on) =========================================
say "wrong credentials"
S3C=$PGT_WORK/s3-auth
"$S3SH" start "$S3C" >/dev/null
"$S3SH" auth "$S3C" >/dev/null
chmod 644 "$S3C/env"
env_variant "$S3C/env" "$PGT_WORK/wrong-secret.env" 's/^AWS_SECRET_ACCESS_KEY=.*/AWS_SECRET_ACCESS_KEY=wrong-secret/'
env_variant "$S3C/env" "$PGT_WORK/wrong-key.env" 's/^AWS_ACCESS_KEY_ID=.*/AWS_ACCESS_KEY_ID=AKIANOSUCHKEY0000000/'
bc auth-good-check "$S3C/env" check-wal-archive "$SRC" main
good_check=$RC
bc auth-good-archive "$S3C/env" wal-archive "$SRC" main "$DUMMY_WAL"
rc_note auth-good-archive
good_archive=$RC
bc auth-good-restore "$S3C/env" wal-restore "$SRC" main 000000010000000000000001 "$PGT_WORK/fetch/good"
fact auth-1 "the right key (proves authentication works): check-wal-archive (creates the bucket), wal-archive, wal-restore" \
    "rc=0 rc=0 rc=0" "rc=$good_check rc=$good_archive rc=$RC"
for w in wrong-secret wrong-key; do
    bc "auth-$w-restore" "$PGT_WORK/$w.env" wal-restore "$SRC" main 000000010000000000000001 "$PGT_WORK/fetch/w"
    rc_note "auth-$w-restore"
    r1=$RC
    bc "auth-$w-restore-missing" "$PGT_WORK/$w.env" wal-restore "$SRC" main 0000000100000000000000F0 "$PGT_WORK/fetch/w"
    r2=$RC
    bc "auth-$w-archive" "$PGT_WORK/$w.env" wal-archive "$SRC" main "$DUMMY_WAL"
    r3=$RC
    bc "auth-$w-list" "$PGT_WORK/$w.env" backup-list --format json "$SRC" main
    r4=$RC
    bc "auth-$w-check" "$PGT_WORK/$w.env" check-wal-archive "$SRC" main
    r5=$RC
    fact "auth-$w" "$w: wal-restore found / not found, wal-archive, backup-list, check-wal-archive" \
        "4 4 4 4 4" "$r1 $r2 $r3 $r4 $r5"
done
"$S3SH" stop "$S3C" >/dev/null

# ==== endpoint and region from the environment ====================================================
say "environment"
grep -v '^S3_ENDPOINT_URL=' "$A_ENV" >"$PGT_WORK/env-endpoint.env"
echo "AWS_ENDPOINT_URL=$URL_A" >>"$PGT_WORK/env-endpoint.env"
BC_TIMEOUT=60 bc env-endpoint "$PGT_WORK/env-endpoint.env" backup-list --format json "$SRC" main
fact env-1 "AWS_ENDPOINT_URL in the environment instead of --endpoint-url (botocore >= 1.31)" "rc=0 1 backup" \
    "rc=$RC $(grep -o '"backup_id"' "$PGT_WORK/log/env-endpoint.out" | wc -l) backup"
grep -v '^AWS_DEFAULT_REGION=' "$A_ENV" >"$PGT_WORK/no-region.env"
bc no-region "$PGT_WORK/no-region.env" backup-list --format json "$SRC" main
fact env-2 "no AWS_DEFAULT_REGION (custom endpoint)" "rc=0" "rc=$RC"

# ==== wal-archive over an existing WAL of the same name ===========================================
say "wal-archive over an existing object"
printf 'first' | dd of="$DUMMY_WAL" bs=1 seek=0 conv=notrunc status=none
bc dup-1 "$A_ENV" wal-archive "$SRC" dup "$DUMMY_WAL"
printf 'other' | dd of="$DUMMY_WAL" bs=1 seek=0 conv=notrunc status=none
bc dup-2 "$A_ENV" wal-archive "$SRC" dup "$DUMMY_WAL"
stored=$(s3ctl "$A_ENV" get "$BUCKET" dup/wals/0000000100000000/000000010000000000000001 | head -c 5)
fact dup-1 "wal-archive of a different file under an archived WAL's name: rc, stored content" \
    "rc!=0 first" "$([ "$RC" = 0 ] && echo rc=0 || echo 'rc!=0') $stored"

# ==== timelines: a restored cluster that archives under the same server name =======================
say "timelines: restore to T with the backup's own archive_command (same server name)"
restore_into r_t_inherit "$A_ENV" "$B1"
pg_adopt r_t_inherit <<EOF
restore_command = '$RESTORE_CMD'
recovery_target_time = '$T'
recovery_target_action = 'promote'
hot_standby = off
EOF
touch "$(pg_dir r_t_inherit)/recovery.signal"
chown "$PGT_USER:" "$(pg_dir r_t_inherit)/recovery.signal"
pg_start r_t_inherit "$A_ENV" 300
o=$(outcome r_t_inherit)
deadline=$((SECONDS + 30))
until s3ctl "$A_ENV" keys "$BUCKET" main/wals/ | grep -q '00000002.history' || [ $SECONDS -ge $deadline ]; do sleep 0.5; done
pg_stop r_t_inherit
fact tl-1 "restored (to T) with the backup's archive_command: 00000002.history lands in the original archive" \
    "promoted TL2 A=1000 B=0, history archived" \
    "$o, $(s3ctl "$A_ENV" keys "$BUCKET" main/wals/ | grep -q '00000002.history' && echo 'history archived' || echo 'no history')"
bc check-after-tl2 "$A_ENV" check-wal-archive --timeline 2 "$SRC" main
fact tl-2 "check-wal-archive --timeline 2 once timeline 2 is in the archive" "rc=1" "rc=$RC"
restore_into r_latest2 "$A_ENV" "$B1"
pg_adopt r_latest2 <<EOF
restore_command = '$RESTORE_CMD'
recovery_target_action = 'promote'
archive_mode = off
hot_standby = off
EOF
touch "$(pg_dir r_latest2)/recovery.signal"
chown "$PGT_USER:" "$(pg_dir r_latest2)/recovery.signal"
pg_start r_latest2 "$A_ENV" 300
o=$(outcome r_latest2)
pg_stop r_latest2
fact tl-3 "then a restore with no target (recovery_target_timeline defaults to latest): follows timeline 2, B lost" \
    "promoted TL3 A=1000 B=0" "$o"
restore_into r_tl1 "$A_ENV" "$B1"
pg_adopt r_tl1 <<EOF
restore_command = '$RESTORE_CMD'
recovery_target_timeline = 'current'
recovery_target_action = 'promote'
archive_mode = off
hot_standby = off
EOF
touch "$(pg_dir r_tl1)/recovery.signal"
chown "$PGT_USER:" "$(pg_dir r_tl1)/recovery.signal"
pg_start r_tl1 "$A_ENV" 300
o=$(outcome r_tl1)
pg_stop r_tl1
fact tl-4 "the same with recovery_target_timeline = 'current' (the backup's timeline)" \
    "promoted TL3 A=1000 B=1000" "$o"

# ==== keep and retention ==========================================================================
say "backup-keep and retention"
pg_q primary "insert into t (tag) select 'C' from generate_series(1, 10)"
sleep 1.1
bc backup2 "$A_ENV" backup -h "$PGT_WORK/sock" -p "$(pg_port primary)" -U postgres "$SRC" main
sleep 1.1
bc backup3 "$A_ENV" backup -h "$PGT_WORK/sock" -p "$(pg_port primary)" -U postgres "$SRC" main
mapfile -t ids < <(backup_ids "$A_ENV" main)
B2=${ids[1]:-?}
B3=${ids[2]:-?}
note "backups" "${ids[*]}"
bc keep-1 "$A_ENV" backup-keep --target full "$SRC" main "$B1"
fact keep-1 "backup-keep --target full on the oldest backup" "rc=0" "rc=$RC"
bc keep-status "$A_ENV" backup-keep --status "$SRC" main "$B1"
note "backup-keep --status output" "$(tr '\n' ' ' <"$PGT_WORK/log/keep-status.out")"
bc keep-list "$A_ENV" backup-list "$SRC" main
note "backup-list (console) with a kept backup" "$(grep "$B1" "$PGT_WORK/log/keep-list.out" | tr -s ' ')"
wals_before=$(s3ctl "$A_ENV" keys "$BUCKET" main/wals/ | wc -l)
bc del-window "$A_ENV" backup-delete -r "RECOVERY WINDOW OF 1 DAYS" "$SRC" main
fact keep-2 "backup-delete -r 'RECOVERY WINDOW OF 1 DAYS' (all backups minutes old): rc, backups left" \
    "rc=0 3" "rc=$RC $(backup_ids "$A_ENV" main | wc -l)"
bc del-dry "$A_ENV" backup-delete -r "REDUNDANCY 1" --dry-run "$SRC" main
fact keep-3 "backup-delete -r 'REDUNDANCY 1' --dry-run: rc, backups left" "rc=0 3" "rc=$RC $(backup_ids "$A_ENV" main | wc -l)"
bc del-red1 "$A_ENV" backup-delete -r "REDUNDANCY 1" "$SRC" main
rc_note del-red1
left=$(backup_ids "$A_ENV" main | tr '\n' ' ')
fact keep-4 "backup-delete -r 'REDUNDANCY 1' with the oldest kept: the kept one survives, the middle one goes" \
    "rc=0 B1 B3" "rc=$RC $(for b in $left; do case $b in "$B1") printf 'B1 ' ;; "$B2") printf 'B2 ' ;; "$B3") printf 'B3 ' ;; esac; done | sed 's/ $//')"
note "WAL objects before/after REDUNDANCY 1 (keep:full on B1)" "$wals_before / $(s3ctl "$A_ENV" keys "$BUCKET" main/wals/ | wc -l)"
bc keep-release "$A_ENV" backup-keep --release "$SRC" main "$B1"
bc del-red1b "$A_ENV" backup-delete -r "REDUNDANCY 1" "$SRC" main
left=$(backup_ids "$A_ENV" main | tr '\n' ' ')
fact keep-5 "after backup-keep --release, REDUNDANCY 1 again: only the newest is left" "rc=0 B3" \
    "rc=$RC $(for b in $left; do case $b in "$B1") printf 'B1 ' ;; "$B2") printf 'B2 ' ;; "$B3") printf 'B3 ' ;; esac; done | sed 's/ $//')"
note "WAL objects after the second delete" "$(s3ctl "$A_ENV" keys "$BUCKET" main/wals/ | wc -l)"

# ==== interrupted backups: killed (STARTED) and failed (FAILED) ====================================
say "interrupted backups: barman-cloud-backup killed -9, and PostgreSQL stopped during a backup"
pg_q primary "create table big as select g, repeat('x', 200) as pad from generate_series(1, 600000) g"
# slow_backup NAME: a backup (~150 MB at 10 MB/s) in the background; returns once its upload is
# under way: a new object under main/base/ (barman 3.19 first uploads a STARTED backup.info;
# older releases only the data, as a multipart upload that lists once complete: then after 5 s).
slow_backup() {
    local before deadline
    before=$(s3ctl "$A_ENV" keys "$BUCKET" main/base/ | wc -l)
    as_pg "$A_ENV" -- timeout 300 "$VENV/bin/barman-cloud-backup" --endpoint-url "$URL_A" --immediate-checkpoint \
        --max-bandwidth 10MB -n "$1" -h "$PGT_WORK/sock" -p "$(pg_port primary)" -U postgres "$SRC" main \
        >"$PGT_WORK/log/$1.out" 2>"$PGT_WORK/log/$1.err" &
    SLOW_PID=$!
    deadline=$((SECONDS + 5))
    until [ "$(s3ctl "$A_ENV" keys "$BUCKET" main/base/ | wc -l)" -gt "$before" ] || [ $SECONDS -ge $deadline ]; do
        sleep 0.3
    done
}
all_ids() { # every backup id in backup-list, any status
    bc all-ids "$A_ENV" backup-list --format json "$SRC" main
    "$VENV/bin/python" -c 'import json,sys; [print(b["backup_id"]) for b in json.load(open(sys.argv[1]))["backups_list"]]' \
        "$PGT_WORK/log/all-ids.out"
}
new_status() { # IDS_BEFORE: the status of backups listed now that were not in IDS_BEFORE
    bc status-of "$A_ENV" backup-list --format json "$SRC" main
    "$VENV/bin/python" -c 'import json,sys
before = set(sys.argv[2].split())
print(",".join(b["status"] for b in json.load(open(sys.argv[1]))["backups_list"] if b["backup_id"] not in before) or "not listed")' \
        "$PGT_WORK/log/status-of.out" "$1"
}
before=$(all_ids | tr '\n' ' ')
slow_backup persistctl-killed
sleep 1
mapfile -t victims < <(pgrep -f -- "-n persistctl-killed -h" || true)
kill -9 "${victims[@]}" 2>/dev/null || true
wait "$SLOW_PID" 2>/dev/null || true
fact int-1 "barman-cloud-backup killed -9 during the upload: status in backup-list" "STARTED" "$(new_status "$before")"
note "objects under main/base/ after the kill" "$(s3ctl "$A_ENV" keys "$BUCKET" main/base/ | tr '\n' ' ')"
sleep 1.1
before=$(all_ids | tr '\n' ' ')
slow_backup persistctl-failed
sleep 1
pg_stop primary immediate
rc=0
wait "$SLOW_PID" || rc=$?
fact int-2 "PostgreSQL stopped during barman-cloud-backup: rc, status in backup-list" "rc=1 FAILED" "rc=$rc $(new_status "$before")"
note "failed backup's error" "$(grep ERROR "$PGT_WORK/log/persistctl-failed.err" | tail -n1 | cut -c1-160)"
note "objects under main/base/ after the failure" "$(s3ctl "$A_ENV" keys "$BUCKET" main/base/ | tr '\n' ' ')"
bc failed-list "$A_ENV" backup-list --format json "$SRC" main
note "backup-list statuses, oldest first" "$("$VENV/bin/python" -c 'import json,sys; print(", ".join(b["backup_id"] + " " + b["status"] for b in json.load(open(sys.argv[1]))["backups_list"]))' "$PGT_WORK/log/failed-list.out")"
FAILED_ID=$("$VENV/bin/python" -c 'import json,sys; print("".join(b["backup_id"] for b in json.load(open(sys.argv[1]))["backups_list"] if b["status"] == "FAILED"))' "$PGT_WORK/log/failed-list.out")
for id in latest auto; do
    d=$(pg_dir "failed-$id")
    install -d -o "$PGT_USER" -m 700 "$d"
    bc "failed-restore-$id" "$A_ENV" restore -v "$SRC" main "$id" "$d"
    rc_note "failed-restore-$id"
    chose=$(grep -o 'Restoring from backup_id: [0-9T]*' "$PGT_WORK/log/failed-restore-$id.err" | awk '{print $NF}')
    case $chose in "$B3") chose=DONE ;; "$FAILED_ID") chose=FAILED ;; "") chose=none ;; *) chose="other($chose)" ;; esac
    fact "failed-$id" "restore '$id' when the newest backup is FAILED (an older one STARTED): chosen, rc, PG_VERSION restored" \
        "DONE rc=0 yes" "$chose rc=$RC $([ -f "$d/PG_VERSION" ] && echo yes || echo no)"
done

OK_EXIT=1
timing "facts.sh total" "$(pgt_since "$T_START")"

# ==== report ======================================================================================
echo
echo "== facts (expected: the issue's claim, or what a fail-closed design needs) =="
awk -F'\t' '{ printf "%-12s %-9s %s\n    expected: %s\n    observed: %s\n", $1, $5, $2, $3, $4 }' "$FACTS"
echo
echo "== timings (seconds, this host) =="
awk -F'\t' '{ printf "  %8s  %s\n", $2, $1 }' "$TIMES"
echo
echo "== notes =="
cat "$NOTES"
echo
printf '%s facts: %s OK, %s DIFFERENT\n' "$(wc -l <"$FACTS")" "$(grep -c $'\tOK$' "$FACTS" || true)" "$(grep -c $'\tDIFFERENT$' "$FACTS" || true)"
if [ -n "${FACTS_OUT:-}" ]; then
    cp "$FACTS" "$FACTS_OUT.facts.tsv"
    cp "$TIMES" "$FACTS_OUT.timings.tsv"
    cp "$NOTES" "$FACTS_OUT.notes.txt"
fi
