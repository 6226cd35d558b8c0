//! The only place that runs PostgreSQL's own programs: `pg_controldata`, and `postgres` as the
//! temporary recovery server of a restore. What their answers mean is `persistctl_core::postgres`.
//!
//! The recovery server runs as the cluster's user through `setpriv --pdeathsig KILL`: if persistctl
//! is killed, so is the server (its backends and startup process follow their postmaster), and a
//! rerun never finds a server still running on a staging directory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::Signal;
pub use persistctl_core::postgres::*;

use crate::child::{self, Server};

/// `pg_controldata DATA_DIR` in the C locale (its labels are translated otherwise).
pub fn controldata(bin_dir: &Path, data_dir: &Path, deadline: Instant) -> anyhow::Result<ControlData> {
    let mut cmd = Command::new(bin_dir.join("pg_controldata"));
    child::scrub_env(&mut cmd);
    cmd.env("LC_ALL", "C").arg(data_dir);
    let done = child::run(cmd, None, deadline)?;
    if !done.status.success() {
        bail!("pg_controldata {} failed: {}", data_dir.display(), done.stderr_text());
    }
    parse_controldata(&done.stdout_text()).map_err(anyhow::Error::msg)
}

/// What the recovery server is started with.
pub struct RecoveryServer<'a> {
    /// The directory holding `postgres`.
    pub bin_dir: &'a Path,
    /// The cluster's user.
    pub user: &'a str,
    /// The restored PGDATA.
    pub data_dir: &'a Path,
    /// Its configuration file ([`recovery_server_conf`]).
    pub conf: &'a Path,
    /// Where its output goes.
    pub log: &'a std::fs::File,
    /// Its environment beyond the inherited basics: the archive's credentials, for `restore_command`.
    pub env: &'a [(String, String)],
}

impl RecoveryServer<'_> {
    /// Starts the server.
    pub fn start(&self) -> anyhow::Result<Server> {
        let mut cmd = child::dying_with_us(self.bin_dir.join("postgres").as_os_str(), Some(self.user))?;
        // `persistctl pg-wal-restore` (the restore_command) finds barman-cloud where persistctl does.
        if let Some(dir) = std::env::var_os("PERSISTCTL_BARMAN_DIR") {
            cmd.env("PERSISTCTL_BARMAN_DIR", dir);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.arg("-D").arg(self.data_dir).arg("-c").arg(format!("config_file={}", self.conf.display()));
        Server::start(cmd, self.log).context("Failed to start the recovery server")
    }
}

/// Waits until the server has finished recovery and promoted (its `postmaster.pid` says `ready`),
/// or stopped (a FATAL: the archive could not deliver, the target was not reached), or `deadline`.
pub fn wait_promoted(server: &mut Server, data_dir: &Path, deadline: Instant) -> anyhow::Result<()> {
    let pid_file = data_dir.join("postmaster.pid");
    loop {
        if let Some(status) = server.exited()? {
            bail!("the recovery stopped before its end ({status})");
        }
        if std::fs::read_to_string(&pid_file).is_ok_and(|text| server_ready(&text)) {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            bail!("the recovery did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50).min(deadline - now));
    }
}

/// Stops the server with a fast shutdown (a shutdown checkpoint: the cluster is then cleanly shut
/// down), within `deadline`.
pub fn stop(server: Server, deadline: Instant) -> anyhow::Result<()> {
    let status = server.stop(Signal::SIGINT, deadline)?;
    if !status.success() {
        bail!("the recovery server did not shut down cleanly ({status})");
    }
    Ok(())
}
