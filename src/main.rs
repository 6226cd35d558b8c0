//! The `persistctl` command line: parse arguments, call one function per subcommand, map the result
//! to an exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use persistctl::apply::{self, Report};
use persistctl::config::{self, DEFAULT_CONFIG_PATH, MAX_TIMEOUT_SECS};
use persistctl::lock::{self, DEFAULT_LOCK_PATH};
use persistctl::migrate;
use persistctl::notify;
use persistctl::output;
use persistctl::plan::Plan;
use persistctl::preseed;
use persistctl::status;
use persistctl::zfs::{TreeRead, Zfs};

/// Exit code: done / in sync.
const EXIT_OK: u8 = 0;
/// Exit code: an error, a failed action, or a problem that needs a person.
const EXIT_ERROR: u8 = 1;
/// Exit code (`plan`): changes are pending.
const EXIT_PENDING: u8 = 2;

const EXIT_CODES: &str = "Exit codes: 0 done / in sync, 1 error (a failed zfs command, a blocked dataset, a bad \
config), 2 changes pending (plan only). A pool that is not imported is skipped with a warning and exit 0, \
unless --require-pools.";

/// Declarative, self-healing ZFS persistence for NixOS homelabs.
///
/// Reads the JSON written by the NixOS module `modules.storage.datasets`, compares it with the live ZFS
/// tree and creates datasets, sets properties and fixes owner/mode. It never destroys a dataset, never
/// inherits a property the config does not ask for, and never mounts a dataset over existing files.
#[derive(Debug, Parser)]
#[command(version, after_help = EXIT_CODES)]
struct Cli {
    /// The config file written by the NixOS module.
    #[arg(long, global = true, env = "PERSISTCTL_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// The lock that serialises concurrent runs.
    #[arg(long, global = true, env = "PERSISTCTL_LOCK", default_value = DEFAULT_LOCK_PATH)]
    lock_file: PathBuf,
    /// Seconds to wait for another run to release the lock (0 … 604800, 7 days).
    #[arg(long, global = true, default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_SECS))]
    lock_timeout: u64,
    /// Seconds one `zfs` call may take before it is killed (and, if stuck in the kernel on a suspended
    /// pool, abandoned) and the run fails with a "timed out" error.
    #[arg(long, global = true, env = "PERSISTCTL_ZFS_TIMEOUT", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    zfs_timeout: u64,
    /// More logging (-v debug, -vv trace); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    },
    /// The ZFS property model: every property persistctl knows, whether it can be set (any time, only at
    /// creation, never), the values it takes and the form ZFS reads them back in. Needs no config.
    Properties {
        /// Machine-readable output (committed as nix/lib/properties.json for the NixOS module).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    persistctl::logging::init(cli.verbose);
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}error: {e:#}", persistctl::logging::error_prefix());
            EXIT_ERROR
        }
    };
    // Read by tests/bench/apply-noop.sh (RUST_LOG=debug): this process's own peak memory.
    if let Ok(usage) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        tracing::debug!(max_rss_kib = usage.max_rss(), "resource usage");
    }
    ExitCode::from(code)
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let zfs = Zfs::new().with_timeout(Duration::from_secs(cli.zfs_timeout));
    match cli.command {
        Command::CheckConfig { file: Some(file), json: false, schema: false } => check_config(&file),
        Command::CheckConfig { file: Some(file), json: true, schema: false } => check_config_json(&file),
        Command::CheckConfig { .. } => print_config_schema(),
        Command::Plan { json, require_pools } => plan(&zfs, &cli.config, json, require_pools),
        Command::Apply { dry_run, json, require_pools } => {
            let dry_run = dry_run || std::env::var("NIXOS_ACTION").is_ok_and(|a| a == "dry-activate");
            let lock = LockSettings { path: &cli.lock_file, timeout: Duration::from_secs(cli.lock_timeout) };
            apply(&zfs, &cli.config, &lock, dry_run, json, require_pools)
        }
        Command::Show { json } => show(&zfs, &cli.config, json),
        Command::Preseed { service, dry_run, json, status_file, notify_command } => {
            let opts = preseed::Options {
                service,
                dry_run,
                status_file,
                notify_command,
                lock_path: cli.lock_file.clone(),
                lock_timeout: Duration::from_secs(cli.lock_timeout),
                zfs,
            };
            preseed_one(&cli.config, &opts, json)
        }
        Command::Migrate { service, from, dry_run, json, timeout } => {
            let opts = migrate::Options {
                service,
                from,
                dry_run,
                lock_path: cli.lock_file.clone(),
                lock_timeout: Duration::from_secs(cli.lock_timeout),
                timeout: Duration::from_secs(timeout),
                zfs,
            };
            migrate_one(&cli.config, &opts, json)
        }
        Command::Status { json, prometheus, now, preseed_status_file, state_file, notify_command, restic_timeout } => {
            let args = StatusArgs {
                json,
                prometheus,
                now,
                preseed_status_file,
                state_file,
                notify_command,
                restic_timeout: Duration::from_secs(restic_timeout),
            };
            Ok(status_cmd(&zfs, &cli.config, &args))
        }
        Command::Guard { services, old_path } => guard(&cli.config, &services, &old_path),
        Command::Notify { target, vars, strict, dry_run, priority, json } => {
            let priority = priority.as_deref().map(notify::cli::parse_priority).transpose()?;
            notify::cli::run(&cli.config, &notify::cli::Args { target, vars, strict, dry_run, priority, json })
        }
        Command::Properties { json } => properties(json),
    }
}

struct LockSettings<'a> {
    path: &'a Path,
    timeout: Duration,
}

fn check_config(file: &Path) -> anyhow::Result<u8> {
    let validated = config::load(file)?;
    println!(
        "{}: ok ({} service dataset(s) under {})",
        file.display(),
        validated.specs.len(),
        validated.config.datasets.parent_dataset
    );
    Ok(EXIT_OK)
}

fn print_config_schema() -> anyhow::Result<u8> {
    std::io::Write::write_all(&mut std::io::stdout(), config::json_schema().as_bytes())
        .context("Failed to write the config schema")?;
    Ok(EXIT_OK)
}

fn warn_skipped(plan: &Plan, require_pools: bool) -> bool {
    if plan.has_skipped() {
        if require_pools {
            tracing::error!("pool of {} is not imported (--require-pools)", plan.parent_dataset);
        } else {
            tracing::warn!(
                "pool of {} is not imported: its datasets are skipped; the boot unit applies them once it is",
                plan.parent_dataset
            );
        }
        return require_pools;
    }
    false
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value).context("Failed to render JSON")?);
    Ok(())
}

fn plan(zfs: &Zfs, config_path: &Path, json: bool, require_pools: bool) -> anyhow::Result<u8> {
    let validated = config::load(config_path)?;
    let plan = apply::make_plan(zfs, &validated)?;
    if json {
        print_json(&output::PlanJson {
            format: 1,
            in_sync: plan.is_in_sync(),
            has_problems: plan.has_problems(),
            plan: &plan,
        })?;
    } else {
        print!("{}", output::plan_text(&plan));
    }
    let skipped_is_error = warn_skipped(&plan, require_pools);
    Ok(if plan.has_problems() || skipped_is_error {
        EXIT_ERROR
    } else if plan.is_in_sync() {
        EXIT_OK
    } else {
        EXIT_PENDING
    })
}

fn apply(
    zfs: &Zfs,
    config_path: &Path,
    lock: &LockSettings<'_>,
    dry_run: bool,
    json: bool,
    require_pools: bool,
) -> anyhow::Result<u8> {
    let validated = config::load(config_path)?;
    let _guard = if dry_run { None } else { Some(lock::acquire(lock.path, lock.timeout)?) };
    let plan = apply::make_plan(zfs, &validated)?;
    let report =
        if dry_run { Report { plan, results: Vec::new() } } else { apply::execute_owning(zfs, plan, Some(lock.path)) };
    let failed = report.has_failures() || report.plan.has_problems();
    if json {
        print_json(&output::ApplyJson { format: 1, dry_run, failed, report: &report })?;
    } else if dry_run {
        print!("dry run: nothing is changed\n\n{}", output::plan_text(&report.plan));
    } else {
        print!("{}", output::report_text(&report));
    }
    let skipped_is_error = warn_skipped(&report.plan, require_pools);
    Ok(if failed || skipped_is_error { EXIT_ERROR } else { EXIT_OK })
}

fn show(zfs: &Zfs, config_path: &Path, json: bool) -> anyhow::Result<u8> {
    let validated = config::load(config_path)?;
    let parent = &validated.config.datasets.parent_dataset;
    let mut properties: Vec<String> =
        ["mountpoint", "mounted", "canmount", "recordsize", "compression", "used", "available"]
            .map(String::from)
            .to_vec();
    for spec in &validated.specs {
        for p in &spec.properties {
            if !properties.contains(&p.name) {
                properties.push(p.name.clone());
            }
        }
    }
    let asked: Vec<&str> = properties.iter().map(String::as_str).collect();
    let TreeRead::Found(tree) = zfs.read_tree(parent, &asked)? else {
        anyhow::bail!("parent dataset {parent} does not exist (or its pool is not imported)");
    };
    let managed = |name: &str| name == parent || validated.specs.iter().any(|s| s.dataset == name);
    let rows = output::show_rows(&tree, &managed, &properties);
    if json {
        print_json(&rows)?;
    } else {
        print!("{}", output::show_text(&rows));
    }
    Ok(EXIT_OK)
}

fn guard(config_path: &Path, services: &[String], old_paths: &[String]) -> anyhow::Result<u8> {
    let validated = config::load(config_path)?;
    let mut old: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for pair in old_paths {
        let (service, path) =
            pair.split_once('=').with_context(|| format!("--old-path {pair:?}: expected SERVICE=PATH"))?;
        validated.spec(service)?;
        old.insert(service, path);
    }
    let mut refused = 0;
    for service in services {
        let spec = validated.spec(service)?;
        let verdict = persistctl::fsprobe::verify_dataset_mount(&spec.dataset, &spec.mountpoint).and_then(|()| {
            let Some(old) = old.get(service.as_str()) else { return Ok(()) };
            let entries = |path: &Path| -> anyhow::Result<usize> {
                match std::fs::read_dir(path) {
                    // `.zfs` (listed with snapdir=visible) and lost+found are no one's data.
                    Ok(dir) => Ok(dir
                        .filter_map(Result::ok)
                        .filter(|e| !matches!(e.file_name().to_str(), Some(".zfs" | "lost+found")))
                        .count()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                    Err(e) => Err(anyhow::Error::new(e).context(format!("Failed to read {}", path.display()))),
                }
            };
            if entries(Path::new(&spec.mountpoint))? == 0 && entries(Path::new(old))? > 0 {
                anyhow::bail!(
                    "{} is empty while the old data directory {old} holds files: move them in first \
                     (systemctl stop the service; persistctl migrate {service} --from {old}), or empty {old} \
                     to start fresh",
                    spec.dataset
                );
            }
            Ok(())
        });
        match verdict {
            Ok(()) => println!("{service}: {} is mounted at {}", spec.dataset, spec.mountpoint),
            Err(e) => {
                eprintln!("error: {service}: refusing to start it: {e:#}");
                refused += 1;
            }
        }
    }
    Ok(if refused == 0 { EXIT_OK } else { EXIT_ERROR })
}

fn preseed_one(config_path: &Path, opts: &preseed::Options, json: bool) -> anyhow::Result<u8> {
    let validated = config::load(config_path)?;
    let report = preseed::run(&validated, opts)?;
    if json {
        print_json(&report)?;
    } else {
        print!("{}", output_preseed(&report));
    }
    Ok(if report.failed() { EXIT_ERROR } else { EXIT_OK })
}

fn migrate_one(config_path: &Path, opts: &migrate::Options, json: bool) -> anyhow::Result<u8> {
    let validated = config::load(config_path)?;
    let report = migrate::run(&validated, opts)?;
    if json {
        print_json(&report)?;
    } else {
        let event = serde_json::to_value(report.event).ok().and_then(|v| v.as_str().map(String::from));
        println!("{}: {}: {}", report.dataset, event.unwrap_or_default(), report.detail);
        if let (Some(entries), Some(bytes)) = (report.entries, report.bytes) {
            println!("  {entries} entries, {bytes} bytes of files, identical to the source");
        }
        if let Some(note) = &report.note {
            println!("NOTE: {note}");
        }
    }
    Ok(if report.failed() { EXIT_ERROR } else { EXIT_OK })
}

fn output_preseed(report: &preseed::Report) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let event = serde_json::to_value(report.event).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let _ = writeln!(text, "{}: {event}: {}", report.dataset, report.detail);
    for a in &report.attempts {
        let line = serde_json::to_value(&a.attempt).unwrap_or_default();
        let result = line.get("result").and_then(|v| v.as_str()).unwrap_or("");
        let detail = line.get("detail").and_then(|v| v.as_str()).unwrap_or("");
        let _ = writeln!(text, "  {:<9} {result}: {detail}", a.source.to_string());
    }
    if let Some(note) = &report.note {
        let _ = writeln!(text, "NOTE: {note}");
    }
    text
}

struct StatusArgs {
    json: bool,
    prometheus: Option<PathBuf>,
    now: Option<i64>,
    preseed_status_file: Option<PathBuf>,
    state_file: Option<PathBuf>,
    notify_command: Vec<String>,
    restic_timeout: Duration,
}

/// `status` maps every failure to UNKNOWN (3): exit 1 would read as WARNING to a Nagios-style caller.
fn status_cmd(zfs: &Zfs, config_path: &Path, args: &StatusArgs) -> u8 {
    let now = args.now.unwrap_or_else(|| {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    });
    let result = status_report(zfs, config_path, args, now);
    let (state, summary) = match &result {
        Ok(report) => (report.state, report.summary()),
        Err(e) => (status::State::Unknown, format!("UNKNOWN: {e:#}")),
    };
    if let Some(path) = &args.state_file {
        match status::state::record(path, state, now, &summary) {
            Ok(Some(change)) => {
                status::state::notify(&args.notify_command, &change, &summary);
                // Through modules.notifications, when configured; never changes the exit code.
                let notifications = config::load(config_path).ok().and_then(|v| v.config.notifications);
                let vars: notify::Vars = [
                    ("state", change.current.label().to_string()),
                    ("previous", change.previous.map_or("NONE", status::State::label).to_string()),
                    ("summary", summary.clone()),
                    ("hostname", notify::hostname()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                let _ =
                    notify::send_logged(notifications.as_ref(), "status-change", &vars, status::state::NOTIFY_TIMEOUT);
            }
            Ok(None) => {}
            Err(e) => tracing::error!("{e:#}"),
        }
    }
    match result {
        Ok(report) => {
            let printed = if args.json {
                print_json(&report)
            } else {
                print!("{}", status::render::text(&report));
                Ok(())
            };
            if let Err(e) = printed {
                eprintln!("{}error: {e:#}", persistctl::logging::error_prefix());
                return status::State::Unknown.exit_code();
            }
            report.state.exit_code()
        }
        Err(e) => {
            println!("UNKNOWN: {e:#}");
            eprintln!("{}error: {e:#}", persistctl::logging::error_prefix());
            status::State::Unknown.exit_code()
        }
    }
}

fn status_report(zfs: &Zfs, config_path: &Path, args: &StatusArgs, now: i64) -> anyhow::Result<status::Report> {
    let validated = config::load(config_path)?;
    let from_config =
        validated.config.monitoring.as_ref().and_then(|m| m.preseed_status_file.as_ref()).map(PathBuf::from);
    let opts = status::Options {
        preseed_status_file: args
            .preseed_status_file
            .clone()
            .or(from_config)
            .unwrap_or_else(|| PathBuf::from(preseed::DEFAULT_STATUS_FILE)),
        restic_timeout: args.restic_timeout,
    };
    let report = status::run(zfs, &validated, &opts, now)?;
    if let Some(path) = &args.prometheus {
        status::render::write_atomically(path, &status::render::prometheus(&report), status::render::TEXTFILE_MODE)?;
    }
    Ok(report)
}

/// `persistctl properties`: [`persistctl::zfs::props::model`] as JSON or as a table.
fn properties(json: bool) -> anyhow::Result<u8> {
    use persistctl::zfs::props::human_size;
    let model = persistctl::zfs::props::model();
    if json {
        print_json(&model)?;
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = model
        .properties
        .iter()
        .map(|(name, p)| {
            let values = match (&p.values, p.min, p.max) {
                (Some(values), _, _) if values.len() > 12 => {
                    format!("{}, ... ({} values: --json lists them)", values[..8].join(", "), values.len())
                }
                (Some(values), _, _) => values.join(", "),
                (None, Some(min), Some(max)) => format!("{}..{}", human_size(min), human_size(max)),
                _ => String::new(),
            };
            let aliases: Vec<String> = p.aliases.iter().map(|(from, to)| format!("{from}={to}")).collect();
            vec![(*name).to_string(), p.class.to_string(), p.domain.to_string(), values, aliases.join(", ")]
        })
        .collect();
    print!("{}", output::table(&["PROPERTY", "CLASS", "DOMAIN", "VALUES", "READ BACK AS"], &rows));
    Ok(EXIT_OK)
}

/// `check-config --json`: the config's facts, and the numbers the NixOS module must agree with: the
/// longest a notification's delivery takes (`notify::worst_case`), which the module computes
/// `notify@.service`'s timeout from (`nix/lib/delivery.nix`), and the longest `notify` runs, which that
/// timeout must exceed (`tests/nix_eval.rs` checks both).
fn check_config_json(file: &Path) -> anyhow::Result<u8> {
    let validated = config::load(file)?;
    let notifications = validated.config.notifications.as_ref().map(|n| {
        serde_json::json!({
            "deliveryWorstCaseSeconds": notify::worst_case(n).as_secs(),
            "longestRunSeconds": notify::cli::longest_run(n).as_secs(),
        })
    });
    print_json(&serde_json::json!({
        "format": 1,
        "file": file.display().to_string(),
        "parentDataset": validated.config.datasets.parent_dataset,
        "services": validated.specs.iter().map(|s| s.service.as_str()).collect::<Vec<_>>(),
        "notifications": notifications,
    }))?;
    Ok(EXIT_OK)
}
