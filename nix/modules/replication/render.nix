# What modules.replication.zfs renders for a host, with nixpkgs' lib alone (no pkgs, no NixOS):
#
#   nix-instantiate --eval --strict --json -E '
#     import ./nix/modules/replication/render.nix {
#       lib = import <nixpkgs/lib>;
#       configuration = ./tests/nix/replication-vm.nix;
#     }'
#
# → { sanoidConf; sanoid; syncoid; config; }: sanoid.conf as nixpkgs writes it, the values given to
# services.sanoid and services.syncoid, and persistctl's config file (with its `monitoring` section).
# tests/nix/update-replication-fixtures.sh writes them to tests/fixtures/replication/.
{
  lib,
  configuration,
}:
let
  eval = lib.evalModules {
    modules = [
      ../storage-datasets/options.nix
      ../storage-datasets/presets.nix
      ../../lib/nixos-stubs.nix
      ./options.nix
      {
        _module.args = {
          pkgs = throw "render.nix evaluates without pkgs";
          utils = throw "render.nix evaluates without NixOS' utils";
          modulesPath = throw "render.nix evaluates without nixpkgs";
        };
      }
    ]
    ++ lib.toList configuration;
  };
  r = eval.config.modules.replication.zfs.rendered;
in
if r.errors != [ ] then
  throw "modules.replication.zfs:\n${lib.concatMapStrings (e: "  - ${e}\n") r.errors}"
else
  {
    inherit (r) sanoidConf sanoid syncoid;
    config = eval.config.modules.storage.datasets.settings;
  }
