# shellcheck shell=bash
# shellcheck disable=SC2034 # RC and DUR are this file's outputs to its callers
# Helpers for the PostgreSQL PITR scripts (sourced: tests/pg/facts.sh, the VM smoke test).
# Needs: PGT_WORK (a work directory the postgres user may write below), set before sourcing or
# before the first call. Every wait has a deadline; nothing here waits for ever.

PG_MAJOR=${PG_MAJOR:-15}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
VENV=${PERSISTCTL_PG_VENV:-/opt/persistctl-test/venv}
PGT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PGT_USER=${PGT_USER:-postgres}
# Seconds any one barman-cloud command may take before it is killed (reported as rc 124).
BC_TIMEOUT=${BC_TIMEOUT:-180}

pgt_now() { date +%s.%N; }
pgt_since() { awk -v a="$1" -v b="$(pgt_now)" 'BEGIN { printf "%.1f", b - a }'; }

# env_args ENVFILE: the NAME=VALUE lines of an s3.sh environment file, for env(1).
env_args() {
    ENV_ARGS=()
    [ -n "${1:-}" ] || return 0
    local line
    while IFS= read -r line; do
        [[ $line =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] && ENV_ARGS+=("$line")
    done <"$1"
}

# as_pg [ENVFILE] -- CMD...: CMD as the postgres user with a clean environment (PATH: the venv,
# PostgreSQL's bin, /usr/bin, /bin; TZ=UTC) plus the variables of ENVFILE.
as_pg() {
    local envfile=
    if [ "$1" != -- ]; then envfile=$1; shift; fi
    [ "$1" = -- ] && shift
    env_args "$envfile"
    runuser -u "$PGT_USER" -- env -i PATH="$VENV/bin:$PG_BIN:/usr/bin:/bin" HOME="$PGT_WORK" \
        LC_ALL=C.UTF-8 TZ=UTC "${ENV_ARGS[@]}" "$@"
}

# bc NAME ENVFILE TOOL ARGS...: barman-cloud-TOOL as postgres with ENVFILE's keys and its
# S3_ENDPOINT_URL as --endpoint-url (ENVFILE "" = none of them; add --endpoint-url yourself).
# Sets RC (124 = killed by the deadline), DUR (seconds), and leaves the output in
# $PGT_WORK/log/NAME.out and .err.
bc() {
    local name=$1 envfile=$2 tool=$3 t0 ep=()
    shift 3
    mkdir -p "$PGT_WORK/log"
    if [ -n "$envfile" ] && grep -q '^S3_ENDPOINT_URL=.' "$envfile"; then
        ep=(--endpoint-url "$(sed -n 's/^S3_ENDPOINT_URL=//p' "$envfile")")
    fi
    t0=$(pgt_now)
    set +e
    as_pg "$envfile" -- timeout --kill-after=5 "$BC_TIMEOUT" "$VENV/bin/barman-cloud-$tool" \
        "${ep[@]}" "$@" >"$PGT_WORK/log/$name.out" 2>"$PGT_WORK/log/$name.err"
    RC=$?
    set -e
    DUR=$(pgt_since "$t0")
}

# s3ctl ENVFILE OP ARGS...: tests/pg/s3ctl.py against ENVFILE's endpoint.
s3ctl() {
    local envfile=$1
    shift
    env_args "$envfile"
    env "${ENV_ARGS[@]}" timeout 120 "$VENV/bin/python" "$PGT_LIB_DIR/s3ctl.py" "$@"
}

free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ---- clusters: $PGT_WORK/NAME, socket in $PGT_WORK/sock, port in $PGT_WORK/NAME.port ---------
pg_dir() { echo "$PGT_WORK/$1"; }
pg_port() { cat "$PGT_WORK/$1.port"; }

# pg_init NAME: a new cluster (trust auth, socket only) with the settings on stdin appended.
pg_init() {
    local name=$1 dir port
    dir=$(pg_dir "$name")
    port=$(free_port)
    mkdir -p "$PGT_WORK/sock"
    chown "$PGT_USER:" "$PGT_WORK/sock"
    as_pg -- "$PG_BIN/initdb" -D "$dir" -U postgres -A trust -E UTF8 --no-locale >"$PGT_WORK/$name.initdb.log" 2>&1
    echo "$port" >"$PGT_WORK/$name.port"
    {
        echo "# persistctl tests"
        echo "port = $port"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$PGT_WORK/sock'"
        cat
    } >>"$dir/postgresql.conf"
}

# pg_adopt NAME: a PGDATA that arrived otherwise (a restore) gets its own port, socket and the
# settings on stdin, in postgresql.auto.conf (read last: it wins over the backup's
# postgresql.conf, as on NixOS where postgresql.conf is the store's).
pg_adopt() {
    local name=$1 dir port
    dir=$(pg_dir "$name")
    port=$(free_port)
    echo "$port" >"$PGT_WORK/$name.port"
    {
        echo "port = $port"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$PGT_WORK/sock'"
        cat
    } >>"$dir/postgresql.auto.conf"
    chown "$PGT_USER:" "$dir/postgresql.auto.conf"
}

# pg_start NAME [ENVFILE] [WAIT_S]: pg_ctl start -w (the server gets ENVFILE's keys, for
# archive_command/restore_command). Sets RC.
pg_start() {
    local name=$1 envfile=${2:-} wait=${3:-120}
    set +e
    as_pg "$envfile" -- "$PG_BIN/pg_ctl" -D "$(pg_dir "$name")" -l "$PGT_WORK/$name.log" -w -t "$wait" start \
        >>"$PGT_WORK/$name.pg_ctl.log" 2>&1
    RC=$?
    set -e
}

pg_running() { as_pg -- "$PG_BIN/pg_ctl" -D "$(pg_dir "$1")" status >/dev/null 2>&1; }

# pg_stop NAME [MODE]: stop if running (fast by default); a stuck server is stopped immediate.
pg_stop() {
    local name=$1 mode=${2:-fast}
    pg_running "$name" || return 0
    as_pg -- "$PG_BIN/pg_ctl" -D "$(pg_dir "$name")" -m "$mode" -w -t 60 stop >/dev/null 2>&1 ||
        as_pg -- "$PG_BIN/pg_ctl" -D "$(pg_dir "$name")" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
}

# pg_q NAME SQL: one query, unaligned, tuples only.
pg_q() {
    as_pg -- timeout 60 "$PG_BIN/psql" -h "$PGT_WORK/sock" -p "$(pg_port "$1")" -U postgres -d postgres \
        -XAtq -v ON_ERROR_STOP=1 -c "$2"
}

# pg_wait_promoted NAME [SECS]: 0 once the server runs out of recovery; 1 if it stopped or the
# deadline passed.
pg_wait_promoted() {
    local name=$1 deadline=$((SECONDS + ${2:-120}))
    while [ $SECONDS -lt $deadline ]; do
        pg_running "$name" || return 1
        [ "$(pg_q "$name" 'select pg_is_in_recovery()' 2>/dev/null)" = f ] && return 0
        sleep 0.2
    done
    return 1
}

# pg_state NAME: "Database cluster state" from pg_controldata (e.g. "in production",
# "in archive recovery", "shut down").
pg_state() {
    as_pg -- "$PG_BIN/pg_controldata" -D "$(pg_dir "$1")" 2>/dev/null |
        sed -n 's/^Database cluster state: *//p'
}

# pg_source_a_t_b NAME ENVFILE URL SERVER [WAIT_S]: the source cluster of the PITR scenarios: a new
# cluster archiving to s3://pitr SERVER (the bucket made first), table a (1000 rows), a base backup
# (its rc in BACKUP_RC), the time T (RFC 3339, UTC) between, table b (1000 rows), then the last
# segment archived (within WAIT_S, default 60) and the server stopped. Sets T.
pg_source_a_t_b() {
    local name=$1 envfile=$2 url=$3 server=$4 wait=${5:-60} deadline
    bc mk "$envfile" check-wal-archive s3://pitr "$server"
    {
        echo "archive_mode = on"
        echo "wal_level = replica"
        echo "archive_command = '$VENV/bin/barman-cloud-wal-archive --endpoint-url $url s3://pitr $server %p'"
    } | pg_init "$name"
    pg_start "$name" "$envfile" "$((wait * 5))"
    pg_q "$name" "create table a as select g from generate_series(1, 1000) g" >/dev/null
    bc backup "$envfile" backup -h "$PGT_WORK/sock" -p "$(pg_port "$name")" -U postgres s3://pitr "$server"
    BACKUP_RC=$RC
    sleep 1.2
    T=$(pg_q "$name" "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    sleep 1.2
    pg_q "$name" "create table b as select g from generate_series(1, 1000) g" >/dev/null
    pg_q "$name" "select pg_switch_wal()" >/dev/null
    deadline=$((SECONDS + wait))
    until [ "$(pg_q "$name" "select last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1) from pg_stat_archiver")" = t ] ||
        [ $SECONDS -ge $deadline ]; do sleep 0.3; done
    pg_stop "$name"
}
