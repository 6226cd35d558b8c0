# The nixpkgs services the presets of modules.storage.datasets follow, with nixpkgs' (25.11) defaults:
# just the options the presets read (`enable`, `user`, `group`) or set (their data directories), and
# for postgresql what modules.database.postgresql.pitr reads or sets (`package`, `finalPackage`,
# `settings`, `systemCallFilter`), typed as nixpkgs types them.
# Shared by nix/lib/nixos-stubs.nix (render and docs with nixpkgs' lib alone) and the miniature NixOS
# of the tests (tests/nix/fake-nixos.nix); a real NixOS evaluation uses nixpkgs' own modules instead.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;

  str = default: mkOption { type = types.str; inherit default; };

  # A namespace of separate options, as in nixpkgs (one submodule option would make the presets'
  # `services.<name>.dataDir` depend on `services.<name>.enable` through the same value).
  nixpkgsService =
    extra:
    {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
      };
    }
    // extra;
in
{
  options.services = {
    sonarr = nixpkgsService {
      dataDir = str "/var/lib/sonarr/.config/NzbDrone";
      user = str "sonarr";
      group = str "sonarr";
    };
    radarr = nixpkgsService {
      dataDir = str "/var/lib/radarr/.config/Radarr";
      user = str "radarr";
      group = str "radarr";
    };
    plex = nixpkgsService {
      dataDir = str "/var/lib/plex";
      user = str "plex";
      group = str "plex";
    };
    home-assistant = nixpkgsService {
      configDir = str "/var/lib/hass";
    };
    postgresql = nixpkgsService {
      # nixpkgs: /var/lib/postgresql/<psqlSchema>; 17 is 25.11's default package.
      dataDir = mkOption {
        type = types.path;
        default = "/var/lib/postgresql/17";
      };
      initdbArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      # As in nixpkgs: no default here; nixpkgs sets one (by system.stateVersion) when the service is
      # enabled. The miniature NixOS of the tests sets its fake pkgs.postgresql_17 the same way, and
      # nix/lib/nixos-stubs.nix (no pkgs) a placeholder.
      package = mkOption {
        type = types.package;
      };
      # nixpkgs: the package with JIT and extensions applied (`package.withPackages extensions`),
      # read-only; there is neither here, so it is the package.
      finalPackage = mkOption {
        type = types.package;
        readOnly = true;
        default = config.services.postgresql.package;
      };
      # nixpkgs' type: postgresql.conf settings as a freeform attrset of scalars, with these three
      # declared (the string values are quoted by nixpkgs when it writes the file).
      settings = mkOption {
        type = types.submodule {
          freeformType = types.attrsOf (
            types.oneOf [
              types.bool
              types.float
              types.int
              types.str
            ]
          );
          options = {
            shared_preload_libraries = mkOption {
              type = types.nullOr (types.coercedTo (types.listOf types.str) (lib.concatStringsSep ",") types.commas);
              default = null;
            };
            log_line_prefix = mkOption {
              type = types.str;
              default = "[%p] ";
            };
            port = mkOption {
              type = types.port;
              default = 5432;
            };
          };
        };
        default = { };
      };
      # nixpkgs' type: SystemCallFilter= entries of postgresql.service, each a bool or
      # { enable; priority; } (nixpkgs turns them into the unit's list, sorted by priority).
      systemCallFilter = mkOption {
        type = types.attrsOf (
          types.coercedTo types.bool (enable: { inherit enable; }) (
            types.submodule (
              { name, ... }:
              {
                options = {
                  enable = mkOption {
                    type = types.bool;
                    default = false;
                  };
                  priority = mkOption {
                    type = types.int;
                    default =
                      if lib.hasPrefix "@" name then
                        500
                      else if lib.hasPrefix "~@" name then
                        1000
                      else
                        1500;
                  };
                };
              }
            )
          )
        );
      };
    };
  };
}
