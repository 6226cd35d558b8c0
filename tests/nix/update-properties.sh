#!/usr/bin/env bash
# Regenerates nix/lib/properties.json, the property model the NixOS module checks `properties` against
# at evaluation time, from the binary's own tables (core/src/zfs/props.rs): `persistctl properties --json`.
# tests/properties_contract.rs fails when the committed file is not what the binary prints.
#   tests/nix/update-properties.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --bin persistctl -- properties --json > nix/lib/properties.json.tmp
mv nix/lib/properties.json.tmp nix/lib/properties.json
echo "wrote nix/lib/properties.json"
