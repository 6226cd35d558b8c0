# The nixpkgs services the presets of modules.storage.datasets follow, with nixpkgs' (25.11) defaults:
# just the options the presets read (`enable`, `user`, `group`) or set (their data directories).
# Shared by nix/lib/nixos-stubs.nix (render and docs with nixpkgs' lib alone) and the miniature NixOS
# of the tests (tests/nix/fake-nixos.nix); a real NixOS evaluation uses nixpkgs' own modules instead.
{ lib, ... }:
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
    };
  };
}
