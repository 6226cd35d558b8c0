//! After a PostgreSQL restore, and on schedule: base backups (`persistctl pg-base-backup`), the
//! retention run (`persistctl pg-retention`), and the pin a restore holds on the backup it restores.
//!
//! A restore pins its base backup (`barman-cloud-backup-keep`) before it starts, so that a retention
//! run meanwhile cannot delete it (EnterpriseDB/barman#200), and records the pin in
//! `<status dir>/pitr-<service>.json` first, so that a run killed after pinning still knows. The pin
//! is released by the first base backup taken after the restore succeeded (`--if-restored`, run by
//! the unit ordered after `postgresql.service`): from then on the restored cluster has a backup of
//! its own on its new timeline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::barman::{Client, Connection};
use crate::child;
use crate::config::{Compression, PostgresConfig, Validated};

/// Where a service's pin is recorded, beside the preseed status file.
#[must_use]
pub fn pin_path(status_file: &Path, service: &str) -> PathBuf {
    status_file.with_file_name(format!("pitr-{service}.json"))
}

/// How far a restore that pinned a backup got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinState {
    /// Pinned; the restore has not (yet) put a cluster in place.
    Pinned,
    /// The restored cluster is in place: the next base backup releases the pin.
    Restored,
}

/// The record of a restore's pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pin {
    /// The pinned base backup.
    pub backup_id: String,
    /// How far the restore got.
    pub state: PinState,
    /// The timeline the recovery ended on, once restored.
    pub timeline: Option<u32>,
    /// The checkpoint location the recovery reached, once restored.
    pub lsn: Option<String>,
}

/// Reads a service's pin record; `None` when there is none.
pub fn read_pin(path: &Path) -> anyhow::Result<Option<Pin>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map(Some).with_context(|| format!("Failed to parse {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("Failed to read {}", path.display())),
    }
}

/// Writes a service's pin record atomically (its directory created when missing).
pub fn write_pin(path: &Path, pin: &Pin) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
    }
    let text = serde_json::to_vec(pin).context("Failed to render the pin record")?;
    crate::safe_write::write_atomically(path, &text, 0o600)
}

/// Removes a pin record (gone already is fine).
pub fn remove_pin(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("Failed to remove {}", path.display())),
    }
}

/// The flag both `barman-cloud-backup` and `barman-cloud-wal-archive` take for `compression`.
#[must_use]
pub fn compression_flag(compression: Compression) -> &'static str {
    match compression {
        Compression::Gzip => "--gzip",
        Compression::Bzip2 => "--bzip2",
        Compression::Snappy => "--snappy",
        Compression::Lz4 => "--lz4",
    }
}

/// The service's `postgresql` entry.
fn entry<'v>(validated: &'v Validated, service: &str) -> anyhow::Result<&'v PostgresConfig> {
    validated
        .config
        .postgresql
        .get(service)
        .with_context(|| format!("no postgresql.{service} entry in the config (modules.database.postgresql.pitr)"))
}

/// What `pg-base-backup` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupDone {
    /// `--if-restored` and no restore is waiting for its first backup.
    NothingToDo,
    /// A base backup was taken; `released` is the restored backup whose pin was released.
    Taken {
        /// The pin released, if a restore was waiting.
        released: Option<String>,
    },
}

/// `persistctl pg-base-backup SERVICE`: a base backup of the running cluster, then the release of a
/// restore's pin once its cluster has a backup of its own. With `if_restored`, only when a restore
/// is waiting for it.
pub fn base_backup(
    validated: &Validated,
    service: &str,
    status_file: &Path,
    if_restored: bool,
    timeout: Duration,
) -> anyhow::Result<BackupDone> {
    let pg = entry(validated, service)?;
    let deadline = child::deadline_in(timeout);
    let pin_file = pin_path(status_file, service);
    let pin = read_pin(&pin_file)?.filter(|p| p.state == PinState::Restored);
    if if_restored && pin.is_none() {
        return Ok(BackupDone::NothingToDo);
    }
    let client = Client::new(&pg.archive)?;
    let conn = Connection {
        socket_dir: &pg.socket_dir,
        port: pg.port,
        user: &pg.user,
        password_file: pg.password_file.as_deref(),
    };
    let options: Vec<&str> = pg.compression.map(compression_flag).into_iter().collect();
    client.backup(&conn, &options, deadline).context("The base backup failed")?;
    let Some(pin) = pin else { return Ok(BackupDone::Taken { released: None }) };
    client.release(&pin.backup_id, deadline).with_context(|| {
        format!("The base backup was taken, but the pin on the restored backup {} was not released", pin.backup_id)
    })?;
    remove_pin(&pin_file)?;
    Ok(BackupDone::Taken { released: Some(pin.backup_id) })
}

/// `persistctl pg-retention SERVICE`: `barman-cloud-backup-delete` with the configured policy
/// (pinned backups are kept). Refuses when no retention is configured.
pub fn retention(validated: &Validated, service: &str, timeout: Duration) -> anyhow::Result<String> {
    let pg = entry(validated, service)?;
    let Some(policy) = &pg.retention else {
        bail!("postgresql.{service}.retention is not set: nothing is deleted");
    };
    let client = Client::new(&pg.archive)?;
    client.delete_by_policy(policy, child::deadline_in(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_record_round_trips_and_lives_beside_the_status_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = pin_path(&dir.path().join("preseed.json"), "postgres-data");
        assert_eq!(path, dir.path().join("pitr-postgres-data.json"));
        assert_eq!(read_pin(&path).unwrap(), None);
        let pin = Pin { backup_id: "20261201T000000".into(), state: PinState::Restored, timeline: Some(2), lsn: None };
        write_pin(&path, &pin).unwrap();
        assert_eq!(read_pin(&path).unwrap(), Some(pin));
        remove_pin(&path).unwrap();
        remove_pin(&path).unwrap();
        std::fs::write(&path, "{").unwrap();
        assert!(read_pin(&path).unwrap_err().to_string().contains("Failed to parse"));
    }
}
