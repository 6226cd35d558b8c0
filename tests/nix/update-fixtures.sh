#!/usr/bin/env bash
# Regenerates tests/fixtures/rendered/<host>.json from examples/<host>.nix (nix/render.nix).
# The real-ZFS tests apply these files; nix_eval.rs fails when they are out of date.
#   NIXPKGS_LIB=<dir containing lib/> tests/nix/update-fixtures.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${NIXPKGS_LIB:?set NIXPKGS_LIB to a directory containing nixpkgs lib/ (e.g. a nixpkgs checkout)}"
export NIX_CONFIG=$'substituters =\nexperimental-features = nix-command flakes'
mkdir -p tests/fixtures/rendered
for example in examples/*.nix; do
  host=$(basename "$example" .nix)
  nix-instantiate --eval --strict --json \
    --arg lib "import $NIXPKGS_LIB/lib" --arg configuration "./$example" ./nix/render.nix \
    | python3 -c 'import json, sys; json.dump(json.load(sys.stdin), sys.stdout, indent=2, sort_keys=True); print()' \
    > "tests/fixtures/rendered/$host.json"
  echo "wrote tests/fixtures/rendered/$host.json"
done
