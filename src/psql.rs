//! The only place that runs `psql` (`<binDir>/psql` of a `postgresql.<service>` cluster): one
//! statement as the server's OS user (peer authentication over its Unix socket), with a deadline.
//! What is asked and what the answers mean is `persistctl_core::psql`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::bail;
pub use persistctl_core::psql::*;

use crate::child;
use crate::config::PostgresConfig;

/// A cluster's `psql`, as its server's user.
#[derive(Debug, Clone)]
pub struct Psql {
    program: PathBuf,
    socket_dir: String,
    port: u16,
    user: String,
    password_file: Option<String>,
}

impl Psql {
    /// `<binDir>/psql` against the cluster's socket, as its `user`.
    #[must_use]
    pub fn new(config: &PostgresConfig) -> Self {
        Self {
            program: Path::new(&config.bin_dir).join("psql"),
            socket_dir: config.socket_dir.clone(),
            port: config.port,
            user: config.user.clone(),
            password_file: config.password_file.clone(),
        }
    }

    /// Runs `sql` until `deadline` and returns what psql printed.
    ///
    /// # Errors
    /// No such user, psql could not be started, it exited non-zero (the server is down, refuses the
    /// connection, the SQL failed: its message, on one line), or the deadline passed.
    pub fn query(&self, sql: &str, deadline: Instant) -> anyhow::Result<String> {
        let mut cmd = Command::new(&self.program);
        child::scrub_env(&mut cmd);
        child::as_user(&mut cmd, &self.user)?;
        // libpq's own connect timeout, 5 s inside ours: a socket that accepts and never answers is
        // given up by psql itself, with its message, before the deadline kills it with none.
        let left = deadline.saturating_duration_since(Instant::now()).as_secs();
        cmd.env("PGCONNECT_TIMEOUT", left.saturating_sub(5).max(2).to_string()).env("PGAPPNAME", "persistctl-status");
        if let Some(file) = &self.password_file {
            cmd.env("PGPASSFILE", file);
        }
        // The server's user may not enter persistctl's working directory (root's home).
        cmd.current_dir("/");
        cmd.args(argv(&self.socket_dir, self.port, &self.user, sql));
        tracing::debug!(program = %self.program.display(), user = %self.user, socket = %self.socket_dir, port = self.port, "running psql");
        match child::run(cmd, None, deadline) {
            Ok(done) if done.status.success() => Ok(done.stdout_text()),
            Ok(done) => {
                let how = done.status.code().map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"));
                // psql's messages span lines (a hint on the next one, tab-indented): one line here.
                let why = done.stderr_text().split_whitespace().collect::<Vec<_>>().join(" ");
                bail!("psql failed ({how}): {why}")
            }
            Err(e) => bail!("{e}"),
        }
    }

    /// The WAL archiver's state ([`ARCHIVER_QUERY`]).
    ///
    /// # Errors
    /// As [`Psql::query`], or an answer that does not parse.
    pub fn archiver(&self, deadline: Instant) -> anyhow::Result<ArchiverStats> {
        let stdout = self.query(ARCHIVER_QUERY, deadline)?;
        parse_archiver(&stdout).map_err(anyhow::Error::msg)
    }
}
