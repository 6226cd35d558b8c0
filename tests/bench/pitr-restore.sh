#!/usr/bin/env bash
# Benchmark (issue 11, item 6): a PostgreSQL point-in-time restore of a ~1 GB database from barman-cloud,
# `persistctl preseed` (the barman source) against what an operator would do by hand with the SAME backup.
# Figures, not a pass/fail test. On the host, as root, with the real tools of tests/pg/setup.sh (PostgreSQL
# 15, barman-cloud in the venv, moto S3 on 127.0.0.1) and the fake zfs (datasets are directories, as in
# tests/pg/pitr.sh).
#
#   tests/bench/pitr-restore.sh [WORK]
#   PERSISTCTL=target/release/persistctl ROUNDS=5 tests/bench/pitr-restore.sh
#   SCALE=5 WAL_TX=2000 ROUNDS=1 tests/bench/pitr-restore.sh      (a quick look: ~70 MB)
#
# Setup (once): a cluster of `pgbench -i -s SCALE` (70: ~1.1 GB; loaded with wal_level=minimal so the load's
# WAL is not archived), archiving to moto; one barman-cloud base backup; then `pgbench -t` of WAL_TX
# transactions (2 clients) so the replay has real work (WAL after the backup); the last segment archived;
# stopped. Then ROUNDS rounds (default 3; odd rounds a then b, even rounds b then a), each timing
#   (a) `persistctl preseed postgres-data` (to the end of the archive) into a fresh fake-zfs lab, and
#   (b) by hand: barman-cloud-restore of the same backup into an empty directory, recovery.signal,
#       restore_command = barman-cloud-wal-restore ... %f %p, recovery_target_action = promote,
#       hot_standby = off, archive_mode = off, `pg_ctl -w start`, then postmaster.pid polled every 50 ms
#       until "ready" (pg_ctl -w returns as soon as redo starts: postmaster.pid says "standby" then, also
#       with hot_standby = off), `pg_ctl -m fast -w stop`.
# A `sync` (outside the timings) before each timed run keeps one run's writeback out of the other's time.
# Both end in a cleanly shut-down cluster on timeline 2; every round checks that (pg_controldata), and with
# VERIFY=1 (default) starts both results and compares pgbench_history's rows and the tellers' balance with
# the source's (outside the timings).
#
# Prints per-round figures, medians, the overhead of (a) over (b) (target <= 5 %), where persistctl's time
# goes (its RUST_LOG=debug lines, stamped as they arrive, and the recovery server's own log, which the
# script hard-links before the swap removes it) next to the same phases of (b), and a micro-benchmark of one
# WAL fetch through `persistctl pg-wal-restore` vs bare barman-cloud-wal-restore (MICRO pairs, default 10),
# and of the wrapper alone around a stub that sleeps STUB_S (default 0.7 s; 2 x MICRO pairs).
#
# Environment: PERSISTCTL (default: `cargo build --release` here), ROUNDS, SCALE, WAL_TX, MICRO, VERIFY,
# PRESEED_TIMEOUT (s, default 1800: every wait has a deadline), KEEP_WORK=1 (keep the clusters; the logs,
# WORK/results.tsv and WORK/phases.tsv are always kept; WORK defaults to a new /var/tmp directory, ~2.5 GB
# while it runs). Uses its own ports, sockets and moto (other runs may share the machine); stops its
# servers and moto on exit. Runtime on the 2-core host at load ~3: ~1.5 min setup, ~45 s micro-benchmarks,
# ~75 s a round (~5-6 min with the default 3 rounds).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "pitr-restore.sh: run as root (the clusters run as postgres)" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-70}
WAL_TX=${WAL_TX:-30000}
MICRO=${MICRO:-10}
VERIFY=${VERIFY:-1}
PRESEED_TIMEOUT=${PRESEED_TIMEOUT:-1800}
CLIENTS=2
if [ -z "${PERSISTCTL:-}" ]; then
    (cd "$ROOT" && cargo build --quiet --release --bin persistctl)
    PERSISTCTL=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/persistctl
fi
PERSISTCTL=$(readlink -f "$PERSISTCTL")
WORK=${1:-$(mktemp -d /var/tmp/persistctl-bench-pitr.XXXXXX)}
mkdir -p "$WORK"
chmod 0755 "$WORK"
PGT_WORK=$WORK/pg
mkdir -p "$PGT_WORK"
chown postgres: "$PGT_WORK"
# shellcheck source=tests/pg/lib.sh
. "$ROOT/tests/pg/lib.sh"
# shellcheck disable=SC2034 # read by lib.sh's bc
BC_TIMEOUT=$PRESEED_TIMEOUT
RESULTS=$WORK/results.tsv
S3=$WORK/s3
BUCKET=s3://bench
SERVER=src
T_START=$SECONDS

say() { printf '%s\n' "$*"; }
load1() { cut -d' ' -f1 /proc/loadavg; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

PRESEED_PID=
cleanup() {
    set +e
    # timeout(1) passes TERM on to persistctl, whose recovery server dies with it (pdeathsig)
    [ -n "$PRESEED_PID" ] && kill -TERM "$PRESEED_PID" 2>/dev/null && sleep 2
    for d in "$PGT_WORK"/*/ "$WORK"/lab-*/persist/postgres-data/ "$WORK"/lab-*/persist/postgres-data/.persistctl-staging-*/data/; do
        [ -f "$d/postmaster.pid" ] && as_pg -- "$PG_BIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1
    done
    bash "$ROOT/tests/pg/s3.sh" stop "$S3" >/dev/null 2>&1
    if [ "${KEEP_WORK:-0}" != 1 ]; then
        rm -rf "$PGT_WORK"/src "$PGT_WORK"/bare-*/ "$PGT_WORK"/v-* "$WORK"/lab-*/persist
    fi
    say "work directory (logs, results.tsv): $WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# until_true SECS WHAT CMD...: runs CMD every 0.3 s until it succeeds; fails after SECS.
until_true() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
        [ $SECONDS -lt $deadline ] || { say "timed out waiting for $what" >&2; return 1; }
        sleep 0.3
    done
}

say "== pitr-restore benchmark: scale $SCALE, $WAL_TX transactions after the base backup, $ROUNDS round(s)"
say "== host: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg); $("$PG_BIN/postgres" --version); barman $("$VENV/bin/barman-cloud-restore" --version 2>&1 | tail -1)"
say "== persistctl: $PERSISTCTL"

# ---- setup: moto, the source cluster, one base backup, WAL after it ------------------------------
URL=$(bash "$ROOT/tests/pg/s3.sh" start "$S3")
ENVF=$S3/env
chmod 0644 "$ENVF"
bc mk "$ENVF" check-wal-archive "$BUCKET" "$SERVER"
[ "$RC" = 0 ] || { say "check-wal-archive failed: $(cat "$PGT_WORK/log/mk.err")"; exit 1; }
t=$EPOCHREALTIME
{
    echo "wal_level = replica"
    echo "archive_mode = on"
    echo "archive_command = '$VENV/bin/barman-cloud-wal-archive --endpoint-url $URL $BUCKET $SERVER %p'"
} | pg_init src
# The load itself runs with wal_level = minimal (pgbench -i's COPY then writes no WAL): not saved in the
# cluster's postgresql.conf, so the restores see the defaults.
as_pg "$ENVF" -- "$PG_BIN/pg_ctl" -D "$(pg_dir src)" -l "$PGT_WORK/src.log" -w -t 120 \
    -o "-c wal_level=minimal -c archive_mode=off -c max_wal_senders=0 -c max_wal_size=8GB" start >/dev/null
as_pg -- timeout "$PRESEED_TIMEOUT" "$PG_BIN/pgbench" -h "$PGT_WORK/sock" -p "$(pg_port src)" -U postgres -i -q \
    -s "$SCALE" postgres >"$PGT_WORK/log/pgbench-init.log" 2>&1
pg_stop src
pg_start src "$ENVF" 120
[ "$RC" = 0 ] || { say "the source would not start: $(tail -5 "$PGT_WORK/src.log")"; exit 1; }
DB_SIZE=$(pg_q src "select pg_size_pretty(pg_database_size('postgres'))")
say "setup: pgbench -i -s $SCALE: $(secs "$t" "$EPOCHREALTIME") s, database $DB_SIZE, PGDATA $(du -sh "$(pg_dir src)" | cut -f1)"
t=$EPOCHREALTIME
bc backup "$ENVF" backup --immediate-checkpoint -h "$PGT_WORK/sock" -p "$(pg_port src)" -U postgres "$BUCKET" "$SERVER"
[ "$RC" = 0 ] || { say "barman-cloud-backup failed: $(tail -5 "$PGT_WORK/log/backup.err")"; exit 1; }
say "setup: barman-cloud-backup: $DUR s"
t=$EPOCHREALTIME
as_pg -- timeout "$PRESEED_TIMEOUT" "$PG_BIN/pgbench" -h "$PGT_WORK/sock" -p "$(pg_port src)" -U postgres -n \
    -c "$CLIENTS" -j "$CLIENTS" -t $((WAL_TX / CLIENTS)) postgres >"$PGT_WORK/log/pgbench-run.log" 2>&1
say "setup: pgbench -t $((WAL_TX / CLIENTS)) x $CLIENTS clients: $(secs "$t" "$EPOCHREALTIME") s ($(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$PGT_WORK/log/pgbench-run.log" | head -1) tps)"
pg_q src "select pg_switch_wal()" >/dev/null
archived() {
    [ "$(pg_q src "select last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1) from pg_stat_archiver")" = t ]
}
if ! until_true 600 "the last WAL segment to be archived" archived; then
    pg_q src "select * from pg_stat_archiver" || true
    ps -o pid,etime,args --ppid "$(head -1 "$(pg_dir src)/postmaster.pid")" || true
    bash "$ROOT/tests/pg/s3.sh" status "$S3" || true
    exit 1
fi
WANT_HISTORY=$(pg_q src "select count(*) from pgbench_history")
WANT_TBAL=$(pg_q src "select sum(tbalance) from pgbench_tellers")
LAST_WAL=$(pg_q src "select last_archived_wal from pg_stat_archiver")
pg_stop src
bc list "$ENVF" backup-list --format json "$BUCKET" "$SERVER"
read -r BACKUP_ID BEGIN_WAL < <(python3 -c 'import json,sys
b = [x for x in json.load(open(sys.argv[1]))["backups_list"] if x["status"] == "DONE"][-1]
print(b["backup_id"], b["begin_wal"])' "$PGT_WORK/log/list.out")
SEGS=$(python3 -c 'import sys; a, b = (int(x[8:16], 16) * 256 + int(x[16:], 16) for x in sys.argv[1:]); print(b - a + 1)' \
    "$BEGIN_WAL" "$LAST_WAL")
say "setup: backup $BACKUP_ID, WAL $BEGIN_WAL .. $LAST_WAL ($SEGS segments to replay); pgbench_history $WANT_HISTORY rows"
say "setup: $((SECONDS - T_START)) s in all"

# ---- (a) persistctl preseed into a fake-zfs lab (as tests/pg/pitr.sh) ------------------------------
lab() {
    LAB=$WORK/$1
    rm -rf "$LAB"
    mkdir -p "$LAB/persist"
    chmod 0755 "$LAB"
    python3 - "$LAB" "$URL" "$ENVF" "$PG_BIN" "$PRESEED_TIMEOUT" "$BUCKET" "$SERVER" <<'PY'
import json, sys
lab, url, envf, pgbin, timeout, bucket, server = sys.argv[1:]
preseed = {"enable": True, "sources": ["barman"], "dataMarkers": ["PG_VERSION"], "timeout": int(timeout)}
pg = {"archive": {"destination": bucket, "serverName": server, "endpointUrl": url, "environmentFile": envf},
      "binDir": pgbin, "walService": "postgres-wal", "walTimeout": 300}
config = {"version": 1,
          "datasets": {"parentDataset": "tank/persist", "parentMount": lab + "/persist",
                       "services": {"postgres-data": {"preseed": preseed}, "postgres-wal": {}}},
          "postgresql": {"postgres-data": pg}}
json.dump(config, open(lab + "/config.json", "w"), indent=1)
state = {"datasets": {"tank": {"local": {"mountpoint": "none"}},
                      "tank/persist": {"local": {"mountpoint": lab + "/persist"}, "mounted": True}}}
json.dump(state, open(lab + "/state.json", "w"))
PY
    : >"$LAB/zfs.log"
}
pc() {
    env PERSISTCTL_ZFS="$ROOT/tests/fakes/zfs" PERSISTCTL_LOCK="$LAB/lock" PERSISTCTL_MOUNTINFO="$LAB/state.json.mountinfo" \
        FAKE_ZFS_STATE="$LAB/state.json" FAKE_ZFS_LOG="$LAB/zfs.log" PERSISTCTL_BARMAN_DIR="$VENV/bin" \
        PERSISTCTL_PRESEED_STATUS="$LAB/preseed.json" PATH="/usr/sbin:/usr/bin:/sbin:/bin" \
        "$PERSISTCTL" --config "$LAB/config.json" "$@"
}
# Each line of stdin with the wall-clock time it arrived (persistctl stamps nothing when not on a tty);
# "ready" on the first line once it runs, so the first lines are not stamped late.
# shellcheck disable=SC2016 # perl code
STAMP='$| = 1; printf "%.6f ready\n", time; while (<STDIN>) { printf "%.6f %s", time, $_ }'
# The recovery server logs into the staging directory, which the swap removes: keep a hard link.
keep_recovery_log() {
    local deadline=$((SECONDS + PRESEED_TIMEOUT)) f
    while [ $SECONDS -lt $deadline ]; do
        for f in "$LAB"/persist/postgres-data/.persistctl-staging-barman-*/recovery.log; do
            [ -e "$f" ] && ln "$f" "$LAB/recovery.log" 2>/dev/null && return 0
        done
        sleep 0.05
    done
}
run_a() { # round
    lab "lab-$1"
    pc apply >"$LAB/apply.log" 2>&1 || { say "apply failed:"; cat "$LAB/apply.log"; exit 1; }
    keep_recovery_log &
    local keeper=$! stamper t0 t1 rc
    rm -f "$LAB/out.fifo"
    mkfifo "$LAB/out.fifo"
    perl -MTime::HiRes=time -e "$STAMP" <"$LAB/out.fifo" >"$LAB/preseed.log" &
    stamper=$!
    exec 9>"$LAB/out.fifo" # (opening the fifo waits for the reader)
    until_true 60 "the time stamper" test -s "$LAB/preseed.log"
    LOAD_A=$(load1)
    t0=$EPOCHREALTIME
    timeout --kill-after=10 "$PRESEED_TIMEOUT" env RUST_LOG=debug \
        PERSISTCTL_ZFS="$ROOT/tests/fakes/zfs" PERSISTCTL_LOCK="$LAB/lock" PERSISTCTL_MOUNTINFO="$LAB/state.json.mountinfo" \
        FAKE_ZFS_STATE="$LAB/state.json" FAKE_ZFS_LOG="$LAB/zfs.log" PERSISTCTL_BARMAN_DIR="$VENV/bin" \
        PERSISTCTL_PRESEED_STATUS="$LAB/preseed.json" PATH="/usr/sbin:/usr/bin:/sbin:/bin" \
        "$PERSISTCTL" --config "$LAB/config.json" preseed postgres-data >&9 2>&1 &
    PRESEED_PID=$!
    exec 9>&-
    rc=0
    wait "$PRESEED_PID" || rc=$?
    t1=$EPOCHREALTIME
    PRESEED_PID=
    wait "$stamper" || true
    kill "$keeper" 2>/dev/null || true
    wait "$keeper" 2>/dev/null || true
    printf '%s %s\n' "$t0" "$t1" >"$LAB/times"
    A_S=$(secs "$t0" "$t1")
    [ "$rc" = 0 ] || { say "round $1: persistctl preseed failed (rc $rc):"; tail -20 "$LAB/preseed.log"; exit 1; }
    A_CTL=$(control "$LAB/persist/postgres-data")
}

# ---- (b) by hand ---------------------------------------------------------------------------------
run_b() { # round
    local name=bare-$1 dir port t0 t1 t2 t3 t4
    dir=$(pg_dir "$name")
    rm -rf "$dir"
    port=$(free_port)
    echo "$port" >"$PGT_WORK/$name.port"
    : >"$PGT_WORK/$name.log"
    chown postgres: "$PGT_WORK/$name.log"
    LOAD_B=$(load1)
    t0=$EPOCHREALTIME
    bc "$name-restore" "$ENVF" restore "$BUCKET" "$SERVER" "$BACKUP_ID" "$dir"
    [ "$RC" = 0 ] || { say "round $1: barman-cloud-restore failed: $(tail -5 "$PGT_WORK/log/$name-restore.err")"; exit 1; }
    t1=$EPOCHREALTIME
    {
        echo "port = $port"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$PGT_WORK/sock'"
        echo "archive_mode = off"
        echo "hot_standby = off"
        echo "restore_command = '$VENV/bin/barman-cloud-wal-restore --endpoint-url $URL $BUCKET $SERVER %f %p'"
        echo "recovery_target_action = 'promote'"
    } >>"$dir/postgresql.auto.conf"
    : >"$dir/recovery.signal"
    chown postgres: "$dir/recovery.signal"
    t2=$EPOCHREALTIME
    # pg_ctl -w returns once the server is in recovery (postmaster.pid says "standby", also with
    # hot_standby = off), not once it has promoted: then wait for "ready" as an operator's script would.
    pg_start "$name" "$ENVF" "$PRESEED_TIMEOUT"
    [ "$RC" = 0 ] || { say "round $1: pg_ctl start failed: $(tail -5 "$PGT_WORK/$name.log")"; exit 1; }
    promoted "$dir" || { say "round $1: the manual recovery did not promote: $(tail -5 "$PGT_WORK/$name.log")"; exit 1; }
    t3=$EPOCHREALTIME
    as_pg -- "$PG_BIN/pg_ctl" -D "$dir" -m fast -w -t 300 stop >/dev/null
    t4=$EPOCHREALTIME
    printf '%s %s %s %s %s\n' "$t0" "$t1" "$t2" "$t3" "$t4" >"$PGT_WORK/$name.times"
    B_S=$(secs "$t0" "$t4")
    B_CTL=$(control "$dir")
}

# promoted PGDATA: polls postmaster.pid every 50 ms (builtins only) until its status line says "ready";
# fails when the server stops first or after PRESEED_TIMEOUT.
promoted() {
    local deadline=$((SECONDS + PRESEED_TIMEOUT)) lines
    while [ $SECONDS -lt $deadline ]; do
        mapfile -t -n 8 lines <"$1/postmaster.pid" 2>/dev/null || return 1
        [[ ${lines[7]:-} == ready* ]] && return 0
        sleep 0.05
    done
    return 1
}

control() { # PGDATA: "state|timeline|checkpoint"
    as_pg -- "$PG_BIN/pg_controldata" "$1" | awk -F': *' '
        /^Database cluster state/ { s = $2 } /^Latest checkpoint.s TimeLineID/ { t = $2 }
        /^Latest checkpoint location/ { c = $2 } END { print s "|" t "|" c }'
}

# verify NAME PGDATA: start it (no archiving), compare with the source, stop it; prints "ok" or what differs.
verify() {
    local name=$1 got
    ln -sfn "$2" "$PGT_WORK/$name"
    rm -f "$PGT_WORK/$name.port"
    echo "archive_mode = off" | pg_adopt "$name"
    pg_start "$name" "" 120
    if [ "$RC" != 0 ]; then echo "would not start"; return 0; fi
    got="$(pg_q "$name" "select count(*) from pgbench_history")/$(pg_q "$name" "select sum(tbalance) from pgbench_tellers")"
    pg_stop "$name"
    if [ "$got" = "$WANT_HISTORY/$WANT_TBAL" ]; then echo ok; else echo "DIFFERENT ($got, want $WANT_HISTORY/$WANT_TBAL)"; fi
}

# ---- micro-benchmark: one WAL fetch, through the wrapper and bare --------------------------------
MID_WAL=$(python3 -c 'import sys; a = sys.argv[1]; n = int(a[8:16], 16) * 256 + int(a[16:], 16) + int(sys.argv[2]) // 2
print("%s%08X%08X" % (a[:8], n // 256, n % 256))' "$BEGIN_WAL" "$SEGS")
: >"$WORK/micro.tsv"
for _ in $(seq 1 "$MICRO"); do
    rm -f "$PGT_WORK/micro.wal"
    t0=$EPOCHREALTIME
    as_pg "$ENVF" -- env PERSISTCTL_BARMAN_DIR="$VENV/bin" timeout 300 "$VENV/bin/barman-cloud-wal-restore" \
        --endpoint-url "$URL" "$BUCKET" "$SERVER" "$MID_WAL" "$PGT_WORK/micro.wal"
    t1=$EPOCHREALTIME
    rm -f "$PGT_WORK/micro.wal"
    as_pg "$ENVF" -- env PERSISTCTL_BARMAN_DIR="$VENV/bin" timeout 300 "$PERSISTCTL" pg-wal-restore \
        --destination "$BUCKET" --server-name "$SERVER" --endpoint-url "$URL" --timeout 300 "$MID_WAL" "$PGT_WORK/micro.wal"
    t2=$EPOCHREALTIME
    printf '%s\t%s\n' "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" >>"$WORK/micro.tsv"
done
rm -f "$PGT_WORK/micro.wal"
# The same through a stub barman-cloud-wal-restore that only sleeps STUB_S (about one real fetch): what
# the wrapper itself adds (persistctl's start, child::run's polling), without S3's noise.
STUB=$WORK/stub
mkdir -p "$STUB"
printf '#!/bin/sh\nexec sleep %s\n' "${STUB_S:-0.7}" >"$STUB/barman-cloud-wal-restore"
chmod 0755 "$STUB" "$STUB/barman-cloud-wal-restore"
: >"$WORK/micro-stub.tsv"
for _ in $(seq 1 $((MICRO * 2))); do
    t0=$EPOCHREALTIME
    as_pg -- env PERSISTCTL_BARMAN_DIR="$STUB" timeout 300 "$STUB/barman-cloud-wal-restore" "$MID_WAL" "$PGT_WORK/micro.wal"
    t1=$EPOCHREALTIME
    as_pg -- env PERSISTCTL_BARMAN_DIR="$STUB" timeout 300 "$PERSISTCTL" pg-wal-restore \
        --destination "$BUCKET" --server-name "$SERVER" --timeout 300 "$MID_WAL" "$PGT_WORK/micro.wal"
    t2=$EPOCHREALTIME
    printf '%s\t%s\n' "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" >>"$WORK/micro-stub.tsv"
done

# ---- the rounds ----------------------------------------------------------------------------------
printf 'round\torder\tpersistctl_s\tbare_s\toverhead_pct\tload_a\tload_b\tcheck\n' >"$RESULTS"
# Before each timed run, the previous one's gigabyte (and the last round's removals) are written out, so
# that neither run pays for the other's writeback.
settle() { timeout 120 sync || true; }
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
        order=ab; settle; run_a "$r"; settle; run_b "$r"
    else
        order=ba; settle; run_b "$r"; settle; run_a "$r"
    fi
    check="a=$A_CTL b=$B_CTL"
    # (the checkpoint LSNs may differ: autovacuum can write WAL after the promotion)
    a_tl=${A_CTL#*|} b_tl=${B_CTL#*|}
    if [ "${A_CTL%%|*}" != "shut down" ] || [ "${B_CTL%%|*}" != "shut down" ] || [ "${a_tl%%|*}" != "${b_tl%%|*}" ]; then
        check="$check DIFFERENT"
    fi
    if [ "$VERIFY" = 1 ]; then
        check="$check verify a:$(verify "v-a-$r" "$LAB/persist/postgres-data") b:$(verify "v-b-$r" "$(pg_dir "bare-$r")")"
    fi
    ovh=$(awk -v a="$A_S" -v b="$B_S" 'BEGIN { printf "%+.1f", 100 * (a - b) / b }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$order" "$A_S" "$B_S" "$ovh" "$LOAD_A" "$LOAD_B" "$check" >>"$RESULTS"
    say "round $r ($order): persistctl $A_S s, by hand $B_S s, overhead $ovh % (load $LOAD_A / $LOAD_B); $check"
    if [ "${KEEP_WORK:-0}" != 1 ]; then
        rm -rf "$LAB/persist" "$(pg_dir "bare-$r")"
    fi
done

# ---- figures and where the time goes -------------------------------------------------------------
python3 - "$WORK" "$ROUNDS" "$SEGS" <<'PY'
import datetime, os, re, statistics, sys
work, rounds, segs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
med = statistics.median

def pg_log(path):
    """(epoch, message) of a PostgreSQL log with the default log_line_prefix '%m [%p] '."""
    out = []
    for line in open(path, errors="replace"):
        m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (UTC|GMT) \[\d+\] (.*)", line)
        if m:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
            out.append((t.timestamp(), m.group(3)))
    return out

def server(path):
    """first line, promoted (ready), fast shutdown request, shut down; segments restored; 'not there' answers."""
    ev = pg_log(path)
    at = lambda needle: [t for t, msg in ev if needle in msg]
    text = open(path, errors="replace").read()
    return (ev[0][0], at("database system is ready to accept connections")[0], at("received fast shutdown request")[0],
            at("database system is shut down")[-1], len(at("restored log file")),
            text.count("not in the archive"), text.count("does not exist"))

# The phases, in order; a phase only one side has shows "-" on the other.
P_START = "persistctl: process start, config, lock, first zfs reads"
P_ZFS = "persistctl: zfs calls (fake zfs: one Python process each) + work between them"
P_LIST = "persistctl: barman-cloud-backup-list (choose the DONE backup)"
P_PRE = "persistctl: barman-cloud-wal-restore of the first WAL (pre-flight)"
P_KEEP = "persistctl: barman-cloud-backup-keep (the pin)"
P_REST = "barman-cloud-restore + recovery settings + server launch, to its first log line"
P_REC = "recovery server: first log line -> promoted (WAL replay, end-of-recovery checkpoint)"
P_POLL = "promoted -> fast shutdown request (a: wait_promoted's 200 ms poll; b: a 50 ms poll, pg_ctl stop)"
P_SHUT = "fast shutdown (shutdown checkpoint)"
P_AFTER = "a: pg_controldata, settings reset, pg_wal move, verify (syncfs); b: pg_ctl stop -w noticing"
P_SWAP = "persistctl: swap (renames), then its zfs set, staging removal, report, exit"
ORDER = [P_START, P_ZFS, P_LIST, P_PRE, P_KEEP, P_REST, P_REC, P_POLL, P_SHUT, P_AFTER, P_SWAP]
KIND = {"barman-cloud-backup-list": P_LIST, "barman-cloud-wal-restore": P_PRE, "barman-cloud-backup-keep": P_KEEP,
        "barman-cloud-restore": P_REST, "zfs": P_ZFS}
rows = {p: ([], []) for p in ORDER}
totals_a, totals_b, calls_a, calls_b, zfs_calls, other = [], [], [], [], [], set()
for r in range(1, rounds + 1):
    lab = f"{work}/lab-{r}"
    t0, t1 = map(float, open(f"{lab}/times").read().split())
    totals_a.append(t1 - t0)
    start, ready, req, down, restored, missing, _ = server(f"{lab}/recovery.log")
    calls_a.append((restored, missing))
    marks = [(start, P_REC), (ready, P_POLL), (req, P_SHUT), (down, P_AFTER)]
    nzfs = 0
    for line in open(f"{lab}/preseed.log", errors="replace"):
        t, _, text = line.partition(" ")
        m = re.search(r"command=\"?([^ \"]+)", text)
        if "running" in text and m:
            prog = os.path.basename(m.group(1))
            nzfs += prog == "zfs"
            if prog not in KIND:
                other.add(prog)
            marks.append((float(t), KIND.get(prog, P_ZFS)))
        elif re.search(r"moved \d+ entries", text):
            marks.append((float(t), P_SWAP))
    zfs_calls.append(nzfs)
    marks.sort()
    acc = dict.fromkeys(ORDER, 0.0)
    prev_t, prev_p, swapped = t0, P_START, False
    for t, p in marks + [(t1, None)]:
        swapped = swapped or prev_p == P_SWAP  # the zfs set after the swap's renames is the swap's
        acc[P_SWAP if swapped else prev_p] += max(0.0, t - prev_t)
        prev_t, prev_p = t, p
    for p, v in acc.items():
        rows[p][0].append(v)
    b0, b1, b2, b3, b4 = map(float, open(f"{work}/pg/bare-{r}.times").read().split())
    totals_b.append(b4 - b0)
    start, ready, req, down, restored, _, missing = server(f"{work}/pg/bare-{r}.log")
    calls_b.append((restored, missing))
    for p, v in [(P_REST, start - b0), (P_REC, ready - start), (P_POLL, req - ready), (P_SHUT, down - req), (P_AFTER, b4 - down)]:
        rows[p][1].append(v)

with open(f"{work}/phases.tsv", "w") as out:
    out.write("phase\t" + "\t".join(f"a{r}\tb{r}" for r in range(1, rounds + 1)) + "\n")
    for p in ORDER:
        pa, pb = rows[p]
        out.write(p + "\t" + "\t".join(f"{pa[i]:.3f}\t{pb[i] if pb else 0:.3f}" for i in range(rounds)) + "\n")
FIXED = [P_START, P_ZFS, P_LIST, P_PRE, P_KEEP]
TAIL = [P_POLL, P_SHUT, P_AFTER, P_SWAP]
print()
print("## per round (s): a = persistctl, b = by hand")
print(f"{'round':>5} {'side':>4} {'before the restore':>18} {'restore':>8} {'replay':>7} {'after promotion':>15} {'total':>7}  segments/s")
for i in range(rounds):
    for side, col, total in (("a", 0, totals_a[i]), ("b", 1, totals_b[i])):
        get = lambda p: rows[p][col][i] if rows[p][col] else 0.0
        fixed, rest, rep = sum(get(p) for p in FIXED), get(P_REST), get(P_REC)
        tail = sum(get(p) for p in TAIL)
        n = (calls_a if side == "a" else calls_b)[i][0]
        print(f"{i + 1:>5} {side:>4} {fixed:>18.2f} {rest:>8.2f} {rep:>7.2f} {tail:>15.2f} {total:>7.2f}  {n / rep:.2f}")
print()
print("## totals (s)")
print(f"{'round':>6} {'persistctl':>11} {'by hand':>8} {'overhead':>9}")
for r in range(rounds):
    print(f"{r + 1:>6} {totals_a[r]:>11.2f} {totals_b[r]:>8.2f} {100 * (totals_a[r] - totals_b[r]) / totals_b[r]:>+8.1f}%")
ma, mb = med(totals_a), med(totals_b)
paired = med([100 * (a - b) / b for a, b in zip(totals_a, totals_b)])
print(f"{'median':>6} {ma:>11.2f} {mb:>8.2f} {100 * (ma - mb) / mb:>+8.1f}%   (median of the rounds' overheads {paired:+.1f} %; target <= 5 %)")
print()
print(f"## where the time goes (median per phase over {rounds} round(s), s; the medians need not add up)")
w = max(map(len, ORDER))
print(f"{'phase':<{w}} {'persistctl':>10} {'by hand':>8} {'diff':>7}")
for p in ORDER:
    pa, pb = rows[p]
    fa = med(pa) if any(pa) else None
    fb = med(pb) if pb else None
    d = (fa or 0) - (fb or 0)
    print(f"{p:<{w}} {'-' if fa is None else f'{fa:.2f}':>10} {'-' if fb is None else f'{fb:.2f}':>8} {d:>+7.2f}")
print(f"{'total':<{w}} {ma:>10.2f} {mb:>8.2f} {ma - mb:>+7.2f}")
print()
print(f"restore_command calls per recovery (round 1): persistctl {calls_a[0][0]} segments + {calls_a[0][1]} 'not in the archive'; "
      f"by hand {calls_b[0][0]} segments + {calls_b[0][1]} 'does not exist' ({segs} segments from the backup's first WAL to the last archived)")
print(f"fake zfs calls per preseed: {zfs_calls[0]}" + (f"; other commands seen: {sorted(other)}" if other else ""))
micro = [tuple(map(float, l.split())) for l in open(f"{work}/micro.tsv") if l.strip()]
if micro:
    b, a = med([m[0] for m in micro]), med([m[1] for m in micro])
    print(f"one 16 MiB WAL fetch, {len(micro)} pairs: bare barman-cloud-wal-restore median {b:.3f} s, through persistctl "
          f"pg-wal-restore {a:.3f} s: {1000 * (a - b):+.0f} ms a call")
stub = [tuple(map(float, l.split())) for l in open(f"{work}/micro-stub.tsv") if l.strip()]
if stub:
    b, a = med([m[0] for m in stub]), med([m[1] for m in stub])
    print(f"the wrapper alone ({len(stub)} pairs, a stub barman-cloud-wal-restore that sleeps): bare {b:.3f} s, through "
          f"persistctl pg-wal-restore {a:.3f} s: {1000 * (a - b):+.0f} ms a call "
          f"(min {1000 * (min(m[1] for m in stub) - min(m[0] for m in stub)):+.0f} ms)")
PY
say "load at the end: $(cut -d' ' -f1-3 /proc/loadavg); the benchmark took $((SECONDS - T_START)) s"
