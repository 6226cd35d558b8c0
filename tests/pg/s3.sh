#!/usr/bin/env bash
# A real S3-compatible server on loopback for the PITR tests: moto's server mode (moto_server from
# the venv that tests/pg/setup.sh builds). State is in memory: a stopped server has lost its
# buckets (use freeze/thaw for an outage that the data survives).
#
#   s3.sh start DIR     start on 127.0.0.1 on a free port; wait (with a deadline) until it answers.
#                       Writes DIR/pid, DIR/port, DIR/url, DIR/s3.log and DIR/env: an environment
#                       file (systemd EnvironmentFile= syntax, also `set -a; . DIR/env`) with
#                       AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION and
#                       S3_ENDPOINT_URL (pass it as barman-cloud's --endpoint-url). Prints the URL.
#                       Already running and answering: prints the URL, exit 0.
#   s3.sh stop DIR      TERM, then KILL after S3_STOP_TIMEOUT; "S3 down" from now on. Exit 0 also
#                       when it was not running.
#   s3.sh status DIR    exit 0 and print the URL when running and answering; 1 when not running;
#                       2 when running but not answering (e.g. frozen)
#   s3.sh freeze DIR    SIGSTOP: the port still accepts connections but nothing answers (a hung
#                       S3: clients wait for their read timeout). s3.sh thaw DIR resumes it.
#   s3.sh auth DIR      turn on moto's IAM authentication: creates a user allowed everything and
#                       writes its key into DIR/env; from then on any other key is refused
#                       (InvalidAccessKeyId). Irreversible for this server instance.
#   s3.sh closed-port   print http://127.0.0.1:PORT where nothing listens ("unreachable
#                       endpoint": connection refused)
#
# Environment: PERSISTCTL_PG_VENV (default /opt/persistctl-test/venv), S3_START_TIMEOUT (default
# 30 s), S3_STOP_TIMEOUT (default 10 s). Runs as any user that can write DIR.
set -euo pipefail

VENV=${PERSISTCTL_PG_VENV:-/opt/persistctl-test/venv}
START_TIMEOUT=${S3_START_TIMEOUT:-30}
STOP_TIMEOUT=${S3_STOP_TIMEOUT:-10}
# Keys moto accepts while authentication is off (its default): any non-empty pair.
DEFAULT_KEY_ID=persistctl-test
DEFAULT_SECRET=persistctl-test-secret
REGION=us-east-1

die() { printf 's3.sh: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: s3.sh start|stop|status|freeze|thaw|auth DIR | s3.sh closed-port"; }

free_port() {
    # Bound and released at once: another process may take it before moto does (start retries).
    /usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# answers URL: 0 when an HTTP server answers at URL within 3 s (any status code counts).
answers() {
    /usr/bin/python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json", timeout=3).read(1)
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PY
}

# alive PID PORT: the process is our moto_server (not a recycled pid) and not a zombie.
alive() {
    local pid=$1 port=$2 state
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "moto_server -H 127.0.0.1 -p $port " || return 1
    state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ]
}

read_state() {
    PID=$(cat "$DIR/pid" 2>/dev/null || true)
    PORT=$(cat "$DIR/port" 2>/dev/null || true)
    [[ $PID =~ ^[0-9]+$ && $PORT =~ ^[0-9]+$ ]] && alive "$PID" "$PORT"
}

write_env() {
    local key=$1 secret=$2
    printf '%s\n' "AWS_ACCESS_KEY_ID=$key" "AWS_SECRET_ACCESS_KEY=$secret" \
        "AWS_DEFAULT_REGION=$REGION" "S3_ENDPOINT_URL=http://127.0.0.1:$PORT" >"$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
}

cmd_start() {
    [ -x "$VENV/bin/moto_server" ] || die "$VENV/bin/moto_server is missing: run tests/pg/setup.sh"
    mkdir -p "$DIR"
    if read_state && answers "http://127.0.0.1:$PORT"; then
        echo "http://127.0.0.1:$PORT"
        return 0
    fi
    local attempt deadline
    for attempt in 1 2 3; do
        PORT=$(free_port)
        # setsid: its own session, so a test's Ctrl-C or process-group kill does not reach it and
        # stop is the one way it ends. No job control here, so setsid execs and $! is moto itself.
        setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" </dev/null >>"$DIR/s3.log" 2>&1 &
        PID=$!
        echo "$PID" >"$DIR/pid"
        echo "$PORT" >"$DIR/port"
        echo "http://127.0.0.1:$PORT" >"$DIR/url"
        deadline=$((SECONDS + START_TIMEOUT))
        while [ $SECONDS -lt $deadline ]; do
            if answers "http://127.0.0.1:$PORT"; then
                write_env "$DEFAULT_KEY_ID" "$DEFAULT_SECRET"
                echo "http://127.0.0.1:$PORT"
                return 0
            fi
            kill -0 "$PID" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$PID" 2>/dev/null; then
            cmd_stop >/dev/null
            die "moto_server (pid $PID) did not answer on port $PORT within ${START_TIMEOUT}s (log: $DIR/s3.log)"
        fi
        echo "s3.sh: moto_server exited at once on port $PORT (attempt $attempt; taken?), retrying" >&2
    done
    die "moto_server would not start (log: $DIR/s3.log)"
}

cmd_stop() {
    if ! read_state; then
        rm -f "$DIR/pid"
        echo "not running"
        return 0
    fi
    kill -TERM "$PID" 2>/dev/null || true
    kill -CONT "$PID" 2>/dev/null || true # a frozen server handles TERM only once resumed
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$PID" "$PORT" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if alive "$PID" "$PORT"; then
        echo "s3.sh: moto_server (pid $PID) ignored TERM for ${STOP_TIMEOUT}s, sending KILL" >&2
        kill -KILL "$PID" 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while alive "$PID" "$PORT" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        alive "$PID" "$PORT" && die "moto_server (pid $PID) survived KILL"
    fi
    rm -f "$DIR/pid"
    echo "stopped"
}

cmd_status() {
    read_state || { echo "not running"; return 1; }
    answers "http://127.0.0.1:$PORT" || { echo "running (pid $PID) but not answering"; return 2; }
    echo "http://127.0.0.1:$PORT"
}

cmd_signal() {
    read_state || die "not running"
    kill "-$1" "$PID"
    echo "$2"
}

cmd_auth() {
    read_state || die "not running"
    local out
    out=$("$VENV/bin/python" - "http://127.0.0.1:$PORT" <<'PY'
import json, sys, urllib.request
import boto3
url = sys.argv[1]
iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="persistctl-test")
iam.put_user_policy(UserName="persistctl-test", PolicyName="everything", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="persistctl-test")["AccessKey"]
# Every request from now on is authenticated (moto counts requests; 0 unauthenticated are left).
# (text/plain: with urllib's default form type the server sees an empty body)
urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset-auth", data=b"0", method="POST",
                                              headers={"Content-Type": "text/plain"}), timeout=10).read()
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
    ) || die "could not turn on authentication"
    write_env "${out% *}" "${out#* }"
    echo "authentication on; key in $DIR/env"
}

[ $# -ge 1 ] || usage
case $1 in
    closed-port)
        [ $# -eq 1 ] || usage
        echo "http://127.0.0.1:$(free_port)"
        exit 0
        ;;
    start | stop | status | freeze | thaw | auth) [ $# -eq 2 ] || usage ;;
    *) usage ;;
esac
DIR=$2
case $1 in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    freeze) cmd_signal STOP frozen ;;
    thaw) cmd_signal CONT thawed ;;
    auth) cmd_auth ;;
esac
