#!/usr/bin/env bash
# Regenerates docs/options.md from the option declarations (nix/docs.nix).
#   NIXPKGS_LIB=<dir containing lib/> tests/nix/gen-options-doc.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${NIXPKGS_LIB:?set NIXPKGS_LIB to a directory containing nixpkgs lib/ (e.g. a nixpkgs checkout)}"
export NIX_CONFIG=$'substituters =\nexperimental-features = nix-command flakes'
out=$(nix-instantiate --eval --strict --json \
  --arg lib "import $NIXPKGS_LIB/lib" ./nix/docs.nix)
printf '%s' "$out" | python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin))' > docs/options.md
echo "wrote docs/options.md"
