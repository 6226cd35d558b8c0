# The config object persistctl reads, from a host's modules.storage.* settings, with nixpkgs' lib
# alone (no pkgs, no NixOS):
#
#   nix-instantiate --eval --strict --json -E '
#     import ./nix/render.nix {
#       lib = import <nixpkgs/lib>;
#       configuration = ./examples/forge.nix;
#     }'
#
# `configuration` is a module or a list of modules (paths, attrsets or functions). Besides
# modules.storage.* (and modules.notifications, modules.database.postgresql.pitr), they may enable the nixpkgs services the presets follow (services.sonarr.enable
# and so on); other NixOS settings are accepted and ignored (nix/lib/nixos-stubs.nix). The result is
# exactly what the NixOS module writes to /etc/persistctl/config.json.
{
  lib,
  configuration,
}:
let
  eval = lib.evalModules {
    modules = [
      ./modules/storage-datasets/options.nix
      ./modules/storage-datasets/presets.nix
      ./modules/notifications/options.nix
      ./modules/postgresql-pitr/options.nix
      ./lib/nixos-stubs.nix
      {
        _module.args = {
          pkgs = throw "nix/render.nix evaluates modules.storage.* without pkgs; keep pkgs out of the storage settings";
          utils = throw "nix/render.nix evaluates without NixOS' utils";
          modulesPath = throw "nix/render.nix evaluates without nixpkgs";
        };
      }
    ]
    ++ lib.toList configuration;
  };
  # What the NixOS half asserts for modules.database.postgresql.pitr, thrown here.
  pitrErrors = eval.config.modules.database.postgresql.pitr.rendered.errors;
in
if pitrErrors != [ ] then
  throw "modules.database.postgresql.pitr:\n${lib.concatMapStrings (e: "  - ${e}\n") pitrErrors}"
else
  eval.config.modules.storage.datasets.settings
