//! The command line's shape: every subcommand, option, default and bound (clap derive), and the exit
//! codes. What each subcommand does is `main.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use persistctl::config::{DEFAULT_CONFIG_PATH, MAX_TIMEOUT_SECS};
use persistctl::lock::DEFAULT_LOCK_PATH;
use persistctl::preseed;

/// Exit code: done / in sync.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error, a failed action, or a problem that needs a person.
pub const EXIT_ERROR: u8 = 1;
/// Exit code (`plan`): changes are pending.
pub const EXIT_PENDING: u8 = 2;

pub const EXIT_CODES: &str = "Exit codes: 0 done / in sync, 1 error (a failed zfs command, a blocked dataset, a bad \
config), 2 changes pending (plan only). A pool that is not imported is skipped with a warning and exit 0, \
unless --require-pools.";

/// Declarative, self-healing ZFS persistence for NixOS homelabs.
///
/// Reads the JSON written by the NixOS module `modules.storage.datasets`, compares it with the live ZFS
/// tree and creates datasets, sets properties and fixes owner/mode. It never destroys a dataset, never
/// inherits a property the config does not ask for, and never mounts a dataset over existing files.
#[derive(Debug, Parser)]
#[command(version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The config file written by the NixOS module.
    #[arg(long, global = true, env = "PERSISTCTL_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// The lock that serialises concurrent runs.
    #[arg(long, global = true, env = "PERSISTCTL_LOCK", default_value = DEFAULT_LOCK_PATH)]
    pub lock_file: PathBuf,
    /// Seconds to wait for another run to release the lock (0 … 604800, 7 days).
    #[arg(long, global = true, default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_SECS))]
    pub lock_timeout: u64,
    /// Seconds one `zfs` call may take before it is killed (and, if stuck in the kernel on a suspended
    /// pool, abandoned) and the run fails with a "timed out" error.
    #[arg(long, global = true, env = "PERSISTCTL_ZFS_TIMEOUT", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub zfs_timeout: u64,
    /// More logging (-v debug, -vv trace); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what apply would do. Exit 0 in sync, 2 changes pending, 1 problems.
    Plan {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Treat a pool that is not imported as an error.
        #[arg(long)]
        require_pools: bool,
    },
    /// Create datasets, set properties, fix owner/mode.
    Apply {
        /// Print the plan and change nothing (also when NIXOS_ACTION=dry-activate).
        #[arg(long)]
        dry_run: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Treat a pool that is not imported as an error (exit 1) instead of skipping it.
        #[arg(long)]
        require_pools: bool,
    },
    /// Validate a config file without touching ZFS.
    CheckConfig {
        /// The file to check.
        #[arg(required_unless_present = "schema")]
        file: Option<PathBuf>,
        /// Machine-readable output, with what persistctl derives from the config (docs/json-output.md).
        #[arg(long)]
        json: bool,
        /// Print the config's JSON Schema (docs/config.schema.json) instead.
        #[arg(long, conflicts_with_all = ["file", "json"])]
        schema: bool,
    },
    /// The managed tree as it is: dataset, property, value, source.
    Show {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Restore a service's missing data before it starts. Exit 0: data present, restored, or started empty
    /// (allowEmptyBootstrap); exit 1: fail closed (the service must not start).
    Preseed {
        /// The service (a key of datasets.services).
        service: String,
        /// Print which source would be used and why; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Append one JSON line per run here (mode 0600: it quotes redacted errors).
        #[arg(long, env = "PERSISTCTL_PRESEED_STATUS", default_value = preseed::DEFAULT_STATUS_FILE)]
        status_file: PathBuf,
        /// Notification hook, one argv element per use (`--notify-command prog --notify-command arg`); called
        /// with the event (preseed-skipped|restored|empty-bootstrap|failed) and key=value arguments, and
        /// only PATH, HOME, LANG, LC_*, TZ and the like of persistctl's environment.
        #[arg(long, allow_hyphen_values = true)]
        notify_command: Vec<String>,
    },
    /// Move a service's existing data into its dataset (in place or from another directory): copied with
    /// `cp -a`, compared byte for byte, swapped in; the old data is kept. Exit 0 migrated (or already),
    /// 1 refused or failed (nothing lost; a rerun finishes an interrupted run). See docs/migrate.md.
    Migrate {
        /// The service (a key of datasets.services).
        service: String,
        /// Where the data is now: another directory, or the dataset's own mountpoint (in place).
        #[arg(long, value_name = "PATH")]
        from: PathBuf,
        /// Say what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Seconds the copy may take (1 … 604800, 7 days).
        #[arg(long, default_value_t = 6 * 3600,
              value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
        timeout: u64,
    },
    /// Refuse (exit 1) unless each service's dataset is mounted at its path, as every process sees it (the
    /// topmost mount there is that ZFS dataset). Run by the NixOS module before every service that uses a
    /// dataset and every backup job; reads the mount table, never runs zfs.
    Guard {
        /// Services (keys of datasets.services).
        #[arg(required = true)]
        services: Vec<String>,
        /// `SERVICE=PATH`: also refuse while the dataset is empty and PATH (the service's old data
        /// directory) holds files: migrate them first.
        #[arg(long, value_name = "SERVICE=PATH")]
        old_path: Vec<String>,
    },
    /// Render a notification template and deliver it to every enabled backend (docs/notifications.md).
    /// Exit 0: every backend took it (or the template is disabled); 1: nothing sent (bad config, unknown
    /// template, bad --var, --strict); 2: at least one backend failed after all its attempts.
    Notify {
        /// A template name (sanoid-failure, preseed-success, ...), or a failed unit's name (it has a dot:
        /// sanoid.service), as `notify@%n.service` passes it: that unit's `unitTemplates` entry or unit-failure.
        target: String,
        /// A template variable, `name=value`; repeat for more.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Refuse (exit 1) when the template uses a variable that is not given, instead of showing `${name?}`.
        #[arg(long)]
        strict: bool,
        /// Print the rendered notification and where it would go; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Override the template's priority.
        #[arg(long, value_parser = ["min", "low", "medium", "high", "urgent"])]
        priority: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Monitoring: per managed dataset space, snapshots, replication lag, backup age, last preseed and
    /// drift against thresholds. Exit codes are Nagios': 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also when
    /// status itself fails).
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Also write a node-exporter textfile here (atomically: temp file + rename in the same directory).
        #[arg(long, value_name = "FILE")]
        prometheus: Option<PathBuf>,
        /// The clock, seconds since the epoch (default: now). For tests and "what if" checks.
        #[arg(long, env = "PERSISTCTL_NOW", value_name = "EPOCH")]
        now: Option<i64>,
        /// `persistctl preseed`'s status file (default: the config's monitoring.preseedStatusFile, else
        /// /var/lib/persistctl/preseed.json).
        #[arg(long, env = "PERSISTCTL_PRESEED_STATUS", value_name = "FILE")]
        preseed_status_file: Option<PathBuf>,
        /// Remember the state here; only when it changes, send the `status-change` notification
        /// (modules.notifications) and run --notify-command.
        #[arg(long, value_name = "FILE")]
        state_file: Option<PathBuf>,
        /// Hook run on a change of state (with --state-file), one argv element per use; gets
        /// `PERSISTCTL_STATUS_STATE`, `PERSISTCTL_STATUS_PREVIOUS` and `PERSISTCTL_STATUS_SUMMARY` (and only
        /// PATH, HOME, LANG, LC_*, TZ and the like of persistctl's environment).
        #[arg(long, allow_hyphen_values = true)]
        notify_command: Vec<String>,
        /// Seconds each `restic snapshots` may take (1 … 604800, 7 days).
        #[arg(long, default_value_t = 120,
              value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
        restic_timeout: u64,
        /// Seconds each `barman-cloud-backup-list` (one per `postgresql.<service>`) may take
        /// (1 … 604800). botocore retries a hung store for minutes: past this, the check is UNKNOWN.
        #[arg(long, default_value_t = 120,
              value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
        barman_timeout: u64,
        /// Seconds each `psql` query (one per `postgresql.<service>`) may take (1 … 604800).
        #[arg(long, default_value_t = 30,
              value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
        psql_timeout: u64,
    },
    /// PostgreSQL's `restore_command` for a barman-cloud archive: fetch one WAL (or history) file.
    /// Exit 0 fetched, 1 not in the archive (where a recovery to the end of the archive stops), 200 on
    /// anything else (network, credentials, a hung store, a timeout), so that PostgreSQL aborts the
    /// recovery instead of promoting a database missing the rest of its WAL. Needs no config;
    /// credentials come from the environment (`EnvironmentFile=` of postgresql.service).
    PgWalRestore {
        /// The archive: `s3://bucket/prefix`.
        #[arg(long)]
        destination: String,
        /// The server name in the archive.
        #[arg(long)]
        server_name: String,
        /// An S3-compatible endpoint.
        #[arg(long)]
        endpoint_url: Option<String>,
        /// barman-cloud's `--cloud-provider`.
        #[arg(long)]
        cloud_provider: Option<String>,
        /// Seconds one fetch may take before it is killed and the recovery aborted (1 … 86400).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=persistctl::config::MAX_WAL_TIMEOUT_SECS))]
        timeout: u64,
        /// `%f`: the file PostgreSQL asks for.
        wal: String,
        /// `%p`: where PostgreSQL wants it.
        path: String,
    },
    /// PostgreSQL (`postgresql.<SERVICE>`): a base backup of the running cluster to its barman-cloud
    /// archive, as the cluster's user over its socket; then, if a restore pinned the backup it came
    /// from, the pin is released (the cluster now has a backup of its own on its new timeline).
    PgBaseBackup {
        /// The service whose dataset holds PGDATA (a key of `postgresql`).
        service: String,
        /// Only when a restore is waiting for its first base backup (else exit 0, nothing done).
        #[arg(long)]
        if_restored: bool,
        /// `persistctl preseed`'s status file: the restore's pin record lives beside it.
        #[arg(long, env = "PERSISTCTL_PRESEED_STATUS", default_value = preseed::DEFAULT_STATUS_FILE)]
        status_file: PathBuf,
        /// Seconds the backup (and the release) may take (1 … 604800, 7 days).
        #[arg(long, default_value_t = 21_600,
              value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
        timeout: u64,
    },
    /// PostgreSQL: delete the base backups and WAL the configured retention policy
    /// (`postgresql.<SERVICE>.retention`) no longer needs; pinned backups stay.
    PgRetention {
        /// The service whose dataset holds PGDATA (a key of `postgresql`).
        service: String,
        /// Seconds the deletion may take (1 … 604800, 7 days).
        #[arg(long, default_value_t = 3600,
              value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
        timeout: u64,
    },
    /// The ZFS property model: every property persistctl knows, whether it can be set (any time, only at
    /// creation, never), the values it takes and the form ZFS reads them back in. Needs no config.
    Properties {
        /// Machine-readable output (committed as nix/lib/properties.json for the NixOS module).
        #[arg(long)]
        json: bool,
    },
}
