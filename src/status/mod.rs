//! `persistctl status`: per managed dataset, the facts (space, snapshots, replication lag, backup age,
//! last preseed, drift from the core planner), the checks they pass or fail against the thresholds, and
//! the Nagios state.
//!
//! - [`gather`] reads the facts (zfs through [`crate::zfs`], restic through [`crate::restic`], the
//!   preseed status file) — the planner's `zfs get`, one narrow `zfs get` and one `zfs list -t snapshot`
//!   for the whole tree, one `zfs list` per replica, one `restic snapshots` per backed-up service;
//! - [`evaluate`] is pure: facts + thresholds + `now` → checks, worst first;
//! - [`render`] makes the table, the JSON and the Prometheus textfile (written atomically);
//! - [`state`] remembers the last state so that a notification goes out on a change only.

pub mod evaluate;
pub mod render;
pub mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::apply;
use crate::config::{ReplicaConfig, ResticConfig, Thresholds, Validated};
use crate::plan::{self, Plan};
use crate::restic::{self, Restic};
use crate::zfs::{SnapshotInfo, TreeRead, Zfs};

/// The Nagios states, with their exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// 0.
    Ok,
    /// 1.
    Warning,
    /// 2.
    Critical,
    /// 3: could not be checked.
    Unknown,
}

impl State {
    /// The Nagios exit code.
    #[must_use]
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Warning => 1,
            Self::Critical => 2,
            Self::Unknown => 3,
        }
    }

    /// For "worst first": CRITICAL, WARNING, UNKNOWN, OK.
    #[must_use]
    pub fn severity(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Unknown => 1,
            Self::Warning => 2,
            Self::Critical => 3,
        }
    }

    /// `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// What one check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// The dataset against the config (the core planner).
    Drift,
    /// `used / (used + available)`.
    Capacity,
    /// Age of the newest snapshot.
    SnapshotAge,
    /// Age of the newest snapshot shared with the syncoid target.
    ReplicationLag,
    /// Age of the newest restic snapshot.
    BackupAge,
    /// The last `persistctl preseed` outcome.
    Preseed,
}

impl CheckKind {
    /// The kebab-case name (JSON, Prometheus label, table).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Drift => "drift",
            Self::Capacity => "capacity",
            Self::SnapshotAge => "snapshot-age",
            Self::ReplicationLag => "replication-lag",
            Self::BackupAge => "backup-age",
            Self::Preseed => "preseed",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The service.
    pub service: String,
    /// Its dataset.
    pub dataset: String,
    /// What was checked.
    pub check: CheckKind,
    /// The result.
    pub state: State,
    /// Seconds (ages) or percent (capacity), when there is a number.
    pub value: Option<u64>,
    /// One line for people.
    pub message: String,
}

/// Space of a dataset, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Space {
    /// `used`.
    pub used: u64,
    /// `available` (already limited by a quota).
    pub available: u64,
    /// `quota`, 0 for none.
    pub quota: u64,
}

/// A snapshot, by name and creation time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotRef {
    /// The part after `@`.
    pub name: String,
    /// Seconds since the epoch.
    pub creation: i64,
}

/// The dataset's own snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SnapshotFacts {
    /// How many.
    pub count: usize,
    /// The newest.
    pub newest: Option<SnapshotRef>,
    /// Whether snapshots are expected (`com.sun:auto-snapshot` is `true`, set or inherited).
    pub expected: bool,
}

/// The replica, compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ReplicationFact {
    /// No syncoid target known for this service.
    NotConfigured,
    /// The newest snapshot both sides hold.
    Common {
        /// The replica (`[user@host:]pool/ds`).
        target: String,
        /// Snapshot name.
        snapshot: String,
        /// Its creation, seconds since the epoch.
        creation: i64,
    },
    /// Both exist but share no snapshot.
    NoCommonSnapshot {
        /// The replica.
        target: String,
    },
    /// The replica does not exist.
    TargetMissing {
        /// The replica.
        target: String,
    },
    /// Could not be looked at.
    Unavailable {
        /// The replica.
        target: String,
        /// Why.
        error: String,
    },
}

/// The newest restic backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum BackupFact {
    /// No repository known for this service.
    NotConfigured,
    /// The newest snapshot.
    Newest {
        /// Short id.
        id: String,
        /// Its time, seconds since the epoch.
        time: i64,
    },
    /// The repository answered and holds nothing for this service.
    NoSnapshots,
    /// The repository did not answer (unreachable, wrong password, timeout): never read as "no backup".
    Unavailable {
        /// Why.
        error: String,
    },
}

/// The last `persistctl preseed` run of this service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum PreseedFact {
    /// No line for this service (never ran, or no status file).
    NoRecord,
    /// The last line.
    Last {
        /// `skipped`, `restored`, `empty-bootstrap`, `failed`, `dry-run`.
        event: String,
        /// When, seconds since the epoch.
        at: Option<i64>,
        /// Why, in one line.
        detail: String,
    },
    /// The status file could not be read.
    Unreadable {
        /// Why.
        error: String,
    },
}

/// The dataset against the config, from the core planner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftFact {
    /// The planner's status: `in-sync`, `create`, `update`, `blocked`, `skipped`.
    pub status: String,
    /// Actions a `persistctl apply` would take.
    pub pending: Vec<String>,
    /// Reports (create-time-only drift, unmanaged local properties, not mounted).
    pub findings: Vec<String>,
    /// Problems that need a person.
    pub problems: Vec<String>,
    /// Why it was not looked at (its pool is not imported).
    pub skipped: Option<String>,
}

/// Everything known about one managed dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetFacts {
    /// The service.
    pub service: String,
    /// Its dataset.
    pub dataset: String,
    /// `None` when the dataset does not exist.
    pub space: Option<Space>,
    /// Its own snapshots.
    pub snapshots: SnapshotFacts,
    /// Against its syncoid target.
    pub replication: ReplicationFact,
    /// Its newest restic backup.
    pub backup: BackupFact,
    /// Its last preseed.
    pub preseed: PreseedFact,
    /// Against the config.
    pub drift: DriftFact,
}

/// The result of one `persistctl status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Always 1 (`docs/json-output.md`).
    pub format: u32,
    /// The clock used, seconds since the epoch.
    pub now: i64,
    /// The worst check's state.
    pub state: State,
    /// Per dataset.
    pub datasets: Vec<DatasetFacts>,
    /// Every check, worst first.
    pub checks: Vec<Check>,
}

impl Report {
    /// Evaluates facts at `now`.
    #[must_use]
    pub fn new(datasets: Vec<DatasetFacts>, thresholds: &Thresholds, now: i64) -> Self {
        let checks = evaluate::evaluate(&datasets, thresholds, now);
        Self { format: 1, now, state: evaluate::overall(&checks), datasets, checks }
    }

    /// `CRITICAL: 1 critical, 2 warning, 9 ok` — the Nagios first line.
    #[must_use]
    pub fn summary(&self) -> String {
        let count = |s: State| self.checks.iter().filter(|c| c.state == s).count();
        let mut parts = Vec::new();
        for s in [State::Critical, State::Warning, State::Unknown, State::Ok] {
            let n = count(s);
            if n > 0 {
                parts.push(format!("{n} {}", s.label().to_lowercase()));
            }
        }
        let worst = self.checks.iter().find(|c| c.state == self.state && c.state != State::Ok);
        let first = worst.map(|c| format!(" — {} {}: {}", c.service, c.check.name(), c.message)).unwrap_or_default();
        if parts.is_empty() {
            parts.push("no datasets".into());
        }
        format!("{}: {}{first}", self.state.label(), parts.join(", "))
    }
}

/// How to gather.
#[derive(Debug, Clone)]
pub struct Options {
    /// `persistctl preseed`'s status file.
    pub preseed_status_file: PathBuf,
    /// Per `restic snapshots` call.
    pub restic_timeout: Duration,
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

fn drift_fact(planned: &Plan, service: &str) -> DriftFact {
    let Some(d) = planned.datasets.iter().find(|d| d.service == service) else {
        return DriftFact { status: "unknown".into(), ..DriftFact::default() };
    };
    let mut problems = d.problems.clone();
    problems.extend(planned.parent_problems.iter().cloned());
    DriftFact {
        status: d.status.to_string(),
        pending: d.actions.iter().map(plan::Action::describe).collect(),
        findings: d
            .findings
            .iter()
            .filter(|f| !matches!(f, plan::Finding::UnmanagedLocalProperty { .. }))
            .map(plan::Finding::describe)
            .collect(),
        problems,
        skipped: d.skipped.clone(),
    }
}

#[derive(Deserialize)]
struct PreseedLine {
    service: String,
    event: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    at: Option<String>,
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

/// Pure part of [`read_preseed_status`].
#[must_use]
pub fn parse_preseed_status(text: &str) -> BTreeMap<String, PreseedFact> {
    let mut last = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(p) = serde_json::from_str::<PreseedLine>(line) else { continue };
        let at = p.at.as_deref().and_then(restic::parse_rfc3339).and_then(|ns| i64::try_from(ns / 1_000_000_000).ok());
        // A line written before persistctl masked URL passwords may still carry one.
        let detail = crate::redact::url_userinfo(&p.detail);
        last.insert(p.service, PreseedFact::Last { event: p.event, at, detail });
    }
    last
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
    fn the_last_preseed_line_per_service_wins_and_torn_lines_are_skipped() {
        let text = r#"{"service":"a","dataset":"t/a","event":"failed","detail":"no source","at":"2027-01-15T08:00:00Z"}
{"service":"b","event":"skipped","detail":"data present"}
{"service":"a","event":"restored","detail":"from snapshot","at":"2027-01-15T09:00:00Z"}
{"service":"a","event":"fai"#;
        let got = parse_preseed_status(text);
        assert_eq!(
            got["a"],
            PreseedFact::Last { event: "restored".into(), at: Some(1_800_003_600), detail: "from snapshot".into() }
        );
        assert!(matches!(&got["b"], PreseedFact::Last { event, at: None, .. } if event == "skipped"));
        let old = r#"{"service":"c","event":"failed","detail":"restic: Fatal: sftp://u:hunter2@h/r: EOF"}"#;
        let PreseedFact::Last { detail, .. } = &parse_preseed_status(old)["c"] else { panic!() };
        assert_eq!(detail, "restic: Fatal: sftp://u:***@h/r: EOF", "a line an older version wrote is masked too");
    }

    #[test]
    fn a_missing_status_file_is_no_record() {
        assert_eq!(read_preseed_status(Path::new("/nonexistent/preseed.json")), Ok(BTreeMap::new()));
    }

    #[test]
    fn states_map_to_nagios_codes_and_sort_worst_first() {
        let codes: Vec<u8> =
            [State::Ok, State::Warning, State::Critical, State::Unknown].map(State::exit_code).to_vec();
        assert_eq!(codes, [0, 1, 2, 3]);
        assert!(State::Critical.severity() > State::Warning.severity());
        assert!(State::Warning.severity() > State::Unknown.severity());
        assert!(State::Unknown.severity() > State::Ok.severity());
    }
}
