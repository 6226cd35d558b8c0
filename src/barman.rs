//! The only place that runs barman-cloud (`barman-cloud-*`, found on `PATH` or in
//! `$PERSISTCTL_BARMAN_DIR`). What its answers mean is `persistctl_core::barman`.
//!
//! Credentials reach barman-cloud through the environment (`AWS_ACCESS_KEY_ID`, ...: systemd's
//! `EnvironmentFile=` for the units that run it), never through argv.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub use persistctl_core::barman::*;

use crate::child;

/// Where barman-cloud's programs are: `$PERSISTCTL_BARMAN_DIR/<name>`, else `<name>` on `PATH`.
fn program(name: &str) -> OsString {
    match std::env::var_os("PERSISTCTL_BARMAN_DIR") {
        Some(dir) => PathBuf::from(dir).join(name).into_os_string(),
        None => name.into(),
    }
}

/// Where an archive is: the destination URL (`s3://bucket/prefix`), the server name in it, and how to
/// reach the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// `s3://bucket/prefix`.
    pub destination: String,
    /// The server name under the destination.
    pub server_name: String,
    /// An S3-compatible endpoint (`--endpoint-url`).
    pub endpoint_url: Option<String>,
    /// `--cloud-provider` (barman's default, `aws-s3`, when unset).
    pub cloud_provider: Option<String>,
}

impl Archive {
    /// The options every barman-cloud command takes before its positional arguments, then the
    /// destination and server name.
    #[must_use]
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(provider) = &self.cloud_provider {
            args.extend(["--cloud-provider".to_string(), provider.clone()]);
        }
        if let Some(url) = &self.endpoint_url {
            args.extend(["--endpoint-url".to_string(), url.clone()]);
        }
        args.extend([self.destination.clone(), self.server_name.clone()]);
        args
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_before_destination_and_server() {
        let archive = Archive {
            destination: "s3://b/p".into(),
            server_name: "pg".into(),
            endpoint_url: Some("http://127.0.0.1:9000".into()),
            cloud_provider: Some("aws-s3".into()),
        };
        assert_eq!(
            archive.args(),
            ["--cloud-provider", "aws-s3", "--endpoint-url", "http://127.0.0.1:9000", "s3://b/p", "pg"]
        );
        let plain = Archive { endpoint_url: None, cloud_provider: None, ..archive };
        assert_eq!(plain.args(), ["s3://b/p", "pg"]);
    }
}
