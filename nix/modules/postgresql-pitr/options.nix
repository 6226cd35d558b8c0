# modules.database.postgresql.pitr: PostgreSQL point-in-time recovery with barman-cloud (seed phase 6,
# issue 11). WAL is archived continuously by PostgreSQL's `archive_command`, base backups are taken on a
# timer, and an empty PGDATA is restored by `preseed@postgres-data.service` (the `barman` source) before
# `postgresql.service` could run `initdb` on it.
#
# The lib-only half: it needs nothing but nixpkgs' lib (nix/render.nix and nix/docs.nix evaluate it
# without pkgs). It declares the options, turns on the postgresql preset and the PGDATA dataset's
# preseed, and renders the `postgresql.<service>` object of persistctl's config
# (core/src/config/barman.rs) into `rendered`, with what a type cannot check in `rendered.errors`
# (the NixOS half makes them assertions; nix/render.nix throws them). The postgresql settings and the
# units are ./nixos.nix.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    literalExpression
    literalMD
    mkEnableOption
    mkOption
    optional
    optionals
    types
    ;
  t = import ../../lib/checked-types.nix { inherit lib; };
  cfg = config.modules.database.postgresql.pitr;
  storage = config.modules.storage.datasets;
  pg = config.services.postgresql;
  at = "modules.database.postgresql.pitr";

  # The service (dataset) whose root is PGDATA, and the one holding pg_wal (the preset's names).
  dataService = "postgres-data";
  walService = "postgres-wal";
  separateWal = storage.presets.postgresql.enable && storage.presets.postgresql.separateWal;

  destinationUrl =
    if cfg.destination != null then
      cfg.destination
    else if cfg.s3Bucket != null then
      "s3://${cfg.s3Bucket}"
    else
      null;

  # barman-cloud's compression flags; the same four for barman-cloud-backup and -wal-archive.
  compressionFlag = {
    gzip = "--gzip";
    bzip2 = "--bzip2";
    snappy = "--snappy";
    lz4 = "--lz4";
  };

  # The archive's place on every barman-cloud command line: `[--cloud-provider P] [--endpoint-url U]`.
  archiveArgs =
    optionals (cfg.cloudProvider != null) [
      "--cloud-provider"
      cfg.cloudProvider
    ]
    ++ optionals (cfg.endpointUrl != null) [
      "--endpoint-url"
      cfg.endpointUrl
    ];

  # Without a destination an assertion (`errors`) stops the build; `false` only keeps the settings
  # evaluable until it is reported (nixpkgs checks every postgresql setting's type at once).
  defaultArchiveCommand =
    if destinationUrl == null then
      "false"
    else
      lib.escapeShellArgs (
        [ "${cfg.barmanPackage}/bin/barman-cloud-wal-archive" ]
        ++ archiveArgs
        ++ optional (cfg.compression != null) compressionFlag.${cfg.compression}
        ++ [
          destinationUrl
          cfg.serverName
        ]
      )
      + " %p";

  inStore = path: path != null && lib.hasPrefix "${builtins.storeDir}/" path;

  # The first of `unix_socket_directories` when it is set, else nixpkgs' RuntimeDirectory.
  socketDir =
    let
      dirs = pg.settings.unix_socket_directories or null;
    in
    if builtins.isString dirs && dirs != "" then
      lib.strings.trim (builtins.head (lib.splitString "," dirs))
    else
      "/run/postgresql";

  errors =
    let
      datasetOption = name: "modules.storage.datasets.services.${name}";
    in
    optional (
      destinationUrl == null
    ) ''${at}: set s3Bucket ("bucket/prefix") or destination ("s3://bucket/prefix"): where the WAL and base backups go''
    ++ optional (
      cfg.s3Bucket != null && cfg.destination != null
    ) "${at}: set s3Bucket or destination, not both"
    ++ optional (inStore cfg.environmentFile) "${at}.environmentFile: ${cfg.environmentFile} is in the Nix store, which every local user can read; keep the credentials in a file outside it (e.g. /run/secrets/pitr.env from sops-nix or agenix) and give its path as a string"
    ++ optional (inStore cfg.passwordFile) "${at}.passwordFile: ${cfg.passwordFile} is in the Nix store, which every local user can read; keep the password file outside it and give its path as a string"
    ++ optional (
      !pg.enable
    ) "${at} needs services.postgresql.enable = true: it archives, backs up and restores that server"
    ++ optional (
      !storage.enable
    ) "${at} needs modules.storage.datasets.enable = true: PGDATA lives on its ${dataService} dataset"
    ++ optional (
      storage.enable && !storage.presets.postgresql.enable
    ) "${at} needs modules.storage.datasets.presets.postgresql.enable: the ${dataService} dataset (and ${walService}) it restores into"
    ++ optional (
      storage.enable && storage.services ? ${dataService} && toString pg.dataDir != storage.services.${dataService}.path
    ) "${at}: services.postgresql.dataDir is ${toString pg.dataDir}, not the ${dataService} dataset's ${storage.services.${dataService}.path}: a restore would go where PostgreSQL does not look"
    ++ lib.concatMap (
      name:
      optional (storage.services.${name}.backup.restic.enable or false) "${datasetOption name}.backup.restic.enable: ${name} is backed up by barman-cloud (${at}); a restic copy of a running cluster's files is not a consistent backup (seed 6.3: PostgreSQL data is excluded from file backups)"
    ) (
      [ dataService ] ++ optional separateWal walService
    );
in
{
  options.modules.database.postgresql.pitr = {
    enable = mkEnableOption ''
      point-in-time recovery for `services.postgresql` with barman-cloud: WAL archived continuously
      (`archive_command`), base backups on a timer, and a restore of an empty `postgres-data` dataset
      (to the end of the archive, or to `targetTime`) before PostgreSQL starts. The PostgreSQL datasets
      are kept out of the restic jobs this project generates (a `services.restic.backups` job written
      by hand over their parent must exclude them itself)'';

    s3Bucket = mkOption {
      type = types.nullOr t.s3Bucket;
      default = null;
      example = "homelab-pitr/forge";
      description = ''
        The S3 bucket (and optional prefix) of the archive, without `s3://`: the archive is
        `s3://<s3Bucket>`. Set this or `destination`, not both.
      '';
    };

    destination = mkOption {
      type = types.nullOr t.barmanDestination;
      default = null;
      example = "s3://homelab-pitr/forge";
      description = ''
        The archive as a barman-cloud URL: `s3://bucket/prefix`, `gs://bucket/prefix` or an
        `https://` Azure Blob Storage container URL. Set this or `s3Bucket`, not both.
      '';
    };

    endpointUrl = mkOption {
      type = types.nullOr t.httpUrl;
      default = null;
      example = "http://nas.lan:9000";
      description = ''
        The endpoint of an S3-compatible store (MinIO, Garage, Ceph RGW, ...), passed to every
        barman-cloud command as `--endpoint-url`; null for AWS S3 itself.
      '';
    };

    cloudProvider = mkOption {
      type = types.nullOr (
        types.enum [
          "aws-s3"
          "azure-blob-storage"
          "google-cloud-storage"
        ]
      );
      default = null;
      example = "google-cloud-storage";
      description = "barman-cloud's `--cloud-provider`; null is barman's default, `aws-s3`.";
    };

    environmentFile = mkOption {
      type = types.nullOr t.secretPath;
      default = null;
      example = "/run/secrets/pitr.env";
      description = ''
        The archive's credentials as `KEY=value` lines (`AWS_ACCESS_KEY_ID=...`,
        `AWS_SECRET_ACCESS_KEY=...`, or the Azure/Google equivalents). systemd loads it into
        `postgresql.service` (`EnvironmentFile=`) for `archive_command`, and persistctl reads it for the
        restore, the base backups and retention; the values never appear on a command line and are
        masked in what persistctl reports. Give the path as a string: a file in the Nix store (every
        local user can read the store) is refused. Null when the credentials come from elsewhere (an
        instance role).
      '';
    };

    serverName = mkOption {
      type = t.barmanServerName;
      default = "pg-main";
      example = "forge-main";
      description = ''
        The barman server name: the folder under the destination that holds this cluster's base
        backups and WAL. Two clusters must never share one (barman-cloud overwrites a WAL file of the
        same name).
      '';
    };

    walArchiveCommand = mkOption {
      type = types.str;
      default = defaultArchiveCommand;
      defaultText = literalMD ''
        `<barmanPackage>/bin/barman-cloud-wal-archive [--cloud-provider <cloudProvider>]
        [--endpoint-url <endpointUrl>] [--gzip|--bzip2|--snappy|--lz4] <destination> <serverName> %p`
      '';
      example = literalExpression ''"''${pkgs.barman}/bin/barman-cloud-wal-archive --endpoint-url http://nas.lan:9000 s3://homelab-pitr/forge pg-main %p"'';
      description = ''
        PostgreSQL's `archive_command`. The default archives each WAL segment to the destination
        under `serverName`, compressed as `compression` says. (The seed's default,
        `barman-cloud-wal-archive s3://<bucket> %p`, lacks the server name: barman-cloud refuses it and
        no WAL would ever be archived.) Credentials come from `environmentFile`, never from here.
      '';
    };

    archiveTimeout = mkOption {
      type = types.either types.ints.unsigned t.pgDuration;
      default = "5min";
      example = "60s";
      description = ''
        PostgreSQL's `archive_timeout`: the longest time before a WAL segment is switched (and so
        archived) even when it is not full, which bounds how much committed data an archive can lack.
        Seconds, or a duration with a unit; 0 switches it off.
      '';
    };

    baseBackupSchedule = mkOption {
      type = types.nonEmptyStr;
      default = "daily";
      example = "*-*-* 02:30:00";
      description = ''
        When `postgresql-base-backup.service` takes a base backup (`OnCalendar=` of its timer,
        `Persistent=true`). A restore replays the WAL since the base backup it starts from, so the
        schedule bounds the restore time.
      '';
    };

    baseBackupTimeout = mkOption {
      type = t.timeoutSeconds;
      default = 6 * 3600;
      defaultText = literalExpression "6 * 3600";
      example = 12 * 3600;
      description = ''
        Time limit of one base backup, in seconds: `persistctl pg-base-backup --timeout` in
        `postgresql-base-backup.service` and `postgresql-base-backup-after-restore.service`, whose
        `TimeoutStartSec` is this plus 60 seconds (so persistctl's own timeout fires first).
      '';
    };

    compression = mkOption {
      type = types.nullOr (
        types.enum [
          "gzip"
          "bzip2"
          "snappy"
          "lz4"
        ]
      );
      default = null;
      example = "gzip";
      description = ''
        How barman-cloud compresses base backups and archived WAL (`--gzip`, `--bzip2`, `--snappy`,
        `--lz4`); null for none. `snappy` needs python-snappy (nixpkgs' barman has it); `lz4` needs the
        python lz4 module, which nixpkgs' barman does not include, and a barman-cloud-backup that takes
        `--lz4` (3.19.1 does, 3.17.0 does not).
      '';
    };

    retention = mkOption {
      type = types.nullOr t.barmanRetention;
      default = null;
      example = "RECOVERY WINDOW OF 30 DAYS";
      description = ''
        barman's retention policy: `RECOVERY WINDOW OF <n> DAYS|WEEKS|MONTHS` (keep what a restore
        to any time in the window needs) or `REDUNDANCY <n>` (keep the newest n base backups).
        `postgresql-retention.service` deletes what falls outside it, on `retentionSchedule`. A base
        backup a restore is using is pinned and never deleted. Null: nothing is ever deleted.
      '';
    };

    retentionSchedule = mkOption {
      type = types.nonEmptyStr;
      default = "daily";
      example = "Sun 04:00";
      description = "When `postgresql-retention.service` applies `retention` (`OnCalendar=` of its timer).";
    };

    retentionTimeout = mkOption {
      type = t.timeoutSeconds;
      default = 3600;
      example = 7200;
      description = "Time limit of one retention run, in seconds: `persistctl pg-retention --timeout` (the unit's `TimeoutStartSec` is 60 seconds more).";
    };

    targetTime = mkOption {
      type = types.nullOr t.rfc3339Time;
      default = null;
      example = "2026-12-01T21:27:59Z";
      description = ''
        Restore to this time (RFC 3339, with an offset) instead of the end of the archive: the newest
        base backup that ended before it, replayed up to it. PostgreSQL itself refuses to finish short
        of the target. Only used by a restore (an empty `postgres-data` dataset): set it for a restore,
        then remove it.
      '';
    };

    backupId = mkOption {
      type = types.nullOr t.barmanBackupId;
      default = null;
      example = "20261201T212759";
      description = ''
        Restore from this base backup (a barman backup id) instead of the newest suitable DONE one.
        Null: chosen from the archive's listing.
      '';
    };

    allowEmptyBootstrap = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Let PostgreSQL start on an empty data directory (and `initdb`) when the archive answers for
        certain that it holds no base backup. Off by default: an empty archive fails closed and
        PostgreSQL stays stopped. Set it once for a brand-new installation, then remove it. An archive
        that cannot be reached (or refuses the credentials) never counts as empty.
      '';
    };

    restoreTimeout = mkOption {
      type = t.timeoutSeconds;
      default = 6 * 3600;
      defaultText = literalExpression "6 * 3600";
      example = 24 * 3600;
      description = ''
        Time limit of a whole restore (base backup download and WAL replay), in seconds: the
        `postgres-data` dataset's `preseed.timeout`.
      '';
    };

    walTimeout = mkOption {
      # `persistctl pg-wal-restore --timeout` takes at most a day (core/src/config/barman.rs).
      type = types.ints.between 1 86400 // {
        description = "number of seconds, from 1 to 86400 (1 day)";
      };
      default = 300;
      example = 120;
      description = ''
        Seconds one WAL segment's fetch may take during a restore; past it, the recovery is aborted
        (PostgreSQL stops, nothing is promoted) instead of ending early on what it has.
      '';
    };

    passwordFile = mkOption {
      type = types.nullOr t.secretPath;
      default = null;
      example = "/run/secrets/pgpass";
      description = ''
        A libpq password file (`PGPASSFILE`, lines `host:port:database:user:password`) for the base
        backup's connection to PostgreSQL, for servers where peer authentication over the Unix socket
        (nixpkgs' default for the `postgres` user) is not used. It is not the archive's credentials
        (those are `environmentFile`). libpq ignores a password file whose mode allows group or other
        access (keep it 0600). Null: peer authentication. Refused when it is in the Nix store.
      '';
    };

    barmanPackage = mkOption {
      type = types.package;
      default = pkgs.barman;
      defaultText = literalExpression "pkgs.barman";
      example = literalExpression "pkgs.barman.overridePythonAttrs (old: { dependencies = old.dependencies ++ [ pkgs.python3Packages.lz4 ]; })";
      description = "The package with the `barman-cloud-*` programs.";
    };

    rendered = mkOption {
      type = types.raw;
      internal = true;
      readOnly = true;
      description = ''
        What this module renders: `postgresql` (the config's `postgresql` section, or null when
        disabled), `destination` (the archive URL) and `errors` (what the types cannot check).
      '';
    };
  };

  config = lib.mkMerge [
    {
      modules.database.postgresql.pitr.rendered = {
        destination = destinationUrl;
        errors = optionals cfg.enable errors;
        postgresql =
          if cfg.enable then
            {
              ${dataService} = {
                archive = {
                  destination = destinationUrl;
                  inherit (cfg)
                    serverName
                    endpointUrl
                    cloudProvider
                    environmentFile
                    ;
                };
                inherit (cfg)
                  targetTime
                  backupId
                  passwordFile
                  walTimeout
                  compression
                  retention
                  ;
                # The binaries postgresql.service runs (with its extensions): the recovery must load
                # what the server loads.
                binDir = "${pg.finalPackage}/bin";
                # nixpkgs runs PostgreSQL as `postgres`, with its socket in /run/postgresql.
                user = "postgres";
                inherit socketDir;
                port = pg.settings.port;
                walService = if separateWal then walService else null;
              };
            }
          else
            null;
      };
    }

    (lib.mkIf cfg.enable {
      modules.storage.datasets.presets.postgresql.enable = lib.mkDefault true;
    })

    # On the preset's dataset only: without it there is none (and `errors` says so).
    (lib.mkIf (cfg.enable && storage.presets.postgresql.enable) {
      modules.storage.datasets.services.${dataService}.preseed = {
        enable = true;
        sources = [ "barman" ];
        # Whatever else is in the dataset's root (lost+found aside), without PG_VERSION it is not a
        # cluster: refused, never taken for one (or initdb'd over).
        dataMarkers = [ "PG_VERSION" ];
        inherit (cfg) allowEmptyBootstrap;
        timeout = cfg.restoreTimeout;
      };
    })
  ];
}
