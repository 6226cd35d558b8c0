//! `persistctl status`: per managed dataset, the facts (space, snapshots, replication lag, backup age,
//! last preseed, drift from the core planner), the checks they pass or fail against the thresholds, and
//! the Nagios state.
//!
//! - [`gather`] reads the facts (zfs through [`crate::zfs`], restic through [`crate::restic`], the
//!   preseed status file, PostgreSQL clusters through [`pg`]) — the planner's `zfs get`, one narrow
//!   `zfs get` and one `zfs list -t snapshot` for the whole tree, one `zfs list` per replica, one
//!   `restic snapshots` per backed-up service, one `barman-cloud-backup-list` and one `psql` per
//!   `postgresql.<service>`;
//! - [`evaluate`] is pure: facts + thresholds + `now` → checks, worst first;
//! - [`render`] makes the table, the JSON and the Prometheus textfile (written atomically);
//! - [`state`] remembers the last state so that a notification goes out on a change only.

pub mod pg;
pub mod render;
pub mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

pub use persistctl_core::status::*;

use crate::apply;
use crate::config::{ReplicaConfig, ResticConfig, Validated};
use crate::restic::{self, Restic};
use crate::zfs::{SnapshotInfo, TreeRead, Zfs};

/// How to gather.
#[derive(Debug, Clone)]
pub struct Options {
    /// `persistctl preseed`'s status file.
    pub preseed_status_file: PathBuf,
    /// Per `restic snapshots` call.
    pub restic_timeout: Duration,
    /// Per `barman-cloud-backup-list` call.
    pub barman_timeout: Duration,
    /// Per `psql` call.
    pub psql_timeout: Duration,
}

/// What status reads of every dataset besides the planner's view.
const SPACE_PROPERTIES: &[&str] = &["used", "available", "quota", "com.sun:auto-snapshot"];

/// Reads every fact about every managed dataset.
pub fn gather(zfs: &Zfs, validated: &Validated, opts: &Options) -> anyhow::Result<Vec<DatasetFacts>> {
    let d = &validated.config.datasets;
    // Drift from the core planner; the numbers from a second, narrow `zfs get` (the planner's read keeps
    // only the rows planning needs).
    let planned = apply::make_plan(zfs, validated)?;
    let (tree, snapshots) = match zfs.read_tree(&d.parent_dataset, SPACE_PROPERTIES)? {
        TreeRead::Found(tree) => (tree, zfs.snapshots_with_info(&d.parent_dataset, None)?.unwrap_or_default()),
        TreeRead::Missing => (BTreeMap::new(), BTreeMap::new()),
    };
    let preseed_lines = read_preseed_status(&opts.preseed_status_file);
    let mut out = Vec::new();
    for spec in &validated.specs {
        let live = tree.get(&spec.dataset);
        let number = |prop: &str| live.and_then(|l| l.value(prop)).and_then(|v| v.parse::<u64>().ok());
        let space = match (number("used"), number("available")) {
            (Some(used), Some(available)) => Some(Space { used, available, quota: number("quota").unwrap_or(0) }),
            _ => None,
        };
        let own: &[SnapshotInfo] = snapshots.get(&spec.dataset).map_or(&[], Vec::as_slice);
        let newest = own.iter().max_by_key(|s| s.creation);
        let snaps = SnapshotFacts {
            count: own.len(),
            newest: newest.map(|s| SnapshotRef { name: s.name.clone(), creation: s.creation }),
            expected: live.and_then(|l| l.value("com.sun:auto-snapshot")) == Some("true"),
        };
        let replication = match validated.config.replica_of(&spec.service) {
            None => ReplicationFact::NotConfigured,
            Some(replica) => replication_fact(zfs, replica, own),
        };
        let backup = match validated.config.backup_of(&spec.service) {
            None => BackupFact::NotConfigured,
            Some(repo) => backup_fact(repo, &spec.service, opts.restic_timeout),
        };
        let preseed = match &preseed_lines {
            Err(error) => PreseedFact::Unreadable { error: error.clone() },
            Ok(lines) => lines.get(&spec.service).cloned().unwrap_or(PreseedFact::NoRecord),
        };
        out.push(DatasetFacts {
            service: spec.service.clone(),
            dataset: spec.dataset.clone(),
            space,
            snapshots: snaps,
            replication,
            backup,
            preseed,
            drift: drift_fact(&planned, &spec.service),
            postgresql: validated.config.postgresql.get(&spec.service).map(|pg| pg::facts(pg, opts)),
        });
    }
    Ok(out)
}

fn replication_fact(zfs: &Zfs, replica: &ReplicaConfig, own: &[SnapshotInfo]) -> ReplicationFact {
    let target = match &replica.host {
        Some(host) => format!("{host}:{}", replica.dataset),
        None => replica.dataset.clone(),
    };
    let zfs = match &replica.host {
        None => zfs.clone(),
        Some(host) => zfs.over_ssh(host, replica.ssh_key.as_deref()),
    };
    match zfs.snapshots_with_info(&replica.dataset, Some(1)) {
        Ok(None) => ReplicationFact::TargetMissing { target },
        Ok(Some(mut by_dataset)) => {
            let theirs = by_dataset.remove(&replica.dataset).unwrap_or_default();
            match evaluate::newest_common(own, &theirs) {
                Some(s) => ReplicationFact::Common { target, snapshot: s.name.clone(), creation: s.creation },
                None => ReplicationFact::NoCommonSnapshot { target },
            }
        }
        Err(e) => ReplicationFact::Unavailable { target, error: e.to_string() },
    }
}

fn backup_fact(repo: &ResticConfig, service: &str, timeout: Duration) -> BackupFact {
    let restic = match Restic::new(repo) {
        Ok(r) => r,
        Err(e) => return BackupFact::Unavailable { error: format!("{e:#}") },
    };
    let tags = if repo.tags.is_empty() { vec![service.to_string()] } else { repo.tags.clone() };
    match restic.snapshots(&tags, repo.path.as_deref(), repo.host.as_deref(), crate::child::deadline_in(timeout)) {
        Ok(list) => match restic::newest(&list) {
            None => BackupFact::NoSnapshots,
            Some(s) => match restic::parse_rfc3339(&s.time) {
                Some(ns) => BackupFact::Newest {
                    id: s.short_id().to_string(),
                    time: i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX),
                },
                None => BackupFact::Unavailable { error: format!("snapshot {} has an unreadable time", s.short_id()) },
            },
        },
        Err(e) => BackupFact::Unavailable { error: e.to_string() },
    }
}

/// The last line per service of `persistctl preseed`'s status file. A missing file is "no record";
/// lines that do not parse are skipped (a torn last line after a crash must not hide the others).
fn read_preseed_status(path: &Path) -> Result<BTreeMap<String, PreseedFact>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("Failed to read preseed status file {}: {e}", path.display())),
    };
    Ok(parse_preseed_status(&text))
}

/// Gathers and evaluates. The config's thresholds apply.
pub fn run(zfs: &Zfs, validated: &Validated, opts: &Options, now: i64) -> anyhow::Result<Report> {
    let facts = gather(zfs, validated, opts).context("Failed to gather the status facts")?;
    Ok(Report::new(facts, &validated.config.thresholds(), now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_status_file_is_no_record() {
        assert_eq!(read_preseed_status(Path::new("/nonexistent/preseed.json")), Ok(BTreeMap::new()));
    }
}
