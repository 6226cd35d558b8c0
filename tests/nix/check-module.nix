# What `nixos-rebuild build` would say about a host's modules.storage.* settings, as far as it can
# be evaluated without nixpkgs: evaluates the whole module (options, presets, NixOS wiring) in
# tests/nix/fake-nixos.nix, fails on failed assertions like NixOS does, and forces everything the
# module produces. Returns the config file's JSON text.
{
  lib,
  configuration,
}:
let
  config = import ./fake-nixos.nix { inherit lib configuration; };
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  produced = {
    json = config.system.build.persistctlConfig.env.json or null;
    inherit (config.systemd) services tmpfiles;
    inherit (config.system) activationScripts;
    restic = config.services.restic.backups;
  };
in
if failed != [ ] then
  throw "\nFailed assertions:\n${lib.concatMapStrings (m: "- ${m}\n") failed}"
else
  builtins.deepSeq produced produced.json
