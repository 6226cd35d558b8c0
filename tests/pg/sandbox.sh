#!/usr/bin/env bash
# WAL archiving and restore under a stand-in for nixpkgs' postgresql.service sandbox (issue 11):
# the seccomp filters, NoNewPrivileges, empty capability bounding set, MemoryDenyWriteExecute and
# mount namespace systemd v257/v258 would give the unit (tests/pg/sandbox_exec.py builds them and
# execs the command, so everything it starts inherits them as under systemd). Under it, as the
# postgres user, against moto on 127.0.0.1: barman-cloud-check-wal-archive, barman-cloud-wal-archive
# of a real WAL segment, barman-cloud-wal-restore of it, `persistctl pg-wal-restore` (found / not
# found), a whole PostgreSQL 15 (initdb included, as NixOS' preStart runs it in the unit) archiving
# with archive_command = barman-cloud-wal-archive, and a point-in-time restore whose recovery runs
# under the sandbox with restore_command = persistctl pg-wal-restore. Also: a probe of what is in
# force (and that forbidden calls are killed), a syscall census of the clients under strace checked
# against the allow-list, systemd's seccomp MemoryDenyWriteExecute variant, and a control that is
# killed by SIGSYS, diagnosed, and fixed by a systemCallFilter entry (so the machinery can fail).
#
#   tests/pg/setup.sh && tests/pg/sandbox.sh
#
# Root (the sandbox is built as systemd builds it, then drops to postgres). Installs python3-seccomp
# and strace when missing (apt, with a deadline). PERSISTCTL=path (default target/debug/persistctl
# of this checkout; built with `cargo build` when missing). SANDBOX_FILTER="@system-service
# ~@privileged ~@resources" (the unit's SystemCallFilter= lines, space-separated) tries another
# filter. Work directory: a fresh /var/lib/persistctl-sandbox.XXXXXX (not under /tmp: PrivateTmp
# hides it), removed unless SANDBOX_KEEP=1 or something failed. Own moto server and ports.
# Prints a table; exit 0 when every row is OK, 1 when one is not (e.g. the archiver or a restore
# failed under the sandbox), 2 when the run itself broke. 45 s on an idle 2-core host (100 s loaded).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "sandbox.sh: run as root" >&2; exit 2; }
WORK_ROOT=$(mktemp -d /var/lib/persistctl-sandbox.XXXXXX)
PGT_WORK=$WORK_ROOT/rw
# shellcheck source=tests/pg/lib.sh
. "$HERE/lib.sh"
S3SH=$HERE/s3.sh
BC_TIMEOUT=${BC_TIMEOUT:-120}
T_START=$(pgt_now)
say() { printf '[sandbox +%5ss] %s\n' "$(pgt_since "$T_START")" "$*"; }
die() { echo "sandbox.sh: $*" >&2; exit 2; }

if [ ! -x "$VENV/bin/barman-cloud-wal-archive" ] || [ ! -x "$PG_BIN/postgres" ]; then
    die "run tests/pg/setup.sh first"
fi

# ---- what this needs ---------------------------------------------------------------------------
missing=()
/usr/bin/python3 -c 'import seccomp' 2>/dev/null || missing+=(python3-seccomp)
command -v strace >/dev/null || missing+=(strace)
if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    APT=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::http::Timeout=60 -o APT::Install-Recommends=false -y -q)
    export DEBIAN_FRONTEND=noninteractive
    timeout 900 "${APT[@]}" install "${missing[@]}" >/dev/null 2>&1 ||
        { timeout 900 "${APT[@]}" update >/dev/null && timeout 900 "${APT[@]}" install "${missing[@]}" >/dev/null; } ||
        die "could not install ${missing[*]}"
fi
PERSISTCTL=${PERSISTCTL:-$REPO/target/debug/persistctl}
if [ ! -x "$PERSISTCTL" ]; then
    say "cargo build (persistctl)"
    (cd "$REPO" && timeout 1800 cargo build --quiet --bin persistctl) || die "cargo build failed"
fi

# ---- work directory ------------------------------------------------------------------------------
# rw/: the unit's ReadWritePaths= (PGDATA, sockets, logs); ro/: owned by postgres but outside it
# (the probe shows ProtectSystem=strict); bin/: the helper and persistctl, read-only to the service
# as /nix/store is (and not under /root or /home, which ProtectHome hides).
chmod 755 "$WORK_ROOT"
install -d -o "$PGT_USER" -g "$PGT_USER" -m 755 "$PGT_WORK" "$WORK_ROOT/ro"
install -d -m 755 "$WORK_ROOT/bin" "$WORK_ROOT/s3"
install -m 755 "$HERE/sandbox_exec.py" "$WORK_ROOT/bin/sandbox_exec.py"
install -m 755 "$PERSISTCTL" "$WORK_ROOT/bin/persistctl"
HELPER=$WORK_ROOT/bin/sandbox_exec.py
install -d -o "$PGT_USER" -g "$PGT_USER" "$PGT_WORK/log" "$PGT_WORK/fetch"
LOG=$PGT_WORK/log
ROWS=$WORK_ROOT/rows.tsv
: >"$ROWS"
read -r -a FILTER_LINES <<<"${SANDBOX_FILTER:-@system-service ~@privileged ~@resources}"
FILTER_ARGS=()
for l in "${FILTER_LINES[@]}"; do FILTER_ARGS+=(--filter "$l"); done

FAILED=0
TLS_PID=
# shellcheck disable=SC2317 # (called by the EXIT trap)
cleanup() {
    local rc=$? f
    set +e
    for f in "$PGT_WORK"/*.port; do
        [ -e "$f" ] || continue
        f=${f##*/}
        pg_stop "${f%.port}" immediate
    done
    "$S3SH" stop "$WORK_ROOT/s3" >/dev/null
    if [ -n "$TLS_PID" ]; then
        kill "$TLS_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$TLS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$TLS_PID" 2>/dev/null
    fi
    if [ "$rc" -eq 0 ] && [ "${SANDBOX_KEEP:-0}" != 1 ]; then
        rm -rf --one-file-system "$WORK_ROOT"
    else
        echo "sandbox.sh: work directory kept: $WORK_ROOT (logs in rw/log, server logs rw/*.log)" >&2
    fi
}
trap cleanup EXIT

# row ID WHAT EXPECTED OBSERVED: one line of the table (OK when observed = expected).
row() {
    local v=OK
    [ "$3" = "$4" ] || { v=FAIL; FAILED=1; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$v" >>"$ROWS"
    printf '  %-4s %-10s %s: expected [%s] observed [%s]\n' "$v" "$1" "$2" "$3" "$4"
}
rc_text() { # RC -> "rc=N" or "SIGSYS" / "signal N"
    if [ "$1" = 159 ]; then echo "rc=159 (SIGSYS)"; elif [ "$1" -gt 128 ] && [ "$1" -lt 160 ]; then echo "rc=$1 (signal $(($1 - 128)))"; else echo "rc=$1"; fi
}

# sbx NAME ENVFILE [HELPER OPTIONS] -- CMD...: CMD as postgres inside the stand-in (the unit's
# environment: ENVFILE's keys, as EnvironmentFile= gives them; PATH with the venv and PostgreSQL).
# Sets RC (124 = deadline) and DUR; output in $LOG/NAME.out and .err.
sbx() {
    local name=$1 envfile=$2 t0 opts=()
    shift 2
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    env_args "$envfile"
    t0=$(pgt_now)
    set +e
    (timeout --kill-after=5 "$BC_TIMEOUT" env -i PATH="$VENV/bin:$PG_BIN:/usr/bin:/bin" HOME="$PGT_WORK" \
        LC_ALL=C.UTF-8 TZ=UTC PERSISTCTL_BARMAN_DIR="$VENV/bin" "${ENV_ARGS[@]}" \
        /usr/bin/python3 "$HELPER" --fs --rw "$PGT_WORK" --user "$PGT_USER" "${FILTER_ARGS[@]}" "${opts[@]}" \
        -- "$@" >"$LOG/$name.out" 2>"$LOG/$name.err"
        exit $?) 2>>"$LOG/$name.err" # (not the last command: no exec, so this shell reports a signal)
    RC=$?
    set -e
    DUR=$(pgt_since "$t0")
}

# diagnose NAME ENVFILE [OPTS] -- CMD...: after a SIGSYS, the syscalls that were refused (the same
# sandbox with SCMP_ACT_TRAP instead of kill, under strace: si_syscall of each SIGSYS), then the
# same command with those syscalls added to the filter the way nixpkgs' systemCallFilter.NAME =
# true adds them (priority 1500: after the groups), repeated until it passes (5 rounds at most).
# Sets DIAG_SYSCALLS ("a b") and DIAG_FIXED_RC.
diagnose() {
    local name=$1 envfile=$2 round extra=() found opts=()
    shift 2
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    DIAG_SYSCALLS=
    for round in 1 2 3 4 5; do
        env_args "$envfile"
        set +e
        (timeout --kill-after=5 "$BC_TIMEOUT" env -i PATH="$VENV/bin:$PG_BIN:/usr/bin:/bin" HOME="$PGT_WORK" \
            LC_ALL=C.UTF-8 TZ=UTC PERSISTCTL_BARMAN_DIR="$VENV/bin" "${ENV_ARGS[@]}" \
            strace -f -qq -e trace=none -o "$LOG/$name.diag$round.strace" \
            /usr/bin/python3 "$HELPER" --fs --rw "$PGT_WORK" --user "$PGT_USER" "${FILTER_ARGS[@]}" "${extra[@]}" \
            "${opts[@]}" --action trap -- "$@" >/dev/null 2>&1
            exit $?) 2>/dev/null
        set -e
        found=$( (grep -o 'si_syscall=__NR_[a-z0-9_]*' "$LOG/$name.diag$round.strace" || true) | sed 's/.*__NR_//' | sort -u | xargs)
        [ -n "$found" ] || break
        for s in $found; do
            DIAG_SYSCALLS+="$s "
            extra+=(--filter "$s")
        done
    done
    DIAG_SYSCALLS=$(echo "$DIAG_SYSCALLS" | xargs -n1 | sort -u | xargs)
    sbx "$name.fixed" "$envfile" "${opts[@]}" "${extra[@]}" -- "$@"
    DIAG_FIXED_RC=$RC
}

# sbx_row ID WHAT NAME ENVFILE [OPTS] -- CMD...: run CMD sandboxed, one row "rc=0"; on a SIGSYS the
# row says which syscalls and whether adding them fixes it.
sbx_row() {
    local id=$1 what=$2 name=$3 envfile=$4
    shift 4
    sbx "$name" "$envfile" "$@"
    local observed rc=$RC dur=$DUR
    observed=$(rc_text "$RC")
    if [ "$RC" != 0 ]; then
        # killed itself, or a child was (persistctl reports barman's death as 200): look for SIGSYS
        diagnose "$name" "$envfile" "$@"
        if [ -n "$DIAG_SYSCALLS" ]; then
            observed+="; SIGSYS for: $DIAG_SYSCALLS; with systemCallFilter += them: $(rc_text "$DIAG_FIXED_RC")"
            SIGSYS_FOUND+="$id:${DIAG_SYSCALLS// /,} "
        else
            observed+="; no SIGSYS"
        fi
    fi
    RC=$rc DUR=$dur
    row "$id" "$what" "rc=0" "$observed"
    say "$id: $observed (${DUR}s)"
}
SIGSYS_FOUND=

# finish: the table; exit 1 when a row is not OK. stop_here MSG: a failure that ends the run early
# (what follows depends on it), still with the table.
finish() {
    echo
    echo "== under a stand-in for postgresql.service's sandbox (SystemCallFilter= ${FILTER_LINES[*]}), $(pgt_since "$T_START") s"
    awk -F'\t' '{ printf "%-4s %-8s %s\n       expected: %s\n       observed: %s\n", $5, $1, $2, $3, $4 }' "$ROWS"
    echo
    [ -z "$SIGSYS_FOUND" ] || echo "SIGSYS: $SIGSYS_FOUND"
    echo "$(wc -l <"$ROWS") rows, $(awk -F'\t' '$5 != "OK"' "$ROWS" | wc -l) not OK"
    [ "$FAILED" = 0 ] || exit 1
    exit 0
}
stop_here() {
    say "$*; stopping here"
    row stop "the rest of the run" "run" "not run: $*"
    finish
}

# ---- the filter ---------------------------------------------------------------------------------
say "filter: SystemCallFilter= ${FILTER_LINES[*]} (systemd v257.13 groups), MemoryDenyWriteExecute, NoNewPrivileges, ..."
/usr/bin/python3 "$HELPER" "${FILTER_ARGS[@]}" --describe >"$WORK_ROOT/allow-list.txt"
say "allow-list: $(wc -l <"$WORK_ROOT/allow-list.txt") syscall names (x86-64 and others), in $WORK_ROOT/allow-list.txt"
# The same expansion with Debian 12's systemd 252 (systemd-analyze): which syscalls the newer groups add.
if command -v systemd-analyze >/dev/null; then
    cmp252=$(/usr/bin/python3 - "$WORK_ROOT/allow-list.txt" "${FILTER_LINES[@]}" <<'PY'
import subprocess, sys
cache = {}
def group(name):
    if name not in cache:
        out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", name],
                             capture_output=True, text=True, check=True).stdout.splitlines()[1:]
        s = set()
        for l in (l.strip() for l in out):
            if l and not l.startswith("#"):
                s |= group(l) if l.startswith("@") else {l}
        cache[name] = s
    return cache[name]
mine = set(open(sys.argv[1]).read().split())
allowed = set()
for i, line in enumerate(sys.argv[2:]):
    inv = line.startswith("~")
    names = set().union(*[group(w) if w.startswith("@") else {w} for w in line.lstrip("~").split()])
    if i == 0 and not inv:
        allowed |= group("@default")
    allowed = allowed - names if inv else allowed | names
print("252 allows %d, 257.13 allows %d; only 257.13: %s; only 252: %s" % (
    len(allowed), len(mine), " ".join(sorted(mine - allowed)) or "none", " ".join(sorted(allowed - mine)) or "none"))
PY
    )
    say "systemd-analyze $(systemd-analyze --version | head -n1 | cut -d' ' -f2): $cmp252"
fi

# ---- probe: what is in force ----------------------------------------------------------------------
say "probe"
sbx probe "" -- /usr/bin/python3 "$HELPER" --probe "$WORK_ROOT/ro"
cp "$LOG/probe.out" "$WORK_ROOT/probe.tsv"
p() { awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$LOG/probe.out"; }
row probe-1 "in force: uid, seccomp mode, NoNewPrivs, CapBnd, MDWE (PR_SET_MDWE), umask" \
    "$(id -u "$PGT_USER") 2 1 0000000000000000 1 0027" "$(p uid) $(p Seccomp) $(p NoNewPrivs) $(p CapBnd) $(p MDWE) $(p umask)"
row probe-2 "refused: raw setrlimit, fchown, setuid, sched_setaffinity (killed); glibc setrlimit=prlimit64 allowed" \
    "SIGSYS SIGSYS SIGSYS SIGSYS ok" \
    "$(for k in "setrlimit syscall (@resources)" "fchown (@privileged/@chown)" "setuid (@privileged)" "sched_setaffinity (@resources)" "prlimit64 (glibc's setrlimit)"; do p "$k" | sed 's/killed by signal 31 (SIGSYS)/SIGSYS/'; done | xargs)"
row probe-3 "errno: W+X mmap, AF_PACKET, unshare(NEWUSER), clone3, personality; AF_INET allowed" \
    "EACCES EAFNOSUPPORT EPERM ENOSYS EPERM ok" \
    "$(for k in "mmap W+X (MDWE)" "socket AF_PACKET" "unshare CLONE_NEWUSER" "clone3" "personality(PER_LINUX32)" "socket AF_INET"; do p "$k"; done | xargs)"
row probe-4 "mounts: a postgres-owned dir outside ReadWritePaths; /proc/cpuinfo (ProcSubset=pid)" \
    "EROFS ENOENT" "$(p "create a file in $WORK_ROOT/ro") $(p "read /proc/cpuinfo")"

# ---- S3 --------------------------------------------------------------------------------------------
say "moto"
"$S3SH" start "$WORK_ROOT/s3" >/dev/null
ENVF=$WORK_ROOT/s3/env
URL=$(sed -n 's/^S3_ENDPOINT_URL=//p' "$ENVF")
BUCKET=sandbox
DEST=s3://$BUCKET/pg
EP=(--endpoint-url "$URL")

# ---- PostgreSQL under the sandbox: initdb, archive, pg_switch_wal ----------------------------------
say "primary: initdb and start under the sandbox"
install -d -o "$PGT_USER" -g "$PGT_USER" "$PGT_WORK/sock"
# shellcheck disable=SC2016 # (expanded by that bash)
sbx_row sh-1 "bash -c (NixOS' /bin/sh, which runs archive_command and restore_command)" bash "" -- \
    bash -c 'echo "$(id -un) $$" >/dev/null'
sbx_row pg-1 "initdb (NixOS preStart runs it in the unit)" initdb "" -- \
    "$PG_BIN/initdb" -D "$PGT_WORK/primary" -U postgres -A trust -E UTF8 --no-locale
[ "$RC" = 0 ] || stop_here "initdb failed under the sandbox ($LOG/initdb.err)"
sbx_row bc-1 "barman-cloud-check-wal-archive (creates the bucket)" check "$ENVF" -- \
    barman-cloud-check-wal-archive "${EP[@]}" "$DEST" main
ARCHIVE_CMD="barman-cloud-wal-archive --endpoint-url $URL $DEST main %p"
port=$(free_port)
echo "$port" >"$PGT_WORK/primary.port"
cat >>"$PGT_WORK/primary/postgresql.conf" <<EOF
# persistctl tests/pg/sandbox.sh
port = $port
listen_addresses = ''
unix_socket_directories = '$PGT_WORK/sock'
wal_level = replica
archive_mode = on
archive_command = '$ARCHIVE_CMD'
max_wal_senders = 3
# nixpkgs: jit = off unless enableJIT (MemoryDenyWriteExecute is on only then)
jit = off
EOF
sbx_row pg-2 "pg_ctl start: postmaster and archiver under the sandbox" pgstart "$ENVF" -- \
    "$PG_BIN/pg_ctl" -D "$PGT_WORK/primary" -l "$PGT_WORK/primary.log" -w -t 60 start
[ "$RC" = 0 ] || stop_here "the primary did not start under the sandbox ($PGT_WORK/primary.log)"
PM_PID=$(head -n1 "$PGT_WORK/primary/postmaster.pid")
row pg-3 "the running postmaster: seccomp mode, filters (as the probe's), NoNewPrivs, own mount namespace" \
    "2 $(p Seccomp_filters) 1 yes" "$(awk '/^Seccomp:/ {a=$2} /^Seccomp_filters:/ {b=$2} /^NoNewPrivs:/ {c=$2} END {print a, b, c}' "/proc/$PM_PID/status") $([ "$(readlink "/proc/$PM_PID/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] && echo yes || echo no)"
pg_q primary "create table t (id serial primary key, tag text not null)"
pg_q primary "insert into t (tag) select 'A' from generate_series(1, 1000)"
for _ in 1 2 3; do
    pg_q primary "insert into t (tag) select 'A' from generate_series(1, 100)"
    pg_q primary "select pg_switch_wal()" >/dev/null
done
LAST_SEG=$(pg_q primary "select pg_walfile_name(pg_current_wal_lsn() - 1)")
t0=$(pgt_now)
deadline=$((SECONDS + 90))
while [[ "$(pg_q primary 'select coalesce(last_archived_wal, $$$$) from pg_stat_archiver')" < "$LAST_SEG" ]]; do
    [ "$(pg_q primary 'select failed_count from pg_stat_archiver')" = 0 ] || break
    # an archive_command that dies of a signal (or exits > 125) is FATAL for the archiver, which
    # restarts without counting a failure (ctl-2): only the log says so
    ! grep -q 'FATAL:  archive command' "$PGT_WORK/primary.log" || break
    [ $SECONDS -lt $deadline ] || break
    sleep 0.2
done
ARCHIVED=$([[ ! "$(pg_q primary 'select coalesce(last_archived_wal, $$$$) from pg_stat_archiver')" < "$LAST_SEG" ]] && echo archived || echo missing)
say "archiver: $(pg_q primary "select archived_count || ' archived, ' || failed_count || ' failed, last ' || coalesce(last_archived_wal, '-') || ', last failed ' || coalesce(last_failed_wal, '-') from pg_stat_archiver") ($(pgt_since "$t0")s)"
row pg-4 "archiver: segments up to $LAST_SEG archived; failed_count; FATAL archive lines in the log" \
    "archived 0 0" "$ARCHIVED $(pg_q primary 'select failed_count from pg_stat_archiver') $(grep -c 'FATAL:  archive command' "$PGT_WORK/primary.log" || true)"
if grep -q 'FATAL:  archive command' "$PGT_WORK/primary.log"; then
    say "primary.log: $(grep -m1 'FATAL:  archive command' "$PGT_WORK/primary.log")"
fi
NOBJ=$(s3ctl "$ENVF" keys "$BUCKET" pg/main/wals/ | wc -l)
row pg-5 "WAL objects in S3 (pg/main/wals/) ≥ archived_count" "yes" \
    "$([ "$NOBJ" -ge "$(pg_q primary 'select archived_count from pg_stat_archiver')" ] && [ "$NOBJ" -ge 3 ] && echo yes || echo "no ($NOBJ)")"

# ---- the clients one by one on a real segment ------------------------------------------------------
say "clients on a real WAL segment"
SEG=$(pg_q primary "select pg_walfile_name(pg_current_wal_lsn())")
pg_q primary "insert into t (tag) select 'S' from generate_series(1, 100)"
pg_q primary "select pg_switch_wal()" >/dev/null
# a closed segment, copied while the server runs on (the archiver may archive it too, under "main")
deadline=$((SECONDS + 30))
until [ -f "$PGT_WORK/primary/pg_wal/archive_status/$SEG.done" ] || [ -f "$PGT_WORK/primary/pg_wal/archive_status/$SEG.ready" ]; do
    [ $SECONDS -lt $deadline ] || die "segment $SEG was not closed within 30 s"
    sleep 0.2
done
install -o "$PGT_USER" -g "$PGT_USER" -m 600 "$PGT_WORK/primary/pg_wal/$SEG" "$PGT_WORK/$SEG"
sbx_row wal-1 "barman-cloud-wal-archive of $SEG (server name \"single\")" archive "$ENVF" -- \
    barman-cloud-wal-archive "${EP[@]}" "$DEST" single "$PGT_WORK/$SEG"
sbx_row wal-2 "barman-cloud-wal-restore of it" restore "$ENVF" -- \
    barman-cloud-wal-restore "${EP[@]}" "$DEST" single "$SEG" "$PGT_WORK/fetch/$SEG.bc"
row wal-3 "restored file = the segment (16 MiB)" "same 16777216" \
    "$(cmp -s "$PGT_WORK/$SEG" "$PGT_WORK/fetch/$SEG.bc" && echo same || echo differs) $(stat -c %s "$PGT_WORK/fetch/$SEG.bc" 2>/dev/null || echo none)"
sbx_row wal-4 "persistctl pg-wal-restore of it" pwr "$ENVF" -- \
    "$WORK_ROOT/bin/persistctl" pg-wal-restore --destination "$DEST" --server-name single \
    --endpoint-url "$URL" "$SEG" "$PGT_WORK/fetch/$SEG.p"
row wal-5 "persistctl's file = the segment" "same" \
    "$(cmp -s "$PGT_WORK/$SEG" "$PGT_WORK/fetch/$SEG.p" && echo same || echo differs)"
sbx pwr-missing "$ENVF" -- "$WORK_ROOT/bin/persistctl" pg-wal-restore --destination "$DEST" \
    --server-name single --endpoint-url "$URL" 0000000100000000000000F0 "$PGT_WORK/fetch/missing"
row wal-6 "persistctl pg-wal-restore of a segment not in the archive (end of archive)" "rc=1" "$(rc_text "$RC")"
sbx pwr-down "" -- "$WORK_ROOT/bin/persistctl" pg-wal-restore --destination "$DEST" \
    --server-name single --endpoint-url "$("$S3SH" closed-port)" "$SEG" "$PGT_WORK/fetch/down"
row wal-7 "persistctl pg-wal-restore, endpoint refuses (abort the recovery)" "rc=200" "$(rc_text "$RC")"

# ---- the same over HTTPS, by host name (what a real S3 endpoint needs: ssl, NSS, certificates) --------
say "HTTPS: moto with a self-signed certificate for localhost"
install -d -m 755 "$WORK_ROOT/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK_ROOT/tls/key.pem" -out "$WORK_ROOT/tls/cert.pem" >/dev/null 2>&1 || die "openssl req failed"
chmod 644 "$WORK_ROOT/tls/cert.pem"
TLS_PORT=$(free_port)
setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$TLS_PORT" -s -c "$WORK_ROOT/tls/cert.pem" \
    -k "$WORK_ROOT/tls/key.pem" </dev/null >>"$WORK_ROOT/tls/moto.log" 2>&1 &
TLS_PID=$!
TLS_URL=https://localhost:$TLS_PORT
deadline=$((SECONDS + 30))
until /usr/bin/python3 -c 'import ssl, sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json", timeout=3,
                           context=ssl.create_default_context(cafile=sys.argv[2])).read(1)
except urllib.error.HTTPError:
    pass' "$TLS_URL" "$WORK_ROOT/tls/cert.pem" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$TLS_PID" 2>/dev/null; then
        die "moto over TLS did not answer within 30 s ($WORK_ROOT/tls/moto.log)"
    fi
    sleep 0.3
done
TLS_ENVF=$WORK_ROOT/tls/env
{ grep -v '^S3_ENDPOINT_URL=' "$ENVF"; echo "S3_ENDPOINT_URL=$TLS_URL"; echo "AWS_CA_BUNDLE=$WORK_ROOT/tls/cert.pem"; } >"$TLS_ENVF"
TEP=(--endpoint-url "$TLS_URL")
sbx_row tls-1 "HTTPS: barman-cloud-check-wal-archive (creates the bucket)" tls-check "$TLS_ENVF" -- \
    barman-cloud-check-wal-archive "${TEP[@]}" "$DEST" single
sbx_row tls-2 "HTTPS: barman-cloud-wal-archive of $SEG" tls-archive "$TLS_ENVF" -- \
    barman-cloud-wal-archive "${TEP[@]}" "$DEST" single "$PGT_WORK/$SEG"
sbx_row tls-3 "HTTPS: barman-cloud-wal-restore of it" tls-restore "$TLS_ENVF" -- \
    barman-cloud-wal-restore "${TEP[@]}" "$DEST" single "$SEG" "$PGT_WORK/fetch/$SEG.tls"
sbx_row tls-4 "HTTPS: persistctl pg-wal-restore of it" tls-pwr "$TLS_ENVF" -- \
    "$WORK_ROOT/bin/persistctl" pg-wal-restore --destination "$DEST" --server-name single \
    --endpoint-url "$TLS_URL" "$SEG" "$PGT_WORK/fetch/$SEG.ptls"
row tls-5 "HTTPS: both restored files = the segment" "same same" \
    "$(for f in tls ptls; do cmp -s "$PGT_WORK/$SEG" "$PGT_WORK/fetch/$SEG.$f" && echo same || echo differs; done | xargs)"

# systemd's seccomp MemoryDenyWriteExecute (systemd < 256, or Linux < 6.3): stricter on mprotect
sbx_row mdwe-1 "wal-archive with MDWE as a seccomp filter (no PR_SET_MDWE)" archive-mdwe "$ENVF" --mdwe seccomp -- \
    barman-cloud-wal-archive "${EP[@]}" "$DEST" single-mdwe "$PGT_WORK/$SEG"
sbx_row mdwe-2 "wal-restore, same" restore-mdwe "$ENVF" --mdwe seccomp -- \
    barman-cloud-wal-restore "${EP[@]}" "$DEST" single-mdwe "$SEG" "$PGT_WORK/fetch/$SEG.m"
sbx_row mdwe-3 "persistctl pg-wal-restore, same" pwr-mdwe "$ENVF" --mdwe seccomp -- \
    "$WORK_ROOT/bin/persistctl" pg-wal-restore --destination "$DEST" --server-name single-mdwe \
    --endpoint-url "$URL" "$SEG" "$PGT_WORK/fetch/$SEG.pm"

# ---- a point-in-time restore whose recovery runs under the sandbox ---------------------------------
if [ "$ARCHIVED" != archived ] || [ "$(pg_q primary 'select failed_count from pg_stat_archiver')" != 0 ]; then
    # barman-cloud-backup would wait for the archive of its end segment: no restore to test
    row pitr-1 "recovery under the sandbox" "rc=0" "not run: the archiver fails under the sandbox"
    finish
fi
say "base backup (its own unit on NixOS: not sandboxed here), rows B, restore, recovery under the sandbox"
bc backup "$ENVF" backup -h "$PGT_WORK/sock" -p "$(pg_port primary)" -U postgres "$DEST" main
[ "$RC" = 0 ] || die "barman-cloud-backup failed (rc=$RC, $LOG/backup.err)"
bc list "$ENVF" backup-list --format json "$DEST" main
BACKUP_ID=$("$VENV/bin/python" -c 'import json,sys
print([b["backup_id"] for b in json.load(open(sys.argv[1]))["backups_list"] if b["status"] == "DONE"][-1])' "$LOG/list.out")
pg_q primary "insert into t (tag) select 'B' from generate_series(1, 1000)"
B_SEG=$(pg_q primary "select pg_walfile_name(pg_current_wal_lsn())")
pg_q primary "select pg_switch_wal()" >/dev/null
deadline=$((SECONDS + 60))
while [[ "$(pg_q primary 'select coalesce(last_archived_wal, $$$$) from pg_stat_archiver')" < "$B_SEG" ]]; do
    [ $SECONDS -lt $deadline ] || break
    sleep 0.2
done
WANT=$(pg_q primary "select 'A=' || count(*) filter (where tag = 'A') || ' S=' || count(*) filter (where tag = 'S') || ' B=' || count(*) filter (where tag = 'B') from t")
row pg-6 "after the backup and rows B: failed_count (the archiver is still under the sandbox)" "0" \
    "$(pg_q primary 'select failed_count from pg_stat_archiver')"
pg_stop primary
install -d -o "$PGT_USER" -g "$PGT_USER" -m 700 "$PGT_WORK/restored"
bc restore "$ENVF" restore "$DEST" main "$BACKUP_ID" "$PGT_WORK/restored"
[ "$RC" = 0 ] || die "barman-cloud-restore failed (rc=$RC, $LOG/restore.err)"
RESTORE_CMD="$WORK_ROOT/bin/persistctl pg-wal-restore --destination $DEST --server-name main --endpoint-url $URL %f %p"
pg_adopt restored <<EOF
restore_command = '$RESTORE_CMD'
recovery_target_action = 'promote'
recovery_target_timeline = 'current'
archive_mode = off
hot_standby = off
jit = off
EOF
touch "$PGT_WORK/restored/recovery.signal"
chown "$PGT_USER:" "$PGT_WORK/restored/recovery.signal"
sbx_row pitr-1 "recovery under the sandbox (pg_ctl -w returns at the end of recovery)" recover "$ENVF" -- \
    "$PG_BIN/pg_ctl" -D "$PGT_WORK/restored" -l "$PGT_WORK/restored.log" -w -t 120 start
got="not promoted"
if pg_wait_promoted restored 60; then
    got=$(pg_q restored "select 'A=' || count(*) filter (where tag = 'A') || ' S=' || count(*) filter (where tag = 'S') || ' B=' || count(*) filter (where tag = 'B') from t")
fi
row pitr-2 "promoted with every row (A, S, B), restore_command = persistctl pg-wal-restore" "$WANT" "$got"
row pitr-3 "segments PostgreSQL restored through persistctl (restored.log)" "≥ 2, none failed" \
    "$(n=$(grep -c 'restored log file' "$PGT_WORK/restored.log" || true); f=$(grep -c 'could not restore\|terminated by signal' "$PGT_WORK/restored.log" || true); [ "$n" -ge 2 ] && [ "$f" = 0 ] && echo "≥ 2, none failed" || echo "$n restored, $f failed")"
pg_stop restored

# ---- census: every syscall the clients make, against the allow-list --------------------------------
say "census (strace, outside the sandbox)"
census() { # ID WHAT NAME ENVFILE -- CMD...
    local id=$1 what=$2 name=$3 envfile=$4 trace=$LOG/$3.census
    shift 5
    env_args "$envfile"
    set +e
    timeout --kill-after=5 "$BC_TIMEOUT" runuser -u "$PGT_USER" -- env -i PATH="$VENV/bin:$PG_BIN:/usr/bin:/bin" \
        HOME="$PGT_WORK" LC_ALL=C.UTF-8 TZ=UTC PERSISTCTL_BARMAN_DIR="$VENV/bin" "${ENV_ARGS[@]}" \
        strace -f -qq -o "$trace" "$@" >/dev/null 2>&1
    local rc=$?
    set -e
    local out
    out=$(/usr/bin/python3 - "$trace" "$WORK_ROOT/allow-list.txt" <<'PY'
import re, sys
allow = set(open(sys.argv[2]).read().split())
used, wx, fams, ns = set(), 0, set(), 0
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()", line)
    if not m:
        continue
    name = m.group(1) or m.group(2)
    used.add(name)
    if name in ("mmap", "mprotect", "pkey_mprotect") and "PROT_WRITE|PROT_EXEC" in line:
        wx += 1
    if name == "mprotect" and "PROT_EXEC" in line:
        wx += 1
    f = re.match(r"\d+\s+socket\((AF_\w+)", line)
    if f:
        fams.add(f.group(1))
    if name in ("clone", "clone3", "unshare", "setns") and "CLONE_NEW" in line:
        ns += 1
out = sorted(used - allow)
print("%d syscalls; outside the allow-list: %s; W+X/exec-gain: %d; families: %s; new namespaces: %d" % (
    len(used), " ".join(out) or "none", wx, ",".join(sorted(fams)) or "none", ns))
PY
    )
    row "$id" "$what: $out" "rc=0 none" "rc=$rc $(sed -n 's/.*outside the allow-list: \([^;]*\);.*/\1/p' <<<"$out")"
}
census cen-1 "wal-archive" c-archive "$ENVF" -- barman-cloud-wal-archive "${EP[@]}" "$DEST" census "$PGT_WORK/$SEG"
census cen-2 "wal-restore" c-restore "$ENVF" -- barman-cloud-wal-restore "${EP[@]}" "$DEST" census "$SEG" "$PGT_WORK/fetch/c1"
census cen-4 "HTTPS wal-archive" c-tls-archive "$TLS_ENVF" -- barman-cloud-wal-archive "${TEP[@]}" "$DEST" census "$PGT_WORK/$SEG"
census cen-5 "HTTPS wal-restore" c-tls-restore "$TLS_ENVF" -- barman-cloud-wal-restore "${TEP[@]}" "$DEST" census "$SEG" "$PGT_WORK/fetch/c3"
census cen-3 "persistctl pg-wal-restore" c-pwr "$ENVF" -- "$WORK_ROOT/bin/persistctl" pg-wal-restore \
    --destination "$DEST" --server-name census --endpoint-url "$URL" "$SEG" "$PGT_WORK/fetch/c2"

# ---- control: a command that needs a refused syscall -------------------------------------------------
say "control: chown under the sandbox"
touch "$PGT_WORK/owned" && chown "$PGT_USER:" "$PGT_WORK/owned"
sbx ctl "" -- chown "$PGT_USER:" "$PGT_WORK/owned"
ctl_rc=$RC
diagnose ctl "" -- chown "$PGT_USER:" "$PGT_WORK/owned"
row ctl-1 "control: chown (in @privileged) is killed, diagnosed, and fixed by adding the syscall" \
    "rc=159 (SIGSYS) fchownat rc=0" "$(rc_text "$ctl_rc") ${DIAG_SYSCALLS:-?} $(rc_text "$DIAG_FIXED_RC")"

# ---- control: an archiver killed by SIGSYS, as PostgreSQL reports it --------------------------------
# The same sandbox with one more line, SystemCallFilter=~sysinfo (glibc's qsort asks sysinfo() for
# the memory size, so Python dies of it and PostgreSQL does not), and `exec` in archive_command so
# that PostgreSQL sees the signal itself, as on NixOS where /bin/sh is bash (dash reports 159).
say "control: a cluster whose archive_command is killed by SIGSYS"
sbx ctlinit "" -- "$PG_BIN/initdb" -D "$PGT_WORK/ctl" -U postgres -A trust -E UTF8 --no-locale
port=$(free_port)
echo "$port" >"$PGT_WORK/ctl.port"
cat >>"$PGT_WORK/ctl/postgresql.conf" <<EOF
port = $port
listen_addresses = ''
unix_socket_directories = '$PGT_WORK/sock'
wal_level = replica
archive_mode = on
archive_command = 'exec barman-cloud-wal-archive --endpoint-url $URL $DEST ctl %p'
jit = off
EOF
sbx ctlstart "$ENVF" --filter "~sysinfo" -- "$PG_BIN/pg_ctl" -D "$PGT_WORK/ctl" -l "$PGT_WORK/ctl.log" -w -t 60 start
if [ "$RC" = 0 ]; then
    pg_q ctl "create table c (x int)"
    pg_q ctl "select pg_switch_wal()" >/dev/null
    deadline=$((SECONDS + 60))
    until grep -q 'FATAL:  archive command' "$PGT_WORK/ctl.log"; do
        [ $SECONDS -lt $deadline ] || break
        sleep 0.3
    done
    sleep 2 # what the archiver reported (nothing), had it reported
    ctl2=$(pg_q ctl "select 'archived=' || archived_count || ' failed_count=' || failed_count || ' last_failed_wal=' || coalesce(last_failed_wal, 'null') from pg_stat_archiver")
    ready=$(find "$PGT_WORK/ctl/pg_wal/archive_status" -name '*.ready' | wc -l)
    say "ctl.log: $(grep -m1 'FATAL:  archive command' "$PGT_WORK/ctl.log" || echo none)"
    row ctl-2 "control: archive_command killed by SIGSYS: FATAL in the log; pg_stat_archiver; .ready backlog" \
        "FATAL archived=0 failed_count=0 last_failed_wal=null ready≥1" \
        "$(grep -q 'FATAL:  archive command was terminated by signal 31: Bad system call' "$PGT_WORK/ctl.log" && echo FATAL || echo no-FATAL) $ctl2 $([ "$ready" -ge 1 ] && echo 'ready≥1' || echo "ready=$ready")"
    pg_stop ctl immediate
else
    row ctl-2 "control: archive_command killed by SIGSYS" "a running cluster" "did not start ($(rc_text "$RC"))"
fi

finish
