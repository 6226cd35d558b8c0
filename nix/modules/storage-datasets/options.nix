# modules.storage.datasets: the options and the config object they produce.
#
# The lib-only half of the module: it needs nothing but nixpkgs' lib, so `lib.evalModules` can
# evaluate it without pkgs (nix/render.nix, nix/docs.nix and the eval tests do exactly that).
# The NixOS wiring — the JSON file, the activation script, the units — is in ./nixos.nix.
{ config, lib, ... }:
let
  inherit (lib)
    literalExpression
    literalMD
    mkEnableOption
    mkOption
    types
    ;
  t = import ../../lib/checked-types.nix { inherit lib; };
  settingsLib = import ../../lib/settings.nix { inherit lib; };
  resticLib = import ../../lib/restic.nix { inherit lib; };
  cfg = config.modules.storage.datasets;

  parentMount = lib.removeSuffix "/" cfg.parentMount;

  resticBackupModule =
    serviceName:
    { ... }:
    {
      options = {
        enable = mkEnableOption "a restic backup job of this dataset, through nixpkgs' `services.restic.backups.<name>`";
      }
      // resticLib.repositoryOptions {
        repository = {
          example = "sftp:backup@nas:/srv/restic/forge";
          description = "Repository to back up to. Set this or `repositoryFile`.";
        };
        passwordFile.description = "File holding the repository password (required when the job is enabled).";
        tags = {
          default = [ serviceName ];
          defaultText = literalExpression ''[ "<name>" ]'';
          example = [
            "sonarr"
            "media"
          ];
          description = "Tags given to every snapshot of this job; `preseed.restic.tags` defaults to them.";
        };
      }
      // {
        exclude = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [
            "**/.cache"
            "**/*.tmp"
          ];
          description = "Patterns restic leaves out.";
        };
        timerConfig = mkOption {
          type = types.nullOr (
            types.attrsOf (
              types.oneOf [
                types.bool
                types.int
                types.str
                (types.listOf types.str)
              ]
            )
          );
          default = {
            OnCalendar = "daily";
            Persistent = true;
          };
          example = {
            OnCalendar = "03:15";
            RandomizedDelaySec = "30m";
            Persistent = true;
          };
          description = "When the job runs (`systemd.timer` settings); null for no timer.";
        };
        pruneOpts = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [
            "--keep-daily 7"
            "--keep-weekly 5"
            "--keep-monthly 12"
          ];
          description = "Options for `restic forget --prune` after each backup; empty for no pruning.";
        };
        initialize = mkOption {
          type = types.bool;
          default = false;
          example = true;
          description = "Create the repository if it does not exist yet.";
        };
        extraBackupArgs = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "--exclude-caches" ];
          description = "More arguments for `restic backup`.";
        };
        timeout = mkOption {
          type = t.positiveSeconds;
          default = 6 * 3600;
          defaultText = literalExpression "6 * 3600";
          example = 12 * 3600;
          description = ''
            Time limit of one run of the job (backup and prune), in seconds: the unit's
            `TimeoutStartSec`. nixpkgs' restic unit is a oneshot, which systemd would otherwise let
            hang forever, for example on an unreachable repository.
          '';
        };
      };
    };

  preseedModule =
    serviceName: service:
    { config, ... }:
    let
      p = config;
      backup = service.backup.restic;
      fromBackup = attr: if backup.enable then backup.${attr} else null;
    in
    {
      options = {
        enable = mkEnableOption ''
          restoring this dataset's data before its services start: a `preseed@<name>.service` unit runs
          `persistctl preseed <name>` and the services in `usedBy` require it, so a restore that fails
          keeps them stopped instead of starting them on an empty directory
        '';
        sources = mkOption {
          type = types.listOf (
            types.enum [
              "snapshot"
              "replica"
              "restic"
              "barman"
            ]
          );
          default = [
            "snapshot"
          ]
          ++ lib.optional (p.replica.dataset != null) "replica"
          ++ lib.optional (p.restic.repository != null || p.restic.repositoryFile != null) "restic";
          defaultText = literalMD ''
            the sources that are configured, in this order: `"snapshot"`, then `"replica"` when
            `replica.dataset` is set, then `"restic"` when `restic.repository` or
            `restic.repositoryFile` is set
          '';
          example = [
            "snapshot"
            "restic"
          ];
          description = ''
            Where to restore from, tried in order: `snapshot` (the dataset's own newest snapshot that
            holds data), `replica` (a syncoid target), `restic`, `barman` (a PostgreSQL cluster from its
            barman-cloud archive: set by `modules.database.postgresql.pitr` for `postgres-data`, which
            also writes the archive's settings).
          '';
        };
        allowEmptyBootstrap = mkOption {
          type = types.bool;
          default = false;
          example = true;
          description = ''
            Start with an empty dataset when every source answers "no backup exists". A source that
            cannot be reached (or a wrong password) never counts as "no backup": the restore fails
            and the service stays stopped.
          '';
        };
        timeout = mkOption {
          type = t.timeoutSeconds;
          default = 3600;
          example = 1800;
          description = ''
            Overall time limit of the restore, in seconds. The unit's `TimeoutStartSec` is this plus
            60 seconds, so persistctl's own timeout (which stops the restore and records it as
            failed) fires first.
          '';
        };
        sourceTimeout = mkOption {
          type = types.nullOr t.timeoutSeconds;
          default = null;
          example = 900;
          description = "Time limit per source, in seconds; null means the overall `timeout`.";
        };
        verifyCommand = mkOption {
          type = types.nullOr (types.nonEmptyListOf types.str);
          default = null;
          example = literalExpression ''[ "''${pkgs.sqlite}/bin/sqlite3" "-bail" ]'';
          description = ''
            A command (program and arguments) run on the staged data before it is swapped in, with
            the staged data's path appended. A non-zero exit rejects that source and the next one is
            tried.
          '';
        };
        ignore = mkOption {
          type = types.listOf t.fileName;
          default = [ "lost+found" ];
          example = [
            "lost+found"
            ".zfs"
          ];
          description = "Top-level entries that do not count as data when deciding whether the dataset is empty.";
        };
        dataMarkers = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "sonarr.db" ];
          description = ''
            Paths inside the dataset whose existence means "the data is here". Empty: any top-level
            entry not in `ignore` counts as data. Set it when something creates entries in the data
            directory before the service first runs (a tmpfiles rule, `StateDirectory`): then a dataset
            holding such entries but none of these paths is refused (the service stays down, and you are
            told), never taken as "data present" and skipped.
          '';
        };
        replica = {
          dataset = mkOption {
            type = types.nullOr t.datasetName;
            default = null;
            example = "backup/tank-replica/${serviceName}";
            description = "The syncoid target of this dataset (required when `sources` lists `replica`).";
          };
          host = mkOption {
            type = types.nullOr t.replicaHost;
            default = null;
            example = "syncoid@nas";
            description = "Where the replica lives (`user@host`, over ssh); null for a pool on this machine.";
          };
          sshKey = mkOption {
            type = types.nullOr t.secretPath;
            default = null;
            example = "/var/lib/syncoid/id_ed25519";
            description = "The ssh key for `host`.";
          };
        };
        restic = resticLib.repositoryOptions {
          repository = {
            default = fromBackup "repository";
            defaultText = literalMD "`backup.restic.repository` when `backup.restic.enable`, otherwise null";
            example = "/srv/restic/nas-primary";
            description = "The restic repository holding this service's backups. Set this or `repositoryFile`.";
          };
          repositoryFile = {
            default = fromBackup "repositoryFile";
            defaultText = literalMD "`backup.restic.repositoryFile` when `backup.restic.enable`, otherwise null";
          };
          passwordFile = {
            default = fromBackup "passwordFile";
            defaultText = literalMD "`backup.restic.passwordFile` when `backup.restic.enable`, otherwise null";
            description = "File holding the repository password (required with a repository). Never put on a command line or in a log.";
          };
          environmentFile = {
            default = fromBackup "environmentFile";
            defaultText = literalMD "`backup.restic.environmentFile` when `backup.restic.enable`, otherwise null";
          };
          tags = {
            default = if backup.enable then backup.tags else [ serviceName ];
            defaultText = literalMD ''`backup.restic.tags` when `backup.restic.enable`, otherwise `[ "<name>" ]`'';
            example = [ "sonarr" ];
            description = "Snapshots are selected by these tags.";
          };
        }
        // {
          path = mkOption {
            type = types.nullOr t.absolutePath;
            default = null;
            example = "/persist/var/lib/sonarr";
            description = ''
              The path inside the snapshot that holds the data, for backups taken before the data
              moved to this dataset; null means the dataset's mountpoint.
            '';
          };
          host = mkOption {
            type = types.nullOr types.str;
            default = null;
            example = "forge";
            description = "Only consider snapshots taken on this host (`restic --host`).";
          };
        };
      };
    };

  serviceModule =
    { name, config, ... }:
    {
      options = {
        recordsize = mkOption {
          type = types.nullOr t.recordsize;
          default = null;
          example = "16K";
          description = "ZFS `recordsize`; null inherits it from the parent.";
        };
        compression = mkOption {
          type = types.nullOr t.compression;
          default = null;
          example = "lz4";
          description = "ZFS `compression`; null inherits it from the parent.";
        };
        properties = mkOption {
          type = types.attrsOf types.str;
          default = { };
          example = {
            "com.sun:auto-snapshot" = "true";
            atime = "off";
            logbias = "latency";
          };
          description = ''
            Other ZFS properties: settable native ones (`atime`, `logbias`, `quota`, ...) or user
            properties (`module:name`, with a colon). `recordsize`, `compression` and `mountpoint`
            have their own options. Create-time-only properties (`casesensitivity`, `encryption`,
            ...) apply when the dataset is created; a later difference is reported, never "fixed"
            by recreating the dataset.
          '';
        };
        mountpoint = mkOption {
          type = types.nullOr t.absolutePath;
          default = null;
          example = "/srv/media";
          description = "Where the dataset is mounted; null means `<parentMount>/<name>`. Always set as a local property.";
        };
        owner = mkOption {
          type = types.nullOr t.account;
          default = null;
          example = "sonarr";
          description = "Owner of the dataset's root directory; null leaves it alone.";
        };
        group = mkOption {
          type = types.nullOr t.account;
          default = null;
          example = "sonarr";
          description = "Group of the dataset's root directory; null leaves it alone.";
        };
        mode = mkOption {
          type = types.nullOr t.octalMode;
          default = null;
          example = "0750";
          description = "Mode of the dataset's root directory; null leaves it alone.";
        };
        usedBy = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "sonarr" ];
          description = ''
            systemd services (names without `.service`) that keep data on this dataset. Each is
            ordered after `zfs-service-datasets.service` (and after `preseed@<name>.service`, which
            it requires, when `preseed.enable`), gets `RequiresMountsFor=` and
            `AssertPathIsMountPoint=` the dataset's path, and a first `ExecStartPre=` running
            `persistctl guard`, which refuses to start the service unless this dataset is what is
            mounted there (see `oldDataPath`). The presets fill this in.
          '';
        };
        oldDataPath = mkOption {
          type = types.nullOr t.absolutePath;
          default = null;
          example = "/var/lib/sonarr/.config/NzbDrone";
          description = ''
            Where the service kept its data before it moved to this dataset. A service refuses to
            start on an empty dataset while this directory holds files; migrate first
            (`persistctl migrate <name> --from <oldDataPath>`). Passed to `persistctl guard` as
            `--old-path <name>=<oldDataPath>` by the `usedBy` services and the restic job. The
            presets set it to the nixpkgs service's default data directory, when the preset moved
            the service's data directory onto this dataset.
          '';
        };
        tmpfiles = mkOption {
          type = types.bool;
          default = true;
          example = false;
          description = ''
            Add a `systemd.tmpfiles` rule `d <path> <mode> <owner> <group>` for the dataset's root
            directory (fields left as `-` when null).
          '';
        };
        path = mkOption {
          type = types.str;
          readOnly = true;
          default = if config.mountpoint != null then config.mountpoint else "${parentMount}/${name}";
          defaultText = literalMD "`mountpoint`, or `<parentMount>/<name>`";
          example = "/persist/sonarr";
          description = "Where the dataset is mounted (read-only). Use it for the service's data directory.";
        };
        dataset = mkOption {
          type = types.str;
          readOnly = true;
          default = "${cfg.parentDataset}/${name}";
          defaultText = literalMD "`<parentDataset>/<name>`";
          example = "tank/persist/sonarr";
          description = "The dataset's full name (read-only).";
        };
        preseed = mkOption {
          type = types.submodule (preseedModule name config);
          default = { };
          example = literalExpression ''
            {
              enable = true;
              replica.dataset = "backup/tank-replica/sonarr";
              restic = {
                repository = "/srv/restic/nas-primary";
                passwordFile = "/run/secrets/restic-password";
                path = "/persist/var/lib/sonarr";
              };
              timeout = 1800;
            }
          '';
          description = "Restore the dataset's data before its services start, when it is missing or empty.";
        };
        backup.restic = mkOption {
          type = types.submodule (resticBackupModule name);
          default = { };
          example = literalExpression ''
            {
              enable = true;
              repository = "sftp:backup@nas:/srv/restic/forge";
              passwordFile = "/run/secrets/restic-password";
              pruneOpts = [ "--keep-daily 7" "--keep-weekly 5" ];
            }
          '';
          description = ''
            A restic backup job for this dataset, made with nixpkgs' own `services.restic.backups.<name>`
            (paths = the dataset's path). Anything not offered here can be set on that job directly.
          '';
        };
      };
    };
in
{
  options.modules.storage.datasets = {
    enable = mkEnableOption "declarative, self-healing ZFS datasets for services (persistctl)";

    parentDataset = mkOption {
      type = t.datasetName;
      default = "rpool/safe/persist";
      example = "tank/persist";
      description = "Every service dataset is `<parentDataset>/<name>`.";
    };

    parentMount = mkOption {
      type = t.absolutePath;
      default = "/persist";
      example = "/persist";
      description = "Every service dataset is mounted at `<parentMount>/<name>` unless its `mountpoint` is set.";
    };

    createParent = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Create `parentDataset` (mounted at `parentMount`) when it is missing. Off by default, so a
        typo in the parent's name never mounts an empty dataset over real data.
      '';
    };

    package = mkOption {
      type = types.package;
      defaultText = literalMD "`pkgs.persistctl` when this flake's overlay is applied, otherwise this flake's package built with `pkgs.callPackage`";
      example = literalExpression "inputs.persistctl.packages.\${pkgs.stdenv.hostPlatform.system}.persistctl";
      description = "The persistctl package.";
    };

    applyTimeout = mkOption {
      type = t.positiveSeconds;
      default = 900;
      example = 1800;
      description = ''
        Time limit, in seconds, of one `persistctl apply`: `TimeoutStartSec` of
        `zfs-service-datasets.service`, and the `timeout` the activation script runs persistctl
        under (after which the switch goes on, with a warning).
      '';
    };

    zfsTimeout = mkOption {
      type = t.zfsCallSeconds;
      default = 120;
      example = 300;
      description = ''
        Deadline, in seconds, of each `zfs` call persistctl makes (`persistctl --zfs-timeout`). A
        suspended pool can block `zfs` in the kernel: persistctl gives up on it and reports it.
      '';
    };

    notifyCommand = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = literalExpression ''"''${pkgs.curl}/bin/curl -fsS -d \"preseed $PERSISTCTL_SERVICE: exit $PERSISTCTL_EXIT_STATUS\" https://ntfy.example/homelab"'';
      description = ''
        A shell command run after every `preseed@<name>.service` restore attempt, with
        `PERSISTCTL_SERVICE` (the service name) and `PERSISTCTL_EXIT_STATUS` (0: data present or
        restored; non-zero: failed, the service stays stopped) in its environment. Details are in
        `/var/lib/persistctl/preseed.json`. Its own failure is logged and ignored.
      '';
    };

    services = mkOption {
      type = types.attrsOf (types.submodule serviceModule);
      default = { };
      example = literalExpression ''
        {
          sonarr = {
            recordsize = "16K";
            compression = "lz4";
            properties."com.sun:auto-snapshot" = "true";
            owner = "sonarr";
            group = "sonarr";
            mode = "0700";
            usedBy = [ "sonarr" ];
          };
        }
      '';
      description = ''
        One dataset per service, `<parentDataset>/<name>`. The name is one dataset name component:
        letters, digits, `_ - . :` and space.
      '';
    };

    settings = mkOption {
      type = types.raw;
      internal = true;
      readOnly = true;
      description = "The config object persistctl reads (docs/config-format.md), as written to /etc/persistctl/config.json.";
    };
  };

  # `monitoring` comes from modules.replication.zfs when that module is imported and enabled.
  config.modules.storage.datasets.settings =
    let
      monitoring = config.modules.replication.zfs.rendered.monitoring or null;
      # `postgresql` comes from modules.database.postgresql.pitr when that module is imported and enabled.
      postgresql = config.modules.database.postgresql.pitr.rendered.postgresql or null;
    in
    settingsLib.render {
      inherit cfg;
      postgresql = if postgresql == null then { } else postgresql;
    }
    // lib.optionalAttrs (monitoring != null) { inherit monitoring; }
    # `notifications` comes from modules.notifications when that module is imported and enabled.
    // lib.optionalAttrs (config.modules.notifications.enable or false) {
      notifications = config.modules.notifications.settings;
    };
}
