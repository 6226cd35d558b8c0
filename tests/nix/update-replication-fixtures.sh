#!/usr/bin/env bash
# Regenerates tests/fixtures/replication/{sanoid.conf,config.json,syncoid.json} from
# tests/nix/replication-vm.nix (nix/modules/replication/render.nix). tests/status_real.rs runs real
# sanoid and syncoid from them; nix_eval.rs fails when they are out of date.
#   NIXPKGS_LIB=<dir containing lib/> tests/nix/update-replication-fixtures.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${NIXPKGS_LIB:?set NIXPKGS_LIB to a directory containing nixpkgs lib/ (e.g. a nixpkgs checkout)}"
export NIX_CONFIG=$'substituters =\nexperimental-features = nix-command flakes'
out=tests/fixtures/replication
mkdir -p "$out"
json=$(nix-instantiate --eval --strict --json \
  --arg lib "import $NIXPKGS_LIB/lib" --arg configuration ./tests/nix/replication-vm.nix \
  ./nix/modules/replication/render.nix)
printf '%s' "$json" | python3 -c '
import json, sys
r = json.load(sys.stdin)
out = sys.argv[1]
open(out + "/sanoid.conf", "w").write(r["sanoidConf"])
with open(out + "/config.json", "w") as f:
    json.dump(r["config"], f, indent=2, sort_keys=True); f.write("\n")
with open(out + "/syncoid.json", "w") as f:
    json.dump(r["syncoid"], f, indent=2, sort_keys=True); f.write("\n")
' "$out"
echo "wrote $out/sanoid.conf, config.json, syncoid.json"
