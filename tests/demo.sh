#!/usr/bin/env bash
# The main job on an embedded default, for a newcomer: boots the real-ZFS VM (OpenZFS 2.3, what NixOS
# 25.11 ships), makes a throwaway pool laid out like the seed's forge host (tank/persist, legacy,
# mounted at /persist), then runs persistctl with examples/forge.nix's config
# (tests/fixtures/rendered/forge.json): plan, apply, apply again (a no-op), show.
# The first run provisions the VM (about 5 minutes); later runs take about a minute.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
ZFS_LINES=${ZFS_LINE:-2.3} tests/vm/setup.sh
cargo build --quiet --release --bin persistctl
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export DEMO_BIN=/host$TARGET/release/persistctl DEMO_CONFIG=/host$REPO/tests/fixtures/rendered/forge.json
VM_ENV="DEMO_BIN DEMO_CONFIG" tests/vm/run.sh "${ZFS_LINE:-2.3}" '
set -eu
step() { printf "\n\033[1m== %s\033[0m\n" "$*"; }
step "a throwaway pool: tank on a 1 GiB file, tank/persist (mountpoint=legacy) mounted at /persist"
truncate -s 1G /tmp/tank.img
zpool create -f -o cachefile=none -O mountpoint=none tank /tmp/tank.img
zfs create -o mountpoint=legacy tank/persist
mkdir -p /persist && mount -t zfs tank/persist /persist
for u in sonarr radarr plex; do useradd --system --no-create-home "$u"; done
export PERSISTCTL_CONFIG=$DEMO_CONFIG
step "persistctl plan   (exit 2: changes pending)"
"$DEMO_BIN" plan || echo "(exit $?)"
step "persistctl apply"
"$DEMO_BIN" apply
step "persistctl apply again: nothing to do, one zfs process, no writes"
"$DEMO_BIN" apply
step "persistctl show"
"$DEMO_BIN" show
step "what the host sees"
zfs list -o name,recordsize,compression,mountpoint,mounted -r tank
ls -ld /persist/*
'
