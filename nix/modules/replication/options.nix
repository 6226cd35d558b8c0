# modules.replication.zfs, the lib-only half: options, and what they render (nixpkgs' services.sanoid
# templates/datasets, services.syncoid commands, sanoid.conf, and the `monitoring` object of persistctl's
# config file). Evaluates with nixpkgs' lib alone (nix/modules/replication/render.nix).
{ config, lib, ... }:
let
  inherit (lib)
    literalExpression
    literalMD
    mkEnableOption
    mkOption
    types
    ;
  cfg = config.modules.replication.zfs;
  storage = config.modules.storage.datasets or null;
  replLib = import ./lib.nix { inherit lib; };
  resticLib = import ../../lib/restic.nix { inherit lib; };

  count = types.nullOr types.ints.unsigned;

  retentionOptions = {
    hourly = mkOption {
      type = count;
      default = null;
      example = 36;
      description = "Hourly snapshots to keep (null: sanoid's default).";
    };
    daily = mkOption {
      type = count;
      default = null;
      example = 30;
      description = "Daily snapshots to keep.";
    };
    monthly = mkOption {
      type = count;
      default = null;
      example = 3;
      description = "Monthly snapshots to keep.";
    };
    yearly = mkOption {
      type = count;
      default = null;
      example = 0;
      description = "Yearly snapshots to keep.";
    };
    autosnap = mkOption {
      type = types.nullOr types.bool;
      default = null;
      example = true;
      description = "Take snapshots (false on a replica: syncoid brings them).";
    };
    autoprune = mkOption {
      type = types.nullOr types.bool;
      default = null;
      example = true;
      description = "Destroy snapshots beyond the retention.";
    };
  };

  templateModule = {
    options = retentionOptions;
  };

  datasetModule = {
    options = retentionOptions // {
      useTemplate = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "production" ];
        description = "Templates of `sanoid.templates`, applied in order.";
      };
      recursive = mkOption {
        type = types.either types.bool (types.enum [ "zfs" ]);
        default = false;
        example = true;
        description = ''Apply to the children too (`"zfs"`: one atomic recursive snapshot, no per-child settings).'';
      };
      processChildrenOnly = mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = "With `recursive`, leave the dataset itself alone.";
      };
    };
  };

  limitsOption =
    what: warning: critical:
    mkOption {
      type = types.submodule {
        options = {
          warning = mkOption {
            type = types.nullOr types.ints.unsigned;
            default = warning;
            example = warning;
            description = "WARNING above this many ${what} (null: never).";
          };
          critical = mkOption {
            type = types.nullOr types.ints.unsigned;
            default = critical;
            example = critical;
            description = "CRITICAL above this many ${what} (null: never).";
          };
        };
      };
      default = { };
      example = {
        inherit warning critical;
      };
      description = "Limits of this check (${what}).";
    };

  # Datasets under modules.storage.datasets that ask for snapshots.
  storageServices = if storage != null && storage.enable then storage.services else { };
  autoSnapshotted = lib.filterAttrs (
    _: s: (s.properties."com.sun:auto-snapshot" or null) == "true"
  ) storageServices;

  renderDataset = d: {
    use_template = d.useTemplate;
    inherit (d)
      recursive
      hourly
      daily
      monthly
      yearly
      autosnap
      autoprune
      ;
    process_children_only = d.processChildrenOnly;
  };

  defaultDataset = {
    useTemplate = [ cfg.sanoid.autoTemplate ];
    recursive = false;
    processChildrenOnly = false;
    hourly = null;
    daily = null;
    monthly = null;
    yearly = null;
    autosnap = null;
    autoprune = null;
  };

  autoDatasets = lib.optionalAttrs cfg.sanoid.autoDatasets (
    lib.mapAttrs' (_: s: lib.nameValuePair s.dataset defaultDataset) autoSnapshotted
  );

  # Local replicas get the replica template (prune, never snapshot).
  targetDatasets = lib.optionalAttrs (
    cfg.syncoid.enable && cfg.syncoid.pruneLocalTargets && cfg.syncoid.destination != null
  ) (
    builtins.listToAttrs (
      lib.concatMap (
        d:
        let
          t = replLib.splitTarget (replLib.targetOf cfg.syncoid d);
        in
        lib.optional (t.host == null) (
          lib.nameValuePair t.dataset (
            defaultDataset
            // {
              useTemplate = [ cfg.sanoid.replicaTemplate ];
              recursive = cfg.syncoid.recursive;
            }
          )
        )
      ) cfg.syncoid.datasets
    )
  );

  sanoidDatasets = builtins.mapAttrs (_: renderDataset) (autoDatasets // targetDatasets // cfg.sanoid.datasets);
  sanoidTemplates = builtins.mapAttrs (
    _: t: lib.filterAttrs (_: v: v != null) (builtins.removeAttrs t [ "_module" ])
  ) cfg.sanoid.templates;

  syncoidCommands = lib.optionalAttrs cfg.syncoid.enable (
    lib.genAttrs cfg.syncoid.datasets (d: {
      source = d;
      target = replLib.targetOf cfg.syncoid d;
      inherit (cfg.syncoid) recursive;
    })
  );

  hours = h: if h == null then null else h * 3600;
  limits = l: {
    warning = hours l.warning;
    critical = hours l.critical;
  };
  t = cfg.monitoring.thresholds;

  monitoring = {
    thresholds = {
      replicationLag = limits t.replicationLagHours;
      backupAge = limits t.backupAgeHours;
      snapshotAge = limits t.snapshotAgeHours;
      baseBackupAge = limits t.baseBackupAgeHours;
      walArchiveAge = limits t.walArchiveAgeHours;
      capacityPercent = {
        inherit (t.capacityPercent) warning critical;
      };
    };
    replication = lib.optionalAttrs cfg.syncoid.enable (
      lib.filterAttrs (_: r: r != null) (builtins.mapAttrs (_: s: replLib.replicaOf cfg.syncoid s.dataset) storageServices)
    );
    # The backup job's repository; no path or host filter (the job backs up the dataset's path).
    backups = builtins.mapAttrs (_: s: resticLib.toConfig s.backup.restic) (
      lib.filterAttrs (_: s: s.backup.restic.enable && s.backup.restic.passwordFile != null) storageServices
    );
    preseedStatusFile = null;
  };

  errors =
    lib.concatMap (
      name:
      let
        d = sanoidDatasets.${name};
      in
      map (tpl: ''modules.replication.zfs.sanoid.datasets."${name}".useTemplate: no template "${tpl}" in sanoid.templates'') (
        builtins.filter (tpl: !(cfg.sanoid.templates ? ${tpl})) d.use_template
      )
    ) (builtins.attrNames sanoidDatasets)
    ++ lib.optional (
      cfg.syncoid.enable && cfg.syncoid.destination == null
    ) "modules.replication.zfs.syncoid.destination: must be set when syncoid is enabled"
    ++ lib.optional (
      cfg.syncoid.enable && cfg.syncoid.datasets == [ ]
    ) "modules.replication.zfs.syncoid.datasets: lists no dataset to replicate"
    ++ (
      let
        targets = map (replLib.targetOf cfg.syncoid) cfg.syncoid.datasets;
      in
      lib.optional (
        cfg.syncoid.enable
        && cfg.syncoid.destination != null
        && builtins.length (lib.unique targets) != builtins.length targets
      ) "modules.replication.zfs.syncoid.datasets: two datasets would be sent to the same target (${toString targets}); set syncoid.targets"
    );
in
{
  options.modules.replication.zfs = {
    enable = mkEnableOption "ZFS snapshots (sanoid) and replication (syncoid) through nixpkgs' services.sanoid and services.syncoid, and `persistctl status` monitoring";

    sanoid = {
      interval = mkOption {
        type = types.str;
        default = "hourly";
        example = "*:0/15";
        description = "How often sanoid runs (systemd calendar event; `services.sanoid.interval`).";
      };
      templates = mkOption {
        type = types.attrsOf (types.submodule templateModule);
        default = { };
        example = literalExpression ''
          {
            production = { hourly = 36; daily = 30; monthly = 3; yearly = 0; autosnap = true; autoprune = true; };
            backup = { hourly = 30; daily = 90; monthly = 12; yearly = 1; autosnap = false; autoprune = true; };
          }
        '';
        defaultText = literalMD ''
          `production` (hourly 36, daily 30, monthly 3, yearly 0, autosnap, autoprune) and `backup`
          (hourly 30, daily 90, monthly 12, yearly 1, autoprune only), each value a default of its own
        '';
        description = ''
          Retention templates (`services.sanoid.templates`). `production` takes and prunes snapshots of
          live data; `backup` only prunes (for replicas, which syncoid fills).
        '';
      };
      datasets = mkOption {
        type = types.attrsOf (types.submodule datasetModule);
        default = { };
        example = literalExpression ''
          {
            "tank/persist" = { useTemplate = [ "production" ]; recursive = true; };
          }
        '';
        description = "Datasets sanoid manages (`services.sanoid.datasets`); they win over the automatic ones.";
      };
      autoDatasets = mkOption {
        type = types.bool;
        default = true;
        example = false;
        description = ''
          Give every dataset of `modules.storage.datasets.services` whose `com.sun:auto-snapshot`
          property is `"true"` the `autoTemplate` template.
        '';
      };
      autoTemplate = mkOption {
        type = types.str;
        default = "production";
        example = "production";
        description = "The template of the automatic datasets.";
      };
      replicaTemplate = mkOption {
        type = types.str;
        default = "backup";
        example = "backup";
        description = "The template of local syncoid targets (see `syncoid.pruneLocalTargets`).";
      };
    };

    syncoid = {
      enable = mkEnableOption "replication with syncoid";
      destination = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "backup-pool/tank-replica";
        description = ''
          Where the datasets go: a local dataset (`pool/ds`) or a remote one (`user@host:pool/ds`).
          With one dataset listed, it is received as `destination` itself; with several, each as
          `destination/<last component>` (pin them with `targets` before adding a second one, or
          the first one's target moves).
        '';
      };
      datasets = mkOption {
        type = types.listOf types.str;
        default = lib.optional (storage != null && storage.enable) storage.parentDataset;
        defaultText = literalExpression "[ config.modules.storage.datasets.parentDataset ] (when enabled)";
        example = [ "tank/persist" ];
        description = "Datasets to replicate.";
      };
      targets = mkOption {
        type = types.attrsOf types.str;
        default = { };
        example = {
          "tank/persist" = "backup-pool/tank-replica";
        };
        description = "Per-dataset targets, overriding the rule of `destination`.";
      };
      recursive = mkOption {
        type = types.bool;
        default = true;
        example = false;
        description = "Send the children too (`syncoid -r`): every service dataset under a listed parent.";
      };
      sshKey = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/var/lib/syncoid/id_ed25519";
        description = "SSH key for remote targets (a path outside the Nix store; it is not copied).";
      };
      interval = mkOption {
        type = types.str;
        default = "hourly";
        example = "*:15";
        description = "How often syncoid runs (`services.syncoid.interval`).";
      };
      pruneLocalTargets = mkOption {
        type = types.bool;
        default = true;
        example = false;
        description = "Have sanoid prune local targets with `sanoid.replicaTemplate`.";
      };
    };

    monitoring = {
      enable = mkOption {
        type = types.bool;
        default = true;
        example = false;
        description = ''
          Run `persistctl status` on a timer, notify (`notify@persistctl-status.service`) when its
          state changes, and raise `notify@persistctl-status-deadman.service` when it has not run for
          `deadmanHours`. Also writes the `monitoring` section of persistctl's config.
        '';
      };
      interval = mkOption {
        type = types.str;
        default = "*:0/15";
        example = "hourly";
        description = "How often `persistctl status` runs (systemd calendar event).";
      };
      timeout = mkOption {
        type = types.ints.positive;
        default = 600;
        example = 1800;
        description = ''
          Time limit of one `persistctl status` run, in seconds (`TimeoutStartSec` of
          `persistctl-status.service`); a run that hangs fails the unit and is notified.
        '';
      };
      deadmanHours = mkOption {
        type = types.ints.positive;
        default = 2;
        example = 6;
        description = "Alert when `persistctl status` has not completed for this many hours.";
      };
      prometheusFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/var/lib/prometheus-node-exporter/textfile/persistctl.prom";
        description = "Write node-exporter's textfile here on every run (atomically).";
      };
      thresholds = {
        replicationLagHours = limitsOption "hours of replication lag" 12 24;
        backupAgeHours = limitsOption "hours since the newest restic backup" 24 48;
        snapshotAgeHours = limitsOption "hours since the newest snapshot" 48 null;
        baseBackupAgeHours = limitsOption "hours since the newest PostgreSQL base backup (modules.database.postgresql.pitr)" 26 50;
        walArchiveAgeHours = limitsOption "hours the oldest PostgreSQL WAL file has waited to be archived" 1 6;
        capacityPercent = limitsOption "percent used" 80 90;
      };
    };

    rendered = mkOption {
      type = types.raw;
      internal = true;
      readOnly = true;
      description = ''
        What the options render: `sanoid.templates`, `sanoid.datasets`, `sanoidConf` (the INI nixpkgs
        writes), `syncoid.commands`, `monitoring` (persistctl's config section, or null) and `errors`.
      '';
    };
  };

  # Defaults per value, so that setting one retention keeps the others.
  config.modules.replication.zfs.sanoid.templates = {
    production = builtins.mapAttrs (_: lib.mkDefault) {
      hourly = 36;
      daily = 30;
      monthly = 3;
      yearly = 0;
      autosnap = true;
      autoprune = true;
    };
    backup = builtins.mapAttrs (_: lib.mkDefault) {
      hourly = 30;
      daily = 90;
      monthly = 12;
      yearly = 1;
      autosnap = false;
      autoprune = true;
    };
  };

  config.modules.replication.zfs.rendered = {
    sanoid = {
      templates = sanoidTemplates;
      datasets = sanoidDatasets;
    };
    sanoidConf = replLib.sanoidConf {
      templates = sanoidTemplates;
      datasets = sanoidDatasets;
    };
    syncoid.commands = syncoidCommands;
    monitoring = if cfg.enable && cfg.monitoring.enable then monitoring else null;
    inherit errors;
  };
}
