//! `monitoring` (`modules.replication.zfs.monitoring`): what `persistctl status` checks beyond the
//! datasets themselves, its thresholds, and where a service's replica and backups are looked up.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Config;
use super::datasets::DatasetsConfig;
use super::error::Errors;
use super::preseed::{ReplicaConfig, ResticConfig, ResticUse, validate_replica, validate_restic};

/// Warning and critical limits of one check; `null` disables that level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Above this: WARNING.
    pub warning: Option<u64>,
    /// Above this: CRITICAL.
    pub critical: Option<u64>,
}

const HOUR: u64 = 3600;

fn default_replication_lag() -> Limits {
    Limits { warning: Some(12 * HOUR), critical: Some(24 * HOUR) }
}
fn default_backup_age() -> Limits {
    Limits { warning: Some(24 * HOUR), critical: Some(48 * HOUR) }
}
fn default_snapshot_age() -> Limits {
    Limits { warning: Some(48 * HOUR), critical: None }
}
fn default_capacity() -> Limits {
    Limits { warning: Some(80), critical: Some(90) }
}
/// A daily base backup plus two hours for it to run (and the timer's jitter); critical once a second
/// one is missed.
fn default_base_backup_age() -> Limits {
    Limits { warning: Some(26 * HOUR), critical: Some(50 * HOUR) }
}
/// How long the oldest WAL segment may wait for `archive_command`: normally seconds; an hour of
/// WAL that exists only on this machine is worth a warning, six hours a page.
fn default_wal_archive_age() -> Limits {
    Limits { warning: Some(HOUR), critical: Some(6 * HOUR) }
}

/// `monitoring.thresholds`: ages in seconds, capacity in percent. The defaults are the seed's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Thresholds {
    /// Age of the newest snapshot the replica shares with the dataset (default 12 h / 24 h).
    #[serde(default = "default_replication_lag")]
    pub replication_lag: Limits,
    /// Age of the newest restic snapshot (default 24 h / 48 h).
    #[serde(default = "default_backup_age")]
    pub backup_age: Limits,
    /// Age of the newest snapshot (default 48 h / none).
    #[serde(default = "default_snapshot_age")]
    pub snapshot_age: Limits,
    /// `used / (used + available)` in percent (default 80 / 90).
    #[serde(default = "default_capacity")]
    pub capacity_percent: Limits,
    /// Age of the newest DONE barman-cloud base backup of a `postgresql.<service>` cluster (default
    /// 26 h / 50 h: a daily schedule).
    #[serde(default = "default_base_backup_age")]
    pub base_backup_age: Limits,
    /// How long the oldest WAL segment of a `postgresql.<service>` cluster has been waiting to be
    /// archived; nothing waiting is OK however long ago the last one was archived (default 1 h / 6 h).
    #[serde(default = "default_wal_archive_age")]
    pub wal_archive_age: Limits,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            replication_lag: default_replication_lag(),
            backup_age: default_backup_age(),
            snapshot_age: default_snapshot_age(),
            capacity_percent: default_capacity(),
            base_backup_age: default_base_backup_age(),
            wal_archive_age: default_wal_archive_age(),
        }
    }
}

/// `monitoring`: what `persistctl status` checks beyond the datasets themselves.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MonitoringConfig {
    /// Limits; absent ones take the defaults.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Service → its syncoid target, for the replication lag (else `preseed.replica` is used).
    #[serde(default)]
    pub replication: BTreeMap<String, ReplicaConfig>,
    /// Service → the restic repository backing it up, for the backup age (else `preseed.restic`).
    #[serde(default)]
    pub backups: BTreeMap<String, ResticConfig>,
    /// The JSON lines `persistctl preseed` appends (default `/var/lib/persistctl/preseed.json`).
    pub preseed_status_file: Option<String>,
}

impl Config {
    /// The thresholds in force (the defaults when there is no `monitoring`).
    #[must_use]
    pub fn thresholds(&self) -> Thresholds {
        self.monitoring.as_ref().map(|m| m.thresholds).unwrap_or_default()
    }

    /// The replica `status` compares a service's dataset with: `monitoring.replication`, else `preseed.replica`.
    #[must_use]
    pub fn replica_of(&self, service: &str) -> Option<&ReplicaConfig> {
        self.monitoring.as_ref().and_then(|m| m.replication.get(service)).or_else(|| {
            self.datasets.services.get(service).and_then(|s| s.preseed.as_ref()).and_then(|p| p.replica.as_ref())
        })
    }

    /// The restic repository backing up a service: `monitoring.backups`, else `preseed.restic`.
    #[must_use]
    pub fn backup_of(&self, service: &str) -> Option<&ResticConfig> {
        self.monitoring.as_ref().and_then(|m| m.backups.get(service)).or_else(|| {
            self.datasets.services.get(service).and_then(|s| s.preseed.as_ref()).and_then(|p| p.restic.as_ref())
        })
    }
}

/// Checks the section against the services it names.
pub(super) fn validate_monitoring(errors: &mut Errors, m: &MonitoringConfig, d: &DatasetsConfig) {
    let t = &m.thresholds;
    for (name, limits) in [
        ("replicationLag", t.replication_lag),
        ("backupAge", t.backup_age),
        ("snapshotAge", t.snapshot_age),
        ("capacityPercent", t.capacity_percent),
        ("baseBackupAge", t.base_backup_age),
        ("walArchiveAge", t.wal_archive_age),
    ] {
        if let (Some(w), Some(c)) = (limits.warning, limits.critical) {
            if w > c {
                errors.push(format!("monitoring.thresholds.{name}"), format!("warning ({w}) is above critical ({c})"));
            }
        }
    }
    if let Some(pct) = t.capacity_percent.warning.into_iter().chain(t.capacity_percent.critical).find(|p| *p > 100) {
        errors.push("monitoring.thresholds.capacityPercent", format!("{pct} is not a percentage (0..100)"));
    }
    let known = |errors: &mut Errors, at: &str, service: &str| {
        if !d.services.contains_key(service) {
            errors.push(at, format!("{service:?} is not a service in datasets.services"));
        }
    };
    for (service, replica) in &m.replication {
        let at = format!("monitoring.replication.{service}");
        known(errors, &at, service);
        validate_replica(errors, &at, replica);
    }
    for (service, restic) in &m.backups {
        let at = format!("monitoring.backups.{service}");
        known(errors, &at, service);
        validate_restic(errors, &at, restic, ResticUse::Monitor);
    }
    if let Some(file) = &m.preseed_status_file {
        errors.absolute_path("monitoring.preseedStatusFile", file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::config::test_support::{assert_refused_at, config_with_service};

    #[test]
    fn monitoring_defaults_are_the_seeds_thresholds() {
        let text = r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/persist",
            "services": {"a": {}}}, "monitoring": {"thresholds": {"capacityPercent": {"warning": 70, "critical": null}}}}"#;
        let v = parse(text).unwrap();
        let t = v.config.thresholds();
        assert_eq!(t.replication_lag, Limits { warning: Some(12 * 3600), critical: Some(24 * 3600) });
        assert_eq!(t.backup_age, Limits { warning: Some(24 * 3600), critical: Some(48 * 3600) });
        assert_eq!(t.snapshot_age, Limits { warning: Some(48 * 3600), critical: None });
        assert_eq!(t.capacity_percent, Limits { warning: Some(70), critical: None });
        assert_eq!(t.base_backup_age, Limits { warning: Some(26 * 3600), critical: Some(50 * 3600) });
        assert_eq!(t.wal_archive_age, Limits { warning: Some(3600), critical: Some(6 * 3600) });
        let without = parse(&config_with_service("{}")).unwrap();
        assert_eq!(without.config.thresholds(), Thresholds::default());
    }

    #[test]
    fn monitoring_targets_fall_back_to_the_preseed_ones() {
        let text = r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/persist",
            "services": {"a": {"preseed": {"replica": {"dataset": "backup/a"}}}, "b": {}}},
            "monitoring": {"replication": {"b": {"dataset": "backup/b", "host": "root@nas"}},
                           "backups": {"b": {"repository": "/srv/restic", "passwordFile": "/p"}}}}"#;
        let v = parse(text).unwrap();
        assert_eq!(v.config.replica_of("a").unwrap().dataset, "backup/a");
        assert_eq!(v.config.replica_of("b").unwrap().host.as_deref(), Some("root@nas"));
        assert!(v.config.backup_of("a").is_none());
        assert_eq!(v.config.backup_of("b").unwrap().repository.as_deref(), Some("/srv/restic"));
    }

    #[test]
    fn bad_monitoring_values_name_their_field() {
        let base = |m: &str| {
            format!(
                r#"{{"version": 1, "datasets": {{"parentDataset": "tank/persist", "parentMount": "/persist",
                   "services": {{"a": {{}}}}}}, "monitoring": {m}}}"#
            )
        };
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{"thresholds": {"backupAge": {"warning": 10, "critical": 5}}}"#,
                "monitoring.thresholds.backupAge",
                "above critical",
            ),
            (
                r#"{"thresholds": {"walArchiveAge": {"warning": 7200, "critical": 3600}}}"#,
                "monitoring.thresholds.walArchiveAge",
                "above critical",
            ),
            (
                r#"{"thresholds": {"baseBackupAge": {"warning": 2, "critical": 1}}}"#,
                "monitoring.thresholds.baseBackupAge",
                "above critical",
            ),
            (
                r#"{"thresholds": {"capacityPercent": {"warning": 80, "critical": 120}}}"#,
                "monitoring.thresholds.capacityPercent",
                "not a percentage",
            ),
            (r#"{"thresholds": {"lag": {}}}"#, "monitoring.thresholds.lag", "unknown field"),
            (r#"{"replication": {"zzz": {"dataset": "backup/zzz"}}}"#, "monitoring.replication.zzz", "not a service"),
            (
                r#"{"replication": {"a": {"dataset": "backup//a"}}}"#,
                "monitoring.replication.a.dataset",
                "empty component",
            ),
            (r#"{"replication": {"a": {"dataset": "b/a", "host": "-x"}}}"#, "monitoring.replication.a.host", "host"),
            (r#"{"backups": {"a": {"passwordFile": "/p"}}}"#, "monitoring.backups.a.repository", "set repository"),
            (
                r#"{"backups": {"a": {"repository": "/r", "passwordFile": "p"}}}"#,
                "monitoring.backups.a.passwordFile",
                "not an absolute path",
            ),
            (r#"{"preseedStatusFile": "rel"}"#, "monitoring.preseedStatusFile", "not an absolute path"),
        ];
        for (m, path, needle) in cases {
            assert_refused_at(&base(m), path, needle);
        }
    }
}
