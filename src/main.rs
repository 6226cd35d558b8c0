//! The `persistctl` command line: parse arguments, call one function per subcommand, map the result
//! to an exit code.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use persistctl::apply::{self, Report};
use persistctl::config::{self, DEFAULT_CONFIG_PATH};
use persistctl::lock::{self, DEFAULT_LOCK_PATH};
use persistctl::output;
use persistctl::plan::Plan;
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
    /// Seconds to wait for another run to release the lock.
    #[arg(long, global = true, default_value_t = 120)]
    lock_timeout: u64,
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
        file: PathBuf,
    },
    /// The managed tree as it is: dataset, property, value, source.
    Show {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let tty = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(tty)
        .with_target(false);
    if tty { builder.init() } else { builder.without_time().init() }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
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
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Plan { json, require_pools } => plan(&cli.config, json, require_pools),
        Command::Apply { dry_run, json, require_pools } => {
            let dry_run = dry_run || std::env::var("NIXOS_ACTION").is_ok_and(|a| a == "dry-activate");
            let lock = LockSettings { path: &cli.lock_file, timeout: Duration::from_secs(cli.lock_timeout) };
            apply(&cli.config, &lock, dry_run, json, require_pools)
        }
        Command::Show { json } => show(&cli.config, json),
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

fn plan(config_path: &Path, json: bool, require_pools: bool) -> anyhow::Result<u8> {
    let validated = config::load(config_path)?;
    let plan = apply::make_plan(&Zfs::new(), &validated)?;
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
    config_path: &Path,
    lock: &LockSettings<'_>,
    dry_run: bool,
    json: bool,
    require_pools: bool,
) -> anyhow::Result<u8> {
    let validated = config::load(config_path)?;
    let zfs = Zfs::new();
    let _guard = if dry_run { None } else { Some(lock::acquire(lock.path, lock.timeout)?) };
    let plan = apply::make_plan(&zfs, &validated)?;
    let report = if dry_run { Report { plan, results: Vec::new() } } else { apply::execute(&zfs, plan) };
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

fn show(config_path: &Path, json: bool) -> anyhow::Result<u8> {
    let validated = config::load(config_path)?;
    let parent = &validated.config.datasets.parent_dataset;
    let TreeRead::Found(tree) = Zfs::new().get_tree(parent)? else {
        anyhow::bail!("parent dataset {parent} does not exist (or its pool is not imported)");
    };
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
    let managed = |name: &str| name == parent || validated.specs.iter().any(|s| s.dataset == name);
    let rows = output::show_rows(&tree, &managed, &properties);
    if json {
        print_json(&rows)?;
    } else {
        print!("{}", output::show_text(&rows));
    }
    Ok(EXIT_OK)
}
