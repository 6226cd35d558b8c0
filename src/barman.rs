//! The only place that runs barman-cloud (`barman-cloud-*`, found on `PATH` or in
//! `$PERSISTCTL_BARMAN_DIR`). What its answers mean is `persistctl_core::barman`.
//!
//! Credentials reach barman-cloud through the environment (`AWS_ACCESS_KEY_ID`, ...: systemd's
//! `EnvironmentFile=` for the units that run it), never through argv.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
pub use persistctl_core::barman::*;

use crate::child;
use crate::config::BarmanArchive;
use crate::redact::Secrets;
use crate::restic::parse_env_file;

/// Where barman-cloud's programs are: `$PERSISTCTL_BARMAN_DIR/<name>`, else `<name>` on `PATH`.
fn program(name: &str) -> OsString {
    match std::env::var_os("PERSISTCTL_BARMAN_DIR") {
        Some(dir) => PathBuf::from(dir).join(name).into_os_string(),
        None => name.into(),
    }
}

/// The secrets of an archive's `environmentFile` (every value; every line should it not parse), for
/// masking. An unreadable file adds nothing (whoever reads it reports that).
#[must_use]
pub fn secrets(config: &BarmanArchive) -> Secrets {
    let mut secrets = Secrets::default();
    if let Some(text) = config.environment_file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
        match parse_env_file(&text) {
            Ok(vars) => vars.iter().for_each(|(_, value)| secrets.add(value)),
            Err(_) => secrets.add_text(&text),
        }
    }
    secrets
}

/// How a base backup reaches the server.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// The socket directory.
    pub socket_dir: &'a str,
    /// The port.
    pub port: u16,
    /// The server's user (the client runs as it: peer authentication).
    pub user: &'a str,
    /// `PGPASSFILE`, when a password is needed.
    pub password_file: Option<&'a str>,
}

/// Runs barman-cloud's clients against one archive, with its credentials in their environment only.
pub struct Client {
    archive: Archive,
    env: Vec<(String, String)>,
    secrets: Secrets,
}

impl std::fmt::Debug for Client {
    /// The variables' names only: their values are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Client").field("archive", &self.archive).field("env", &names).finish_non_exhaustive()
    }
}

/// What a client run gives back: its stdout, or why it failed (stderr's tail, secrets masked).
type Outcome = Result<String, String>;

impl Client {
    /// Reads the archive's `environmentFile` (refusing one that cannot be read or parsed, naming it but
    /// never quoting it).
    pub fn new(config: &BarmanArchive) -> anyhow::Result<Self> {
        let mut env = Vec::new();
        if let Some(file) = &config.environment_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("Failed to read the barman-cloud environment file {file}"))?;
            env = parse_env_file(&text)
                .map_err(|why| anyhow::anyhow!("Bad barman-cloud environment file {file}: {why}"))?;
        }
        Ok(Self { archive: config.into(), env, secrets: secrets(config) })
    }

    /// The archive.
    #[must_use]
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// The credentials, for a process that runs barman-cloud itself (the recovery's `restore_command`).
    #[must_use]
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The values masked in whatever is reported.
    #[must_use]
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// `<name> [options] [--cloud-provider P] [--endpoint-url U] DESTINATION SERVER [positional]`, with
    /// only the inherited variables persistctl allows plus the archive's credentials.
    fn command(&self, name: &str, options: &[&str], positional: &[&str]) -> Command {
        let mut cmd = Command::new(program(name));
        child::scrub_env(&mut cmd);
        self.finish_command(&mut cmd, name, options, positional);
        cmd
    }

    /// The credentials, the archive's options and the arguments onto a prepared command.
    fn finish_command(&self, cmd: &mut Command, name: &str, options: &[&str], positional: &[&str]) {
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.args(options).args(self.archive.args()).args(positional);
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        tracing::debug!(command = %crate::zfs::display_argv(name, &args), "running");
    }

    /// Runs a prepared command until `deadline`: `Ok(Ok(stdout))` exit 0, `Ok(Err(why))` another exit,
    /// `Err` it did not run to completion.
    fn finish(&self, name: &str, cmd: Command, deadline: Instant) -> anyhow::Result<(Option<i32>, Outcome)> {
        match child::run(cmd, None, deadline) {
            Ok(done) if done.status.success() => Ok((Some(0), Ok(done.stdout_text()))),
            Ok(done) => {
                let code = done.status.code();
                let how = code.map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"));
                Ok((code, Err(format!("{name} failed ({how}): {}", self.secrets.redact(&done.stderr_text())))))
            }
            Err(e) => bail!("{}", self.secrets.redact(&e.to_string())),
        }
    }

    fn run(&self, name: &str, options: &[&str], positional: &[&str], deadline: Instant) -> anyhow::Result<String> {
        let (_, outcome) = self.finish(name, self.command(name, options, positional), deadline)?;
        outcome.map_err(anyhow::Error::msg)
    }

    /// Every backup of the server, any status (`barman-cloud-backup-list --format json`). An empty
    /// list is "no backup"; an error is "could not tell".
    pub fn list(&self, deadline: Instant) -> anyhow::Result<Vec<Backup>> {
        let name = "barman-cloud-backup-list";
        let stdout = self.run(name, &["--format", "json"], &[], deadline)?;
        parse_backup_list(&stdout).map_err(|why| anyhow::anyhow!("{name}: {why}"))
    }

    /// Pins `backup_id` against retention (`barman-cloud-backup-keep --target full`).
    pub fn keep(&self, backup_id: &str, deadline: Instant) -> anyhow::Result<()> {
        self.run("barman-cloud-backup-keep", &["--target", "full"], &[backup_id], deadline).map(drop)
    }

    /// Releases a pin (`barman-cloud-backup-keep --release`).
    pub fn release(&self, backup_id: &str, deadline: Instant) -> anyhow::Result<()> {
        self.run("barman-cloud-backup-keep", &["--release"], &[backup_id], deadline).map(drop)
    }

    /// Whether `wal` (a segment or history file name) is in the archive: fetches it into `into`
    /// (a scratch path) with `barman-cloud-wal-restore`. `Ok(false)`: not there (exit 1).
    pub fn has_wal(&self, wal: &str, into: &Path, deadline: Instant) -> anyhow::Result<bool> {
        let name = "barman-cloud-wal-restore";
        let into = into.to_string_lossy();
        let (code, outcome) = self.finish(name, self.command(name, &[], &[wal, &into]), deadline)?;
        match (code, outcome) {
            (_, Ok(_)) => Ok(true),
            (Some(EXIT_OPERATION), Err(_)) => Ok(false),
            (_, Err(why)) => Err(anyhow::Error::msg(why)),
        }
    }

    /// Restores base backup `backup_id` into `destination` (missing or empty) as `user`
    /// (`barman-cloud-restore`).
    pub fn restore(&self, backup_id: &str, destination: &Path, user: &str, deadline: Instant) -> anyhow::Result<()> {
        let name = "barman-cloud-restore";
        let dest = destination.to_string_lossy();
        // It writes into a staging directory: it must die with persistctl (see child::dying_with_us).
        let mut cmd = child::dying_with_us(&program(name), Some(user))?;
        self.finish_command(&mut cmd, name, &[], &[backup_id, &dest]);
        let (_, outcome) = self.finish(name, cmd, deadline)?;
        outcome.map(drop).map_err(anyhow::Error::msg)
    }

    /// Takes a base backup of the running server as its `user` over the socket
    /// (`barman-cloud-backup`), with `options` (compression, `--name`, ...) and `pgpassfile` for the
    /// connection when set.
    pub fn backup(&self, conn: &Connection, options: &[&str], deadline: Instant) -> anyhow::Result<()> {
        let name = "barman-cloud-backup";
        let port = conn.port.to_string();
        let mut all = vec!["-h", conn.socket_dir, "-p", &port, "-U", conn.user];
        all.extend_from_slice(options);
        let mut cmd = self.command(name, &all, &[]);
        child::as_user(&mut cmd, conn.user)?;
        if let Some(file) = conn.password_file {
            cmd.env("PGPASSFILE", file);
        }
        let (_, outcome) = self.finish(name, cmd, deadline)?;
        outcome.map(drop).map_err(anyhow::Error::msg)
    }

    /// Deletes what `policy` no longer needs (`barman-cloud-backup-delete --retention-policy`); a
    /// pinned backup and the WAL it needs are kept by barman.
    pub fn delete_by_policy(&self, policy: &str, deadline: Instant) -> anyhow::Result<String> {
        self.run("barman-cloud-backup-delete", &["--retention-policy", policy], &[], deadline)
    }
}

/// PostgreSQL's `restore_command`: fetches one WAL file (or timeline history file) `wal` into `path`
/// with `barman-cloud-wal-restore`, within `timeout`, and returns the status PostgreSQL must see:
/// 0 fetched, 1 not in the archive (the end of a recovery to "latest"), [`ABORT_RECOVERY`] for
/// anything else — a network error, bad credentials, a hung store, a crash — so that recovery stops
/// instead of promoting a database that is missing the rest of the archive.
#[must_use]
pub fn wal_restore(archive: &Archive, wal: &str, path: &str, timeout: Duration) -> u8 {
    let mut cmd = Command::new(program("barman-cloud-wal-restore"));
    cmd.args(archive.args()).arg(wal).arg(path);
    let name = "barman-cloud-wal-restore";
    match child::run(cmd, None, child::deadline_in(timeout)) {
        Ok(done) => {
            let code = done.status.code();
            let status = wal_restore_exit(code);
            match status {
                0 => {}
                1 => tracing::info!("{wal}: not in the archive (end of the archive)"),
                _ => tracing::error!(
                    "{wal}: {name} failed ({}): {}; aborting the recovery rather than ending it here",
                    code.map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}")),
                    done.stderr_text()
                ),
            }
            status
        }
        Err(e) => {
            tracing::error!("{wal}: {e}; aborting the recovery rather than ending it here");
            ABORT_RECOVERY
        }
    }
}
