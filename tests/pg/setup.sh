#!/usr/bin/env bash
# Install on this host what the PostgreSQL point-in-time-recovery tests need (issue 11):
#   - Debian's PostgreSQL 15 server (postgresql-15; binaries in /usr/lib/postgresql/15/bin)
#   - a Python venv with barman-cloud (barman + boto3) and moto's S3 server, pinned by
#     tests/pg/requirements.txt, at $PERSISTCTL_PG_VENV (default /opt/persistctl-test/venv)
#
# Runs as root on a fresh Debian 12 (bookworm) machine. Idempotent: when the packages are
# installed and the venv's marker matches requirements.txt, it takes well under a second and
# touches the network not at all. Every apt and pip step has a deadline.
#
# Environment:
#   PERSISTCTL_PG_VENV   venv directory (default /opt/persistctl-test/venv)
#   APT_TIMEOUT          seconds per apt-get step (default 900)
#   PIP_STEP_TIMEOUT     seconds for the pip install (default 900)
#   PG_SETUP_ROOT        install into this debootstrap root instead of the host (used by
#                        tests/vm/setup.sh with VM_EXTRAS=pg; the caller mounts /proc etc.)
#
# Prints the elapsed time. Exit status 0 when everything is installed and verified.
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REQ=$HERE/requirements.txt
VENV=${PERSISTCTL_PG_VENV:-/opt/persistctl-test/venv}
APT_TIMEOUT=${APT_TIMEOUT:-900}
PIP_STEP_TIMEOUT=${PIP_STEP_TIMEOUT:-900}
ROOT=${PG_SETUP_ROOT:-}
PG_MAJOR=15
# python3-venv: Debian's python3 has no ensurepip without it. ca-certificates: pip's HTTPS.
APT_PACKAGES="postgresql-$PG_MAJOR postgresql-client-$PG_MAJOR python3 python3-venv ca-certificates"
# Bump when the way the venv is built changes (the marker then no longer matches).
VENV_RECIPE=1
CLOUD_TOOLS="barman-cloud-backup barman-cloud-backup-delete barman-cloud-backup-keep
barman-cloud-backup-list barman-cloud-backup-show barman-cloud-check-wal-archive
barman-cloud-restore barman-cloud-wal-archive barman-cloud-wal-restore moto_server"

export DEBIAN_FRONTEND=noninteractive LC_ALL=C
T0=$(date +%s)
step() { printf '[pg-setup +%3ds] %s\n' $(($(date +%s) - T0)) "$*"; }
die() { printf 'tests/pg/setup.sh: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
case $VENV in /?*/?*) ;; *) die "PERSISTCTL_PG_VENV must be an absolute path two levels deep or more, got '$VENV'" ;; esac
[ -f "$REQ" ] || die "missing $REQ"
if [ -n "$ROOT" ]; then
    [ -x "$ROOT/usr/bin/env" ] || die "PG_SETUP_ROOT=$ROOT is not a root filesystem"
    grep -q '^VERSION_CODENAME=bookworm' "$ROOT/etc/os-release" || die "$ROOT is not Debian 12"
else
    grep -q '^VERSION_CODENAME=bookworm' /etc/os-release || die "this is not Debian 12 (bookworm)"
fi

# run CMD... on the host, or inside $ROOT with a clean environment (pip's own PIP_* settings of
# the caller, e.g. PIP_INDEX_URL or a proxy, are passed on). `run_for SECS CMD...` does the same
# under timeout(1): a step that hangs (network, a lock) is killed.
run() { run_for 0 "$@"; }
run_for() {
    local secs=$1 pre=()
    shift
    [ "$secs" = 0 ] || pre=(timeout --kill-after=30 "$secs")
    if [ -z "$ROOT" ]; then
        "${pre[@]}" "$@"
    else
        local pass=() v
        for v in $(compgen -e); do
            case $v in
                PIP_CERT) ;; # a host path; the host's bundle is handed over explicitly (pip --cert)
                PIP_* | http_proxy | https_proxy | HTTP_PROXY | HTTPS_PROXY | no_proxy | NO_PROXY)
                    pass+=("$v=${!v}") ;;
            esac
        done
        "${pre[@]}" chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive "${pass[@]}" "$@"
    fi
}

# One setup at a time per target (CI and a developer). Next to the venv, not in /var/lock: in a
# debootstrap root that is an absolute symlink, which from here would lead to the host's.
LOCK=$ROOT$(dirname "$VENV")/.setup.lock
mkdir -p "$(dirname "$LOCK")"
exec 8>"$LOCK"
flock -w 1800 8 || die "timed out waiting for $LOCK"

step "target: ${ROOT:-this host}; venv $VENV"

# ---- apt -----------------------------------------------------------------------------------
missing=()
for p in $APT_PACKAGES; do
    [ "$(run dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    step "apt: $APT_PACKAGES already installed"
else
    APT=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::http::Timeout=60 -o Acquire::Retries=3
        -o APT::Install-Recommends=false -y -q)
    step "apt-get update"
    run_for "$APT_TIMEOUT" "${APT[@]}" update >/dev/null ||
        die "apt-get update failed or took longer than ${APT_TIMEOUT}s"
    step "apt-get install ${missing[*]}"
    run_for "$APT_TIMEOUT" "${APT[@]}" install "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed or took longer than ${APT_TIMEOUT}s"
fi
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
for b in initdb pg_ctl postgres pg_controldata psql; do
    [ -x "$ROOT$PG_BIN/$b" ] || [ -x "$ROOT/usr/bin/$b" ] || die "missing $PG_BIN/$b after installing postgresql-$PG_MAJOR"
done
step "$(run "$PG_BIN/postgres" --version)"

# ---- venv ----------------------------------------------------------------------------------
# The marker names everything the venv was built from; a match means nothing to do.
want_marker() {
    printf 'recipe=%s\npython=%s\nrequirements=%s\n' "$VENV_RECIPE" \
        "$(run /usr/bin/python3 -c 'import sys; print(sys.version.split()[0])')" \
        "$(sha256sum <"$REQ" | cut -d' ' -f1)"
}
MARKER=$ROOT$VENV/.persistctl-requirements
want=$(want_marker)
if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$want" ]; then
    step "venv: up to date ($(sed -n 's/^requirements=\(.\{12\}\).*/requirements sha256 \1…/p' "$MARKER"))"
else
    # A venv cannot be moved after it is made (absolute paths in its scripts), so it is rebuilt
    # in place; the marker is written last, so an interrupted build is redone next time.
    step "venv: building $VENV (Debian's /usr/bin/python3)"
    rm -rf --one-file-system "$ROOT$VENV"
    mkdir -p "$ROOT$(dirname "$VENV")"
    run /usr/bin/python3 -m venv "$VENV"
    cp "$REQ" "$ROOT$VENV/requirements.txt"
    step "pip install -r requirements.txt ($(grep -c '^[A-Za-z]' "$REQ") pinned packages, wheels only)"
    cert=()
    if [ -n "$ROOT" ]; then
        # pip in the root trusts what the host trusts (a network may re-sign TLS with its own CA,
        # known to the host's bundle but not to the root's stock one).
        host_ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
        if [ -f "$host_ca" ]; then
            cp "$host_ca" "$ROOT$VENV/host-ca.crt"
            cert=(--cert "$VENV/host-ca.crt")
        fi
    fi
    run_for "$PIP_STEP_TIMEOUT" "$VENV/bin/pip" install --quiet "${cert[@]}" \
        --disable-pip-version-check --no-input --timeout 60 --retries 5 \
        --no-deps --only-binary :all: --require-virtualenv -r "$VENV/requirements.txt" ||
        die "pip install failed or took longer than ${PIP_STEP_TIMEOUT}s"
    rm -f "$ROOT$VENV/host-ca.crt"
    # --no-deps trusts requirements.txt to be complete; pip check proves it, except for the one
    # known substitution (psycopg2-binary provides barman's psycopg2).
    problems=$(run "$VENV/bin/pip" check 2>&1 | grep -v -E '^barman 3\.[0-9.]+ requires psycopg2, which is not installed\.$' |
        grep -v '^No broken requirements found\.$' || true)
    [ -z "$problems" ] || die "pip check: $problems"
    echo "$want" >"$MARKER"
fi

# ---- verify --------------------------------------------------------------------------------
for t in $CLOUD_TOOLS; do
    [ -x "$ROOT$VENV/bin/$t" ] || die "missing $VENV/bin/$t"
done
run "$VENV/bin/python" -c 'import boto3, botocore, psycopg2, moto.server' ||
    die "the venv cannot import boto3/psycopg2/moto.server"
# PostgreSQL runs archive_command and restore_command as the postgres user: it must be able to
# execute the venv.
run runuser -u postgres -- "$VENV/bin/barman-cloud-wal-archive" --version >/dev/null ||
    die "the postgres user cannot run $VENV/bin/barman-cloud-wal-archive"
step "$(run "$VENV/bin/barman-cloud-wal-archive" --version 2>&1), boto3 $(run "$VENV/bin/python" -c 'import boto3; print(boto3.__version__)'), moto $(run "$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
step "done in $(($(date +%s) - T0))s"
