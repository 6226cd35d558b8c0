//! `persistctl status`'s vocabulary: the facts gathered per dataset, the checks and their Nagios
//! states, and the pure steps from facts to report ([`evaluate`]: facts + thresholds + `now` → checks,
//! worst first; [`postgres`]: a PostgreSQL cluster's point-in-time-recovery checks). Gathering the
//! facts and rendering them are `persistctl::status`.

pub mod evaluate;
pub mod postgres;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Thresholds;
use crate::plan::{self, Plan};
use crate::restic;

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
    /// Age of the newest DONE barman-cloud base backup (`postgresql.<service>`).
    PgBaseBackupAge,
    /// PostgreSQL's WAL archiver: failing, or WAL waiting too long.
    PgWalArchiving,
    /// The barman-cloud retention policy, covered or not.
    PgRetention,
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
            Self::PgBaseBackupAge => "pg-base-backup-age",
            Self::PgWalArchiving => "pg-wal-archiving",
            Self::PgRetention => "pg-retention",
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
    /// The PostgreSQL cluster on it and its barman-cloud archive (`postgresql.<service>`); `null`:
    /// none configured.
    pub postgresql: Option<postgres::PostgresFacts>,
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

/// The drift part of the facts: what the planner would do and found for `service`.
#[must_use]
pub fn drift_fact(planned: &Plan, service: &str) -> DriftFact {
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

/// The last line per service of `persistctl preseed`'s status file (its text); lines that do not
/// parse are skipped (a torn last line after a crash must not hide the others).
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
    fn states_map_to_nagios_codes_and_sort_worst_first() {
        let codes: Vec<u8> =
            [State::Ok, State::Warning, State::Critical, State::Unknown].map(State::exit_code).to_vec();
        assert_eq!(codes, [0, 1, 2, 3]);
        assert!(State::Critical.severity() > State::Warning.severity());
        assert!(State::Warning.severity() > State::Unknown.severity());
        assert!(State::Unknown.severity() > State::Ok.severity());
    }
}
