# Stand-ins for the NixOS options that the lib-only half of modules.storage.datasets reads or sets
# (the presets read `services.<name>.enable/user/group` and set data directories), so that
# nix/render.nix and nix/docs.nix can evaluate a host's storage settings with nixpkgs' lib alone.
#
# Defaults mirror nixpkgs. Only the services the presets follow exist (nix/lib/nixpkgs-services.nix:
# enable, openFirewall and their data-directory options); other top-level NixOS namespaces a host module may touch (boot,
# networking, systemd, ...) are accepted and ignored. Everything under modules.storage.* is checked
# in full: a typo there is an error, as in a real NixOS evaluation.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;

  anything = mkOption {
    type = types.lazyAttrsOf types.anything;
    default = { };
    description = "Ignored by nix/render.nix.";
  };
in
{
  imports = [ ./nixpkgs-services.nix ];

  options = {
    services.restic.backups = anything;
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    boot = anything;
    environment = anything;
    fileSystems = anything;
    networking = anything;
    nixpkgs = anything;
    programs = anything;
    security = anything;
    system = anything;
    systemd = anything;
    time = anything;
    users = anything;
    virtualisation = anything;
  };

  # nixpkgs picks services.postgresql.package from pkgs by system.stateVersion; without pkgs, a
  # placeholder of 25.11's default (17) stands in. It only reaches the config as the store path in
  # `postgresql.<service>.binDir`, which a real evaluation replaces with the package's.
  config.services.postgresql.package = lib.mkIf config.services.postgresql.enable (lib.mkDefault {
    type = "derivation";
    name = "postgresql-17";
    version = "17";
    psqlSchema = "17";
    outPath = "/nix/store/00000000000000000000000000000000-postgresql-17";
  });
}
