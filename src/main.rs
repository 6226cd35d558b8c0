//! The `persistctl` command line: parse arguments, call one function per subcommand, map the result
//! to an exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;

use persistctl::apply::{self, Report};
use persistctl::barman;
use persistctl::config;
use persistctl::lock;
use persistctl::migrate;
use persistctl::notify;
use persistctl::output;
use persistctl::pitr;
use persistctl::plan::Plan;
use persistctl::preseed;
use persistctl::status;
use persistctl::zfs::{TreeRead, Zfs};

mod cli;

use cli::{Cli, Command, EXIT_ERROR, EXIT_OK, EXIT_PENDING};

fn main() -> ExitCode {
    // As PostgreSQL's restore_command, every way of not fetching the file other than "not in the
    // archive" must exit above 125, or PostgreSQL ends the recovery there and promotes: a bad argument
    // (clap would exit 2), `--help` (0), a panic (101).
    let wal_restore = std::env::args_os().skip(1).any(|a| a == "pg-wal-restore");
    if wal_restore {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("pg-wal-restore: {info}; aborting the recovery");
            std::process::exit(i32::from(barman::ABORT_RECOVERY));
        }));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if wal_restore => {
            eprintln!("pg-wal-restore: {e}; aborting the recovery");
            return ExitCode::from(barman::ABORT_RECOVERY);
        }
        Err(e) => e.exit(),
    };
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
        Command::Status {
            json,
            prometheus,
            now,
            preseed_status_file,
            state_file,
            notify_command,
            restic_timeout,
            barman_timeout,
            psql_timeout,
        } => {
            let args = StatusArgs {
                json,
                prometheus,
                now,
                preseed_status_file,
                state_file,
                notify_command,
                restic_timeout: Duration::from_secs(restic_timeout),
                barman_timeout: Duration::from_secs(barman_timeout),
                psql_timeout: Duration::from_secs(psql_timeout),
            };
            Ok(status_cmd(&zfs, &cli.config, &args))
        }
        Command::Guard { services, old_path } => guard(&cli.config, &services, &old_path),
        Command::Notify { target, vars, strict, dry_run, priority, json } => {
            let priority = priority.as_deref().map(notify::cli::parse_priority).transpose()?;
            notify::cli::run(&cli.config, &notify::cli::Args { target, vars, strict, dry_run, priority, json })
        }
        Command::Properties { json } => properties(json),
        Command::PgBaseBackup { service, if_restored, status_file, timeout } => {
            let validated = config::load(&cli.config)?;
            match pitr::base_backup(&validated, &service, &status_file, if_restored, Duration::from_secs(timeout))? {
                pitr::BackupDone::NothingToDo => println!("{service}: no restore is waiting for a base backup"),
                pitr::BackupDone::Taken { released: None } => println!("{service}: base backup taken"),
                pitr::BackupDone::Taken { released: Some(id) } => {
                    println!("{service}: base backup taken; released the pin on the restored backup {id}");
                }
            }
            Ok(EXIT_OK)
        }
        Command::PgRetention { service, timeout } => {
            let validated = config::load(&cli.config)?;
            let out = pitr::retention(&validated, &service, Duration::from_secs(timeout))?;
            print!("{out}");
            Ok(EXIT_OK)
        }
        Command::PgWalRestore { destination, server_name, endpoint_url, cloud_provider, timeout, wal, path } => {
            let archive = barman::Archive { destination, server_name, endpoint_url, cloud_provider };
            Ok(barman::wal_restore(&archive, &wal, &path, Duration::from_secs(timeout)))
        }
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
    barman_timeout: Duration,
    psql_timeout: Duration,
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
        barman_timeout: args.barman_timeout,
        psql_timeout: args.psql_timeout,
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
