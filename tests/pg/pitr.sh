#!/usr/bin/env bash
# PostgreSQL PITR through `persistctl preseed` (the barman source), against the real tools: PostgreSQL
# 15, barman-cloud and moto S3 on 127.0.0.1 (tests/pg/setup.sh), with the fake zfs (tests/fakes/zfs:
# datasets are directories; the real-ZFS runs are tests/pg/vm-smoke.sh and the VM suites).
#
#   PERSISTCTL=target/debug/persistctl tests/pg/pitr.sh [WORK]
#
# Prints one line per check and a table; writes WORK/results.tsv (id, expected, observed, verdict);
# exits 1 if any check is DIFFERENT. KILL_TRIALS (default 20) seeded kill -9 trials (KILL_SEED,
# default 11). Every wait has a deadline.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PERSISTCTL=${PERSISTCTL:?set PERSISTCTL to the persistctl binary}
PERSISTCTL=$(readlink -f "$PERSISTCTL")
WORK=${1:-$(mktemp -d /tmp/persistctl-pitr.XXXXXX)}
KILL_TRIALS=${KILL_TRIALS:-20}
KILL_SEED=${KILL_SEED:-11}
mkdir -p "$WORK"
chmod 0755 "$WORK"
PGT_WORK=$WORK/pg
mkdir -p "$PGT_WORK"
chown postgres: "$PGT_WORK"
# shellcheck source=tests/pg/lib.sh
. "$HERE/lib.sh"

RESULTS=$WORK/results.tsv
: >"$RESULTS"
FAILED=0
check() { # id what expected observed
    local verdict=OK
    [ "$3" = "$4" ] || { verdict=DIFFERENT; FAILED=1; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$verdict" >>"$RESULTS"
    printf '%-10s %-9s %s: expected [%s], observed [%s]\n' "$1" "$verdict" "$2" "$3" "$4"
    if [ "$verdict" = DIFFERENT ] && [ -n "${LAB:-}" ] && [ -f "$LAB/preseed.out" ]; then
        grep -v ' INFO ' "$LAB/preseed.out" | tail -n 12 | sed 's/^/    | /'
    fi
}

S3=$WORK/s3
cleanup() {
    set +e
    for d in "$PGT_WORK"/*/; do
        [ -f "$d/PG_VERSION" ] && as_pg -- "$PG_BIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1
    done
    for d in "$WORK"/lab*/persist/postgres-data; do
        [ -f "$d/postmaster.pid" ] && as_pg -- "$PG_BIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1
    done
    bash "$HERE/s3.sh" stop "$S3" >/dev/null 2>&1
}
trap cleanup EXIT
URL=$(bash "$HERE/s3.sh" start "$S3")
ENVF=$S3/env
chmod 0644 "$ENVF"

# ---- the source cluster: rows A, time T, rows B --------------------------------------------------
archive_cmd() { # server-name
    echo "archive_command = '$VENV/bin/barman-cloud-wal-archive --endpoint-url $URL s3://pitr $1 %p'"
}
pg_source_a_t_b src "$ENVF" "$URL" src 60
check base-1 "first base backup" 0 "$BACKUP_RC"

# ---- a lab: the fake pool with tank/persist at LAB/persist -------------------------------------
# lab NAME [postgresql-entry-extra-json] [preseed-extra-json]: writes LAB/config.json and the fake state.
lab() {
    local name=$1 extra=${2:-'{}'} pextra=${3:-'{}'}
    LAB=$WORK/$name
    rm -rf "$LAB"
    mkdir -p "$LAB/persist"
    chmod 0755 "$LAB"
    python3 - "$LAB" "$URL" "$ENVF" "$PG_BIN" "$extra" "$pextra" <<'PY'
import json, sys
lab, url, envf, pgbin, extra, pextra = sys.argv[1:]
preseed = {"enable": True, "sources": ["barman"], "dataMarkers": ["PG_VERSION"], "timeout": 900}
preseed.update(json.loads(pextra))
pg = {"archive": {"destination": "s3://pitr", "serverName": "src", "endpointUrl": url, "environmentFile": envf},
      "binDir": pgbin, "walService": "postgres-wal", "walTimeout": 30}
pg.update(json.loads(extra))
# No owner/mode: the fake zfs' directories are not ZFS, so apply could not set them (it refuses to
# chown what is not a dataset root); the swap copies the restored root's own (postgres, 0700).
own = {}
config = {"version": 1,
          "datasets": {"parentDataset": "tank/persist", "parentMount": lab + "/persist",
                       "services": {"postgres-data": dict(own, preseed=preseed), "postgres-wal": dict(own)}},
          "postgresql": {"postgres-data": pg}}
json.dump(config, open(lab + "/config.json", "w"), indent=1)
state = {"datasets": {"tank": {"local": {"mountpoint": "none"}},
                      "tank/persist": {"local": {"mountpoint": lab + "/persist"}, "mounted": True}}}
json.dump(state, open(lab + "/state.json", "w"))
PY
    : >"$LAB/zfs.log"
}
pc() { # persistctl ARGS... against the current lab
    env PERSISTCTL_ZFS="$ROOT/tests/fakes/zfs" PERSISTCTL_LOCK="$LAB/lock" PERSISTCTL_MOUNTINFO="$LAB/state.json.mountinfo" \
        FAKE_ZFS_STATE="$LAB/state.json" FAKE_ZFS_LOG="$LAB/zfs.log" PERSISTCTL_BARMAN_DIR="$VENV/bin" \
        PATH="/usr/sbin:/usr/bin:/sbin:/bin" "$PERSISTCTL" --config "$LAB/config.json" "$@"
}
preseed() { # [timeout-s]: preseed postgres-data; sets RC; output in LAB/preseed.out
    set +e
    PERSISTCTL_PRESEED_STATUS="$LAB/preseed.json" timeout --kill-after=10 "${1:-600}" env \
        PERSISTCTL_ZFS="$ROOT/tests/fakes/zfs" PERSISTCTL_LOCK="$LAB/lock" PERSISTCTL_MOUNTINFO="$LAB/state.json.mountinfo" \
        FAKE_ZFS_STATE="$LAB/state.json" FAKE_ZFS_LOG="$LAB/zfs.log" PERSISTCTL_BARMAN_DIR="$VENV/bin" \
        PATH="/usr/sbin:/usr/bin:/sbin:/bin" "$PERSISTCTL" --config "$LAB/config.json" preseed postgres-data \
        >"$LAB/preseed.out" 2>&1
    RC=$?
    set -e
}
DATA() { echo "$LAB/persist/postgres-data"; }
# start_restored NAME: start the lab's restored cluster like postgresql.service would (its own port and
# socket in postgresql.auto.conf, as NixOS' store postgresql.conf would give them); sets RC.
start_restored() {
    local name=$1
    ln -sfn "$(DATA)" "$PGT_WORK/$name"
    rm -f "$PGT_WORK/$name.port"
    pg_adopt "$name" </dev/null
    pg_start "$name" "$ENVF" 60
}
rows() { # NAME TABLE: its row count, or "none"
    pg_q "$1" "select count(*) from $2" 2>/dev/null || echo none
}

NOARCHIVE="archive_mode = off"

# ---- latest: A and B -----------------------------------------------------------------------------
lab lab-latest
pc apply >"$LAB/apply.out" 2>&1
t0=$(pgt_now)
preseed
LATEST_S=$(pgt_since "$t0")
check latest-1 "preseed to the end of the archive" 0 "$RC"
ln -sfn "$(DATA)" "$PGT_WORK/rl"; rm -f "$PGT_WORK/rl.port"; echo "$NOARCHIVE" | pg_adopt rl; pg_start rl "$ENVF" 60
check latest-2 "restored cluster starts" 0 "$RC"
check latest-3 "rows A" 1000 "$(rows rl a)"
check latest-4 "rows B" 1000 "$(rows rl b)"
pg_stop rl
# a rerun with the data present skips
preseed
check latest-5 "a rerun with PG_VERSION present" "0 skipped" "$RC $(grep -o 'skipped' "$LAB/preseed.out" | head -1)"

# ---- the S3 server hangs mid-replay: no promoted partial database, preseed fails closed ----------
lab lab-outage '{"walTimeout": 8}'
pc apply >"$LAB/apply.out" 2>&1
preseed 300 &
PRESEED_PID=$!
deadline=$((SECONDS + 120))
until grep -qs 'restored log file' "$(DATA)"/.persistctl-staging-barman-*/recovery.log || [ $SECONDS -ge $deadline ]; do
    sleep 0.1
done
bash "$HERE/s3.sh" freeze "$S3"
wait "$PRESEED_PID" || true
bash "$HERE/s3.sh" thaw "$S3"
RC=$(grep -c '"event":"failed"' "$LAB/preseed.json" 2>/dev/null || true)
check outage-1 "preseed recorded a failure" 1 "$RC"
check outage-2 "no PG_VERSION on the dataset" no "$([ -e "$(DATA)/PG_VERSION" ] && echo yes || echo no)"
check outage-3 "no staging left" 0 "$(find "$(DATA)" "$LAB/persist/postgres-wal" -maxdepth 1 -name '.persistctl-staging-*' | wc -l)"
check outage-4 "the failure says the recovery stopped" 1 "$(grep -q 'recovery stopped' "$LAB/preseed.out" && echo 1)"
check outage-5 "no recovery server left running" 0 "$(pgrep -fc -- "-D $LAB/" || true)"
preseed
check outage-6 "a rerun with the store back restores" 0 "$RC"

# ---- empty bucket, unreachable endpoint ----------------------------------------------------------
bc mk-empty "$ENVF" check-wal-archive s3://empty src
lab lab-empty '{"archive": {"destination": "s3://empty", "serverName": "src", "endpointUrl": "'"$URL"'", "environmentFile": "'"$ENVF"'"}}'
pc apply >"$LAB/apply.out" 2>&1
preseed
check empty-1 "empty bucket, no allowEmptyBootstrap: fails" "1 no DONE" "$RC $(grep -o 'no DONE' "$LAB/preseed.out" | head -1)"
lab lab-empty-ok '{"archive": {"destination": "s3://empty", "serverName": "src", "endpointUrl": "'"$URL"'", "environmentFile": "'"$ENVF"'"}}' '{"allowEmptyBootstrap": true}'
pc apply >"$LAB/apply.out" 2>&1
preseed
check empty-2 "empty bucket with allowEmptyBootstrap: starts empty" "0 0" "$RC $(find "$(DATA)" -mindepth 1 | wc -l)"
CLOSED=$(bash "$HERE/s3.sh" closed-port)
lab lab-down '{"archive": {"destination": "s3://pitr", "serverName": "src", "endpointUrl": "'"$CLOSED"'", "environmentFile": "'"$ENVF"'"}}' '{"allowEmptyBootstrap": true}'
pc apply >"$LAB/apply.out" 2>&1
preseed
check down-1 "unreachable endpoint fails closed even with allowEmptyBootstrap" "1 no" "$RC $([ -e "$(DATA)/PG_VERSION" ] && echo yes || echo no)"
check down-2 "no secret in the output" 0 "$(grep -c "$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' "$ENVF")" "$LAB/preseed.out" "$LAB/preseed.json" | awk -F: '{s += $2} END {print s}')"

# ---- kill -9 trials ------------------------------------------------------------------------------
RANDOM=$KILL_SEED
KILLED_MID=0
KILL_FAIL=0
for trial in $(seq 1 "$KILL_TRIALS"); do
    lab "lab-kill-$trial"
    pc apply >"$LAB/apply.out" 2>&1
    delay=$(awk -v r="$RANDOM" -v d="$LATEST_S" 'BEGIN { printf "%.2f", r / 32767 * d * 1.1 }')
    env PERSISTCTL_PRESEED_STATUS="$LAB/preseed.json" PERSISTCTL_ZFS="$ROOT/tests/fakes/zfs" PERSISTCTL_LOCK="$LAB/lock" \
        PERSISTCTL_MOUNTINFO="$LAB/state.json.mountinfo" FAKE_ZFS_STATE="$LAB/state.json" FAKE_ZFS_LOG="$LAB/zfs.log" \
        PERSISTCTL_BARMAN_DIR="$VENV/bin" "$PERSISTCTL" --config "$LAB/config.json" preseed postgres-data \
        >"$LAB/killed.out" 2>&1 &
    victim=$!
    sleep "$delay"
    if kill -9 "$victim" 2>/dev/null; then KILLED_MID=$((KILLED_MID + 1)); fi
    wait "$victim" 2>/dev/null || true
    sleep 1
    bad=""
    [ "$(pgrep -fc -- "-D $LAB/" || true)" = 0 ] || bad="$bad server-left-running"
    if [ -e "$(DATA)/PG_VERSION" ]; then
        for e in base global pg_wal pg_control_missing; do
            case $e in
                pg_control_missing) [ -f "$(DATA)/global/pg_control" ] || bad="$bad no-pg_control" ;;
                *) [ -e "$(DATA)/$e" ] || bad="$bad PG_VERSION-without-$e" ;;
            esac
        done
        grep -qE '^(restore_command|recovery_target)' "$(DATA)/postgresql.auto.conf" && bad="$bad recovery-settings-left"
    fi
    preseed
    [ "$RC" = 0 ] || bad="$bad rerun-rc-$RC"
    name=k$trial
    ln -sfn "$(DATA)" "$PGT_WORK/$name"; rm -f "$PGT_WORK/$name.port"; echo "$NOARCHIVE" | pg_adopt "$name"
    pg_start "$name" "$ENVF" 60
    got="$(rows "$name" a)/$(rows "$name" b)"
    [ "$got" = 1000/1000 ] || bad="$bad rows-$got"
    pg_stop "$name"
    printf 'kill trial %2d: delay %5ss %s\n' "$trial" "$delay" "${bad:-ok}"
    [ -z "$bad" ] || KILL_FAIL=$((KILL_FAIL + 1))
    rm -rf "$LAB"
done
check kill-1 "kill -9 trials failed (of $KILL_TRIALS; $KILLED_MID killed mid-run)" 0 "$KILL_FAIL"

# ---- 1. to time T: A present, B absent -----------------------------------------------------------
lab lab-t "{\"targetTime\": \"$T\"}"
pc apply >"$LAB/apply.out" 2>&1
preseed
check t-1 "preseed to T" 0 "$RC"
check t-2 "pg_wal on the WAL dataset" "$LAB/persist/postgres-wal/pg_wal" "$(readlink "$(DATA)/pg_wal")"
check t-3 "no recovery settings left" "" "$(grep -E '^(restore_command|recovery_target)' "$(DATA)/postgresql.auto.conf" || true)"
check t-4 "no recovery.signal" no "$([ -e "$(DATA)/recovery.signal" ] && echo yes || echo no)"
check t-5 "cluster state" "shut down" "$(as_pg -- "$PG_BIN/pg_controldata" "$(DATA)" | sed -n 's/^Database cluster state: *//p')"
check t-6 "timeline after the restore" 2 "$(as_pg -- "$PG_BIN/pg_controldata" "$(DATA)" | sed -n "s/^Latest checkpoint's TimeLineID: *//p")"
check t-7 "the pin is recorded" restored "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$LAB/pitr-postgres-data.json" 2>&1)"
bc keep-status "$ENVF" backup-keep --status s3://pitr src "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backupId"])' "$LAB/pitr-postgres-data.json")"
check t-8 "the restored backup is pinned" "Keep: full" "$(tr -d '\n' <"$PGT_WORK/log/keep-status.out")"
# before the restored cluster archives anything, nothing of its timeline is in the archive
bc tl-check "$ENVF" check-wal-archive --timeline 2 s3://pitr src
check t-9 "check-wal-archive --timeline 2 before the first archive" 0 "$RC"
{ echo "archive_mode = on"; echo "wal_level = replica"; archive_cmd src; } >>"$(DATA)/postgresql.auto.conf"
start_restored rt
check t-10 "restored cluster starts" 0 "$RC"
check t-11 "rows A at T" 1000 "$(rows rt a)"
check t-12 "rows B at T" none "$(rows rt b)"
pg_q rt "select pg_switch_wal()" >/dev/null 2>&1 || true
deadline=$((SECONDS + 60))
until [ "$(pg_q rt "select coalesce(last_archived_wal, '') like '00000002%' from pg_stat_archiver")" = t ] ||
    [ $SECONDS -ge $deadline ]; do sleep 0.3; done
check t-13 "the new cluster archives on timeline 2" t "$(pg_q rt "select coalesce(last_archived_wal, '') like '00000002%' from pg_stat_archiver")"
# retention while the restored backup is pinned: REDUNDANCY 1 with a newer backup keeps the pinned one
python3 - "$LAB/config.json" "$PGT_WORK/sock" "$(pg_port rt)" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); pg = c["postgresql"]["postgres-data"]
pg.update({"retention": "REDUNDANCY 1", "socketDir": sys.argv[2], "port": int(sys.argv[3])})
json.dump(c, open(sys.argv[1], "w"))
PY
PINNED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backupId"])' "$LAB/pitr-postgres-data.json")
bc backup2 "$ENVF" backup -h "$PGT_WORK/sock" -p "$(pg_port rt)" -U postgres s3://pitr src
check t-14 "a bare base backup of the restored cluster" 0 "$RC"
set +e; pc pg-retention postgres-data >"$LAB/ret1.out" 2>&1; RET=$?; set -e
check t-15 "pg-retention REDUNDANCY 1 while pinned" 0 "$RET"
bc list-pinned "$ENVF" backup-list --format json s3://pitr src
check t-16 "the pinned backup survives retention" 1 "$(grep -c "$PINNED" "$PGT_WORK/log/list-pinned.out" || true)"
set +e
pc pg-base-backup --if-restored --status-file "$LAB/preseed.json" postgres-data >"$LAB/bb.out" 2>&1; BB=$?
set -e
check t-17 "pg-base-backup --if-restored" 0 "$BB"
check t-18 "which released the pin" 1 "$(grep -c "released the pin on the restored backup $PINNED" "$LAB/bb.out" || true)"
set +e
pc pg-base-backup --if-restored --status-file "$LAB/preseed.json" postgres-data >"$LAB/bb2.out" 2>&1; BB=$?
set -e
check t-19 "a second --if-restored does nothing" "0 1" "$BB $(grep -c 'no restore is waiting' "$LAB/bb2.out" || true)"
set +e; pc pg-retention postgres-data >"$LAB/ret2.out" 2>&1; RET=$?; set -e
check t-20 "pg-retention after the release" 0 "$RET"
bc list-after "$ENVF" backup-list --format json s3://pitr src
check t-21 "the released backup is gone" 0 "$(grep -c "$PINNED" "$PGT_WORK/log/list-after.out" || true)"
pg_stop rt

printf '\npreseed to the end of the archive took %ss\n' "$LATEST_S"
exit "$FAILED"
