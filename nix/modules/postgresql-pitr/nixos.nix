# modules.database.postgresql.pitr, the NixOS half: PostgreSQL's WAL archiving settings and
# credentials, barman-cloud for the restore unit, the base backup and retention units, and the
# PostgreSQL datasets kept out of the generated restic jobs. What is restored, which base backup and
# what is deleted is decided by persistctl (`preseed`, `pg-base-backup`, `pg-retention`) from the
# config's `postgresql` section (./options.nix); this file only decides when it runs.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  inherit (lib)
    mkDefault
    mkIf
    mkMerge
    optional
    ;
  cfg = config.modules.database.postgresql.pitr;
  storage = config.modules.storage.datasets;
  pg = config.services.postgresql;
  at = "modules.database.postgresql.pitr";

  dataService = "postgres-data";
  pgDatasets = builtins.filter (name: storage.services ? ${name}) [
    dataService
    "postgres-wal"
  ];

  persistctlArgv =
    args:
    utils.escapeSystemdExecArgs (
      [
        "${storage.package}/bin/persistctl"
        "--config"
        "${config.system.build.persistctlConfig}"
      ]
      ++ args
    );

  # persistctl runs barman-cloud from here, and drops to the server's user with setpriv.
  barmanUnit = {
    path = [
      cfg.barmanPackage
      pkgs.util-linux
    ];
    environment.PERSISTCTL_BARMAN_DIR = "${cfg.barmanPackage}/bin";
  };

  # Failures reach modules.notifications when it is on (it provides notify@.service).
  onFailure = optional (config.modules.notifications.enable or false) "notify@%n.service";

  # A persistctl oneshot that talks to the archive: after the network, never restarted by a switch
  # (that would kill a base backup half-way), with a start timeout (a oneshot has none by default):
  # persistctl's own `--timeout` plus 60 s, so persistctl stops the barman-cloud child and says so
  # before systemd kills the lot.
  archiveOneshot =
    {
      description,
      args,
      timeout,
    }:
    mkMerge [
      barmanUnit
      {
        inherit description onFailure;
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        restartIfChanged = false;
        serviceConfig = {
          Type = "oneshot";
          ExecStart = persistctlArgv (
            args
            ++ [
              "--timeout"
              (toString timeout)
            ]
          );
          TimeoutStartSec = timeout + 60;
        };
      }
    ];

  timer = onCalendar: {
    wantedBy = [ "timers.target" ];
    timerConfig = {
      OnCalendar = onCalendar;
      Persistent = true;
    };
  };

  # A restic pattern matching exactly `path` (restic's patterns are globs).
  resticLiteral = lib.replaceStrings [ "\\" "*" "?" "[" ] [ "\\\\" "\\*" "\\?" "\\[" ];
  # The PostgreSQL datasets mounted below `path` (a generated restic job there would descend into them).
  pgPathsBelow =
    path:
    builtins.filter (p: lib.hasPrefix "${lib.removeSuffix "/" path}/" p) (
      map (name: storage.services.${name}.path) pgDatasets
    );
in
{
  config = mkIf cfg.enable (mkMerge [
    {
      assertions =
        map (message: {
          assertion = false;
          inherit message;
        }) cfg.rendered.errors
        ++ [
          {
            assertion = builtins.elem (toString pg.settings.wal_level) [
              "replica"
              "logical"
            ];
            message = ''${at}: services.postgresql.settings.wal_level is "${toString pg.settings.wal_level}"; WAL archiving needs "replica" (the default here) or "logical"'';
          }
          {
            assertion = builtins.elem (toString pg.settings.archive_mode) [
              "on"
              "always"
            ];
            message = ''${at}: services.postgresql.settings.archive_mode is "${toString pg.settings.archive_mode}"; it must be "on" (the default here) or "always", or no WAL is archived'';
          }
        ];

      services.postgresql.settings = {
        wal_level = mkDefault "replica";
        archive_mode = mkDefault "on";
        archive_command = cfg.walArchiveCommand;
        archive_timeout = cfg.archiveTimeout;
        max_wal_senders = mkDefault 3;
      };

      # archive_command runs in the server's environment: the credentials come from there.
      systemd.services.postgresql.serviceConfig = mkIf (cfg.environmentFile != null) {
        EnvironmentFile = [ cfg.environmentFile ];
      };

      # --- services.postgresql.systemCallFilter ------------------------------------------------
      # postgresql.service is sandboxed (nixpkgs: SystemCallFilter=@system-service ~@privileged
      # ~@resources, MemoryDenyWriteExecute), and archive_command (Python, boto3) runs inside it: a
      # syscall outside the filter kills the archiver with SIGSYS (NixOS/nixpkgs#385603). What
      # barman-cloud-wal-archive needs under that sandbox is being measured (issue 11); the
      # adjustments, if any, go here, e.g. `services.postgresql.systemCallFilter."<name>" = true;`.
      # Nothing is relaxed on a guess.
      # ------------------------------------------------------------------------------------------

      # The restore (the `barman` preseed source, ordered before postgresql.service by the storage
      # module) runs barman-cloud-restore and the recovery.
      systemd.services."preseed@${dataService}" = barmanUnit;
      # `persistctl status` lists the base backups (barman-cloud) and queries pg_stat_archiver
      # (psql as the server's user) for the PostgreSQL checks.
      systemd.services.persistctl-status = mkIf (config.modules.replication.zfs.monitoring.enable or false) barmanUnit;

      systemd.services.postgresql-base-backup = mkMerge [
        (archiveOneshot {
          description = "PostgreSQL base backup to the barman-cloud archive (persistctl pg-base-backup)";
          args = [
            "pg-base-backup"
            dataService
          ];
          timeout = cfg.baseBackupTimeout;
        })
        {
          requires = [ "postgresql.service" ];
          after = [ "postgresql.service" ];
        }
      ];
      systemd.timers.postgresql-base-backup = timer cfg.baseBackupSchedule;

      # After a restore, the restored cluster gets a base backup of its own at once (its WAL goes to
      # the archive from its new timeline), and the restored backup's pin is released; a no-op on
      # any other start. Started with postgresql.service, after it is up (and postgresql-setup, which
      # waits for the end of recovery, where it exists).
      systemd.services.postgresql-base-backup-after-restore = mkMerge [
        (archiveOneshot {
          description = "PostgreSQL base backup after a restore from the barman-cloud archive (persistctl pg-base-backup --if-restored)";
          args = [
            "pg-base-backup"
            "--if-restored"
            dataService
          ];
          timeout = cfg.baseBackupTimeout;
        })
        {
          wantedBy = [ "postgresql.service" ];
          requires = [ "postgresql.service" ];
          after = [
            "postgresql.service"
            "postgresql-setup.service"
          ];
        }
      ];
    }

    (mkIf (cfg.retention != null) {
      systemd.services.postgresql-retention = archiveOneshot {
        description = "Delete PostgreSQL base backups and WAL outside the retention policy (persistctl pg-retention)";
        args = [
          "pg-retention"
          dataService
        ];
        timeout = cfg.retentionTimeout;
      };
      systemd.timers.postgresql-retention = timer cfg.retentionSchedule;
    })

    # Seed 6.3: the PostgreSQL datasets are never in a generated restic job. Their own jobs are
    # refused (./options.nix); a job of a dataset mounted above one of them excludes it.
    {
      services.restic.backups = lib.mapAttrs (_: s: { exclude = map resticLiteral (pgPathsBelow s.path); }) (
        lib.filterAttrs (_: s: s.backup.restic.enable && pgPathsBelow s.path != [ ]) storage.services
      );
    }
  ]);
}
