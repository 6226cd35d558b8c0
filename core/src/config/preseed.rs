//! `datasets.services.<name>.preseed`: where a restore comes from and how long it may take, and the
//! two source shapes `monitoring` shares (a replica, a restic repository), each with its one validator.

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MAX_TIMEOUT_SECS;
use super::error::Errors;
use crate::zfs::namecheck::check_dataset_name;

/// A place `preseed` may restore from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The dataset's own newest snapshot that holds data.
    Snapshot,
    /// The syncoid target's newest snapshot.
    Replica,
    /// The newest restic snapshot for the service.
    Restic,
    /// PostgreSQL: a barman-cloud base backup replayed to the end of the archive or a target time
    /// (the service's `postgresql` entry).
    Barman,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Snapshot => "snapshot",
            Self::Replica => "replica",
            Self::Restic => "restic",
            Self::Barman => "barman",
        })
    }
}

fn default_sources() -> Vec<SourceKind> {
    vec![SourceKind::Snapshot, SourceKind::Replica, SourceKind::Restic]
}
const fn default_timeout() -> u64 {
    3600
}
fn default_ignore() -> Vec<String> {
    vec!["lost+found".to_string()]
}

/// `services.<name>.preseed`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreseedConfig {
    /// Whether `preseed` restores this service at all.
    #[serde(default)]
    pub enable: bool,
    /// Sources, tried in order.
    #[serde(default = "default_sources")]
    #[schemars(extend("uniqueItems" = true))]
    pub sources: Vec<SourceKind>,
    /// Start empty when every source says "no backup exists".
    #[serde(default)]
    pub allow_empty_bootstrap: bool,
    /// Overall timeout, seconds.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_SECS))]
    pub timeout: u64,
    /// Per-source timeout, seconds (default: the overall one).
    #[schemars(range(min = 1, max = MAX_TIMEOUT_SECS))]
    pub source_timeout: Option<u64>,
    /// argv run with the staged data's path appended; non-zero rejects the source.
    #[schemars(length(min = 1))]
    pub verify_command: Option<Vec<String>>,
    /// Top-level entries that do not count as data.
    #[serde(default = "default_ignore")]
    pub ignore: Vec<String>,
    /// Paths (relative to the dataset root) whose existence means "the data is here", e.g.
    /// `sonarr.db`. Empty: any entry not in `ignore` counts. Set, a dataset holding other entries but no
    /// marker (a directory a tmpfiles rule or `StateDirectory` pre-created) is refused, never skipped.
    #[serde(default)]
    pub data_markers: Vec<String>,
    /// The syncoid target of this dataset.
    pub replica: Option<ReplicaConfig>,
    /// The restic repository holding this service's backups.
    pub restic: Option<ResticConfig>,
}

/// `preseed.replica`, and `monitoring.replication.<service>`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplicaConfig {
    /// The replica dataset.
    pub dataset: String,
    /// `user@host` for a remote replica; absent for a local pool.
    pub host: Option<String>,
    /// SSH key for a remote replica.
    pub ssh_key: Option<String>,
}

/// `preseed.restic`, and `monitoring.backups.<service>`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResticConfig {
    /// Repository location.
    pub repository: Option<String>,
    /// File holding the repository location.
    pub repository_file: Option<String>,
    /// File holding the password.
    pub password_file: String,
    /// `KEY=value` lines for the restic process (S3 credentials).
    pub environment_file: Option<String>,
    /// Snapshot tags (default: the service name).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Path inside the snapshot holding the data (default: the dataset's mountpoint).
    pub path: Option<String>,
    /// `--host` filter.
    pub host: Option<String>,
}

/// Checks one service's preseed settings; `at` is its field path (`datasets.services.sonarr.preseed`).
pub(super) fn validate_preseed(errors: &mut Errors, at: &str, preseed: &PreseedConfig) {
    let unique: BTreeSet<_> = preseed.sources.iter().collect();
    if unique.len() != preseed.sources.len() {
        errors.push(format!("{at}.sources"), "lists a source twice");
    }
    if preseed.enable && preseed.sources.is_empty() && !preseed.allow_empty_bootstrap {
        errors.push(format!("{at}.sources"), "is empty and allowEmptyBootstrap is false: nothing could ever start");
    }
    for (field, value) in [("timeout", Some(preseed.timeout)), ("sourceTimeout", preseed.source_timeout)] {
        if let Some(secs) = value.filter(|s| !(1..=MAX_TIMEOUT_SECS).contains(s)) {
            errors.push(format!("{at}.{field}"), format!("{secs} is not 1 … {MAX_TIMEOUT_SECS} seconds (7 days)"));
        }
    }
    if let Some(cmd) = &preseed.verify_command {
        if cmd.is_empty() || cmd[0].is_empty() {
            errors.push(format!("{at}.verifyCommand"), "needs a program (a list: program, then arguments)");
        }
    }
    for entry in &preseed.ignore {
        if entry.is_empty() || entry.contains('/') || entry == "." || entry == ".." {
            errors.push(format!("{at}.ignore"), format!("{entry:?} is not a plain file name"));
        }
    }
    for marker in &preseed.data_markers {
        let bad_part = marker.split('/').any(|part| part.is_empty() || part == "." || part == "..");
        if marker.starts_with('/') || bad_part || marker.chars().any(char::is_control) {
            errors.push(
                format!("{at}.dataMarkers"),
                format!("{marker:?} must be a relative path inside the dataset (no empty, . or .. parts)"),
            );
        }
    }
    let uses = |kind| preseed.sources.contains(&kind);
    match (&preseed.replica, uses(SourceKind::Replica) && preseed.enable) {
        (Some(replica), _) => validate_replica(errors, &format!("{at}.replica"), replica),
        (None, true) => errors.push(format!("{at}.replica"), "is required because sources lists \"replica\""),
        (None, false) => {}
    }
    match (&preseed.restic, uses(SourceKind::Restic) && preseed.enable) {
        (Some(restic), _) => validate_restic(errors, &format!("{at}.restic"), restic, ResticUse::Restore),
        (None, true) => errors.push(format!("{at}.restic"), "is required because sources lists \"restic\""),
        (None, false) => {}
    }
}

/// Checks a replica (`preseed.replica`, `monitoring.replication.<service>`); `at` is its field path.
pub(super) fn validate_replica(errors: &mut Errors, at: &str, replica: &ReplicaConfig) {
    errors.check(format!("{at}.dataset"), check_dataset_name(&replica.dataset));
    if let Some(key) = &replica.ssh_key {
        errors.absolute_path(format!("{at}.sshKey"), key);
    }
    if let Some(host) = &replica.host {
        if host.is_empty() || host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.push(format!("{at}.host"), format!("{host:?} is not a host or user@host"));
        }
    }
}

/// What a restic repository entry is read for, which decides whether its `path` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResticUse {
    /// `preseed.restic`: restored from, so `path` (inside the snapshot) matters.
    Restore,
    /// `monitoring.backups.<service>`: only its snapshots' ages are read; `path` is never used (the
    /// module writes null there) and has never been checked.
    Monitor,
}

/// Checks a restic repository entry (`preseed.restic`, `monitoring.backups.<service>`); `at` is its
/// field path.
pub(super) fn validate_restic(errors: &mut Errors, at: &str, restic: &ResticConfig, used: ResticUse) {
    match (&restic.repository, &restic.repository_file) {
        (None, None) => errors.push(format!("{at}.repository"), "set repository or repositoryFile"),
        (Some(_), Some(_)) => errors.push(format!("{at}.repository"), "set repository or repositoryFile, not both"),
        (Some(repo), None) if repo.is_empty() => errors.push(format!("{at}.repository"), "is empty"),
        (_, Some(file)) => errors.absolute_path(format!("{at}.repositoryFile"), file),
        (Some(_), None) => {}
    }
    errors.absolute_path(format!("{at}.passwordFile"), &restic.password_file);
    if let Some(env) = &restic.environment_file {
        errors.absolute_path(format!("{at}.environmentFile"), env);
    }
    if let (Some(path), ResticUse::Restore) = (&restic.path, used) {
        errors.absolute_path(format!("{at}.path"), path);
    }
    if restic.tags.iter().any(|t| t.is_empty() || t.contains(',')) {
        errors.push(format!("{at}.tags"), "tags cannot be empty or contain ','");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{assert_refused_at, config_with_service};

    #[test]
    fn every_bad_preseed_value_names_its_field() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"{"preseed": {"enable": true}}"#, "datasets.services.sonarr.preseed.replica", "required"),
            (
                r#"{"preseed": {"enable": true, "sources": ["snapshot"], "dataMarkers": ["../etc/passwd"]}}"#,
                "datasets.services.sonarr.preseed.dataMarkers",
                "relative path inside the dataset",
            ),
            (
                r#"{"preseed": {"enable": true, "sources": ["snapshot"], "dataMarkers": ["/abs"]}}"#,
                "datasets.services.sonarr.preseed.dataMarkers",
                "relative path",
            ),
            (
                r#"{"preseed": {"enable": true, "sources": ["restic"], "restic": {"passwordFile": "/p"}}}"#,
                "datasets.services.sonarr.preseed.restic.repository",
                "set repository or repositoryFile",
            ),
            (
                r#"{"preseed": {"enable": true, "sources": ["tape"]}}"#,
                "datasets.services.sonarr.preseed.sources[0]",
                "unknown variant `tape`",
            ),
            (
                r#"{"preseed": {"enable": true, "sources": ["snapshot", "snapshot"]}}"#,
                "datasets.services.sonarr.preseed.sources",
                "twice",
            ),
            (
                r#"{"preseed": {"timeout": 9223372036854775808, "sources": ["snapshot"]}}"#,
                "datasets.services.sonarr.preseed.timeout",
                "not 1 … 604800 seconds",
            ),
            (
                r#"{"preseed": {"sourceTimeout": 604801, "sources": ["snapshot"]}}"#,
                "datasets.services.sonarr.preseed.sourceTimeout",
                "not 1 … 604800 seconds",
            ),
            (
                r#"{"preseed": {"timeout": 0, "sources": ["snapshot"]}}"#,
                "datasets.services.sonarr.preseed.timeout",
                "not 1 … 604800 seconds",
            ),
            (
                r#"{"preseed": {"enable": true, "sources": []}}"#,
                "datasets.services.sonarr.preseed.sources",
                "nothing could ever start",
            ),
            (
                r#"{"preseed": {"sources": ["restic"], "restic": {"repository": "/r", "passwordFile": "/p", "path": "data"}}}"#,
                "datasets.services.sonarr.preseed.restic.path",
                "not an absolute path",
            ),
        ];
        for (service, path, needle) in cases {
            assert_refused_at(&config_with_service(service), path, needle);
        }
    }

    #[test]
    fn a_replica_and_a_repository_are_checked_alike_wherever_they_stand() {
        let replica: ReplicaConfig =
            serde_json::from_str(r#"{"dataset": "backup//a", "host": "-oProxyCommand=x", "sshKey": "key"}"#).unwrap();
        let mut errors = Errors::default();
        validate_replica(&mut errors, "r", &replica);
        let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["r.dataset", "r.sshKey", "r.host"], "{errors:?}");

        let restic: ResticConfig = serde_json::from_str(
            r#"{"repositoryFile": "f", "passwordFile": "p", "environmentFile": "e", "tags": [""], "path": "rel"}"#,
        )
        .unwrap();
        let mut restore = Errors::default();
        validate_restic(&mut restore, "r", &restic, ResticUse::Restore);
        let paths: Vec<&str> = restore.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["r.repositoryFile", "r.passwordFile", "r.environmentFile", "r.path", "r.tags"]);
        let mut monitor = Errors::default();
        validate_restic(&mut monitor, "r", &restic, ResticUse::Monitor);
        assert_eq!(monitor.count(), 4, "monitoring never reads path: {monitor:?}");
    }
}
