# Presets: datasets for nixpkgs services, with the seed's property matrix.
#
# When modules.storage.datasets is enabled and one of these nixpkgs services is enabled, the
# preset declares its dataset (values as mkDefault: override any of them under
# modules.storage.datasets.services.<name>), points the service's data directory at it, lists
# the service in `usedBy` and records nixpkgs' default data directory as `oldDataPath` (the
# service refuses to start on the empty dataset while data is still there). No pkgs needed: this
# file only reads and sets options.
#
# | dataset        | service          | recordsize | compression | properties                  |
# |----------------|------------------|------------|-------------|-----------------------------|
# | sonarr         | sonarr           | 16K        | lz4         | com.sun:auto-snapshot=true  |
# | radarr         | radarr           | 16K        | lz4         | com.sun:auto-snapshot=true  |
# | plex           | plex             | 1M         | lz4         | com.sun:auto-snapshot=false |
# | home-assistant | home-assistant   | 16K        | lz4         | com.sun:auto-snapshot=true  |
# | postgres-data  | postgresql       | 8K         | lz4         | logbias=latency             |
# | postgres-wal   | postgresql       | 128K       | off         | logbias=throughput          |
{ config, lib, ... }:
let
  inherit (lib)
    literalMD
    mkDefault
    mkIf
    mkMerge
    mkOption
    types
    ;
  cfg = config.modules.storage.datasets;
  presets = cfg.presets;
  datasets = cfg.services;

  # Above mkDefault (1000) and the service's own option default, below a plain definition (100):
  # the preset moves the data directory, and a host that sets it explicitly still wins.
  dataDirPriority = 900;
  setDataDir = lib.mkOverride dataDirPriority;

  serviceEnabled = service: config.services.${service}.enable or false;

  presetOption =
    preset: service:
    mkOption {
      type = types.bool;
      default = presets.enable && serviceEnabled service;
      defaultText = literalMD "`presets.enable && config.services.${service}.enable`";
      example = false;
      description = ''
        Give `services.${service}` its own dataset `<parentDataset>/${preset}` with the preset's
        properties, and move its data directory there.
      '';
    };

  # The dataset of a preset: the matrix values as defaults, the service as its user.
  presetDataset =
    {
      recordsize,
      compression,
      properties,
      owner,
      group,
      mode,
      usedBy,
      oldDataPath ? null,
    }:
    {
      recordsize = mkDefault recordsize;
      compression = mkDefault compression;
      properties = lib.mapAttrs (_: mkDefault) properties;
      owner = mkDefault owner;
      group = mkDefault group;
      mode = mkDefault mode;
      inherit usedBy;
    }
    // lib.optionalAttrs (oldDataPath != null) { inherit oldDataPath; };

  # nixpkgs' default data directory of a service, as the guard's `--old-path`: on a host that ran
  # the service before, its data is still there while the preset's dataset starts empty. Only when
  # the preset's data directory won (a host that sets the data directory itself keeps it).
  nixpkgsDataPath =
    { dataDir, dataset, nixpkgsDefault }:
    mkDefault (if toString dataDir == datasets.${dataset}.path then nixpkgsDefault else null);

  autoSnapshot = on: { "com.sun:auto-snapshot" = if on then "true" else "false"; };
in
{
  options.modules.storage.datasets.presets = {
    enable = mkOption {
      type = types.bool;
      default = true;
      example = false;
      description = ''
        Let the presets below follow the nixpkgs services: each preset is on when its service is
        enabled. Turn this off to declare every dataset yourself.
      '';
    };
    sonarr.enable = presetOption "sonarr" "sonarr";
    radarr.enable = presetOption "radarr" "radarr";
    plex.enable = presetOption "plex" "plex";
    home-assistant.enable = presetOption "home-assistant" "home-assistant";
    postgresql = {
      enable = (presetOption "postgres-data" "postgresql") // {
        description = ''
          Give `services.postgresql` its own dataset `<parentDataset>/postgres-data` (8K records,
          `logbias=latency`) and use it as `services.postgresql.dataDir` (the dataset's root is the
          data directory, so nothing is created inside it before a restore can run).
        '';
      };
      separateWal = mkOption {
        type = types.bool;
        default = true;
        example = false;
        description = ''
          Also create `<parentDataset>/postgres-wal` (128K records, no compression,
          `logbias=throughput`) and pass `--waldir=<its path>/pg_wal` to `initdb`. This only takes
          effect when a cluster is created: an existing cluster keeps its `pg_wal` until it is
          moved by hand (stop PostgreSQL, move `pg_wal`, symlink it).
        '';
      };
    };
  };

  config = mkIf cfg.enable (mkMerge [
    (mkIf presets.sonarr.enable {
      modules.storage.datasets.services.sonarr = presetDataset {
        recordsize = "16K";
        compression = "lz4";
        properties = autoSnapshot true;
        owner = config.services.sonarr.user;
        group = config.services.sonarr.group;
        # nixpkgs' own rule for the data dir uses 0700; a different mode would flip at every boot.
        mode = "0700";
        usedBy = [ "sonarr" ];
        oldDataPath = nixpkgsDataPath {
          dataDir = config.services.sonarr.dataDir;
          dataset = "sonarr";
          nixpkgsDefault = "/var/lib/sonarr/.config/NzbDrone";
        };
      };
      services.sonarr.dataDir = setDataDir datasets.sonarr.path;
    })

    (mkIf presets.radarr.enable {
      modules.storage.datasets.services.radarr = presetDataset {
        recordsize = "16K";
        compression = "lz4";
        properties = autoSnapshot true;
        owner = config.services.radarr.user;
        group = config.services.radarr.group;
        mode = "0700";
        usedBy = [ "radarr" ];
        oldDataPath = nixpkgsDataPath {
          dataDir = config.services.radarr.dataDir;
          dataset = "radarr";
          nixpkgsDefault = "/var/lib/radarr/.config/Radarr";
        };
      };
      services.radarr.dataDir = setDataDir datasets.radarr.path;
    })

    (mkIf presets.plex.enable {
      modules.storage.datasets.services.plex = presetDataset {
        recordsize = "1M";
        compression = "lz4";
        properties = autoSnapshot false;
        owner = config.services.plex.user;
        group = config.services.plex.group;
        mode = "0750";
        usedBy = [ "plex" ];
        oldDataPath = nixpkgsDataPath {
          dataDir = config.services.plex.dataDir;
          dataset = "plex";
          nixpkgsDefault = "/var/lib/plex";
        };
      };
      services.plex.dataDir = setDataDir datasets.plex.path;
    })

    (mkIf presets.home-assistant.enable {
      # nixpkgs runs Home Assistant as the fixed user and group `hass`.
      modules.storage.datasets.services.home-assistant = presetDataset {
        recordsize = "16K";
        compression = "lz4";
        properties = autoSnapshot true;
        owner = "hass";
        group = "hass";
        mode = "0700";
        usedBy = [ "home-assistant" ];
        oldDataPath = nixpkgsDataPath {
          dataDir = config.services.home-assistant.configDir;
          dataset = "home-assistant";
          nixpkgsDefault = "/var/lib/hass";
        };
      };
      services.home-assistant.configDir = setDataDir datasets.home-assistant.path;
    })

    (mkIf presets.postgresql.enable {
      # nixpkgs runs PostgreSQL as the fixed user and group `postgres`; initdb wants 0700.
      modules.storage.datasets.services.postgres-data = presetDataset {
        recordsize = "8K";
        compression = "lz4";
        properties.logbias = "latency";
        owner = "postgres";
        group = "postgres";
        mode = "0700";
        usedBy = [ "postgresql" ];
        # nixpkgs: /var/lib/postgresql/<psqlSchema of services.postgresql.package>; the stand-in of
        # nix/lib/nixpkgs-services.nix has no package and uses 25.11's default, 17.
        oldDataPath = nixpkgsDataPath {
          dataDir = config.services.postgresql.dataDir;
          dataset = "postgres-data";
          nixpkgsDefault = "/var/lib/postgresql/${config.services.postgresql.package.psqlSchema or "17"}";
        };
      };
      services.postgresql.dataDir = setDataDir datasets.postgres-data.path;
    })

    (mkIf (presets.postgresql.enable && presets.postgresql.separateWal) {
      modules.storage.datasets.services.postgres-wal = presetDataset {
        recordsize = "128K";
        compression = "off";
        properties.logbias = "throughput";
        owner = "postgres";
        group = "postgres";
        mode = "0700";
        usedBy = [ "postgresql" ];
      };
      services.postgresql.initdbArgs = [ "--waldir=${datasets.postgres-wal.path}/pg_wal" ];
    })
  ]);
}
