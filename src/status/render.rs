//! The table for people, the Prometheus textfile for node-exporter, and writing it atomically.

use std::fmt::Write as _;
use std::path::Path;

use super::evaluate::{age, capacity_percent, human_bytes, human_duration};
use super::postgres::{ArchiverFact, BackupRef, BaseBackupsFact, PostgresFacts};
use super::{BackupFact, CheckKind, PreseedFact, ReplicationFact, Report, State};
use crate::output::table;

/// The Nagios first line, the checks worst first, then one row per dataset.
#[must_use]
pub fn text(report: &Report) -> String {
    let mut out = format!("{}\n\n", report.summary());
    let rows: Vec<Vec<String>> = report
        .checks
        .iter()
        .map(|c| vec![c.state.label().to_string(), c.service.clone(), c.check.name().to_string(), c.message.clone()])
        .collect();
    out.push_str(&table(&["STATE", "SERVICE", "CHECK", "DETAIL"], &rows));
    out.push('\n');
    let now = report.now;
    let rows: Vec<Vec<String>> = report
        .datasets
        .iter()
        .map(|d| {
            let dash = || "-".to_string();
            let (used, avail, quota, cap) = d.space.map_or_else(
                || (dash(), dash(), dash(), dash()),
                |s| {
                    (
                        human_bytes(s.used),
                        human_bytes(s.available),
                        if s.quota == 0 { "none".into() } else { human_bytes(s.quota) },
                        format!("{}%", capacity_percent(s.used, s.available)),
                    )
                },
            );
            let newest = d.snapshots.newest.as_ref().map_or_else(dash, |s| human_duration(age(now, s.creation)));
            let lag = match &d.replication {
                ReplicationFact::NotConfigured => dash(),
                ReplicationFact::Common { creation, .. } => human_duration(age(now, *creation)),
                ReplicationFact::NoCommonSnapshot { .. } => "no common".into(),
                ReplicationFact::TargetMissing { .. } => "no replica".into(),
                ReplicationFact::Unavailable { .. } => "unknown".into(),
            };
            let backup = match &d.backup {
                BackupFact::NotConfigured => dash(),
                BackupFact::Newest { time, .. } => human_duration(age(now, *time)),
                BackupFact::NoSnapshots => "none".into(),
                BackupFact::Unavailable { .. } => "unknown".into(),
            };
            let preseed = match &d.preseed {
                PreseedFact::NoRecord => dash(),
                PreseedFact::Last { event, .. } => event.clone(),
                PreseedFact::Unreadable { .. } => "unknown".into(),
            };
            vec![
                d.dataset.clone(),
                used,
                avail,
                quota,
                cap,
                d.snapshots.count.to_string(),
                newest,
                lag,
                backup,
                preseed,
                d.drift.status.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["DATASET", "USED", "AVAIL", "QUOTA", "CAP", "SNAPS", "NEWEST", "LAG", "BACKUP", "PRESEED", "DRIFT"],
        &rows,
    ));
    out
}

/// A Prometheus label value: `\`, `"` and newlines escaped.
#[must_use]
pub fn label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Metrics {
    text: String,
}

impl Metrics {
    fn family(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label_value(v))).collect();
        if labels.is_empty() {
            let _ = writeln!(self.text, "{name} {value}");
        } else {
            let _ = writeln!(self.text, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

/// The node-exporter textfile: every fact as a gauge labelled by service and dataset (ages in seconds,
/// sizes in bytes, states as their Nagios codes).
#[must_use]
#[allow(clippy::too_many_lines)] // one block per metric family
pub fn prometheus(report: &Report) -> String {
    let mut m = Metrics { text: String::new() };
    let now = report.now;
    m.family("persistctl_status_state", "Overall state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.");
    m.sample("persistctl_status_state", &[], report.state.exit_code());
    m.family("persistctl_status_timestamp_seconds", "When persistctl status ran (its clock).");
    m.sample("persistctl_status_timestamp_seconds", &[], now);
    m.family("persistctl_check_state", "One check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.");
    for c in &report.checks {
        m.sample(
            "persistctl_check_state",
            &[("service", &c.service), ("dataset", &c.dataset), ("check", c.check.name())],
            c.state.exit_code(),
        );
    }
    let with_space: Vec<_> = report.datasets.iter().filter_map(|d| d.space.map(|s| (d, s))).collect();
    for (name, help, get) in [
        ("persistctl_dataset_used_bytes", "The dataset's used property.", (|s: super::Space| s.used) as fn(_) -> u64),
        ("persistctl_dataset_available_bytes", "The dataset's available property.", |s| s.available),
        ("persistctl_dataset_quota_bytes", "The dataset's quota (0: none).", |s| s.quota),
        ("persistctl_dataset_capacity_percent", "used / (used + available), percent.", |s| {
            capacity_percent(s.used, s.available)
        }),
    ] {
        m.family(name, help);
        for (d, s) in &with_space {
            m.sample(name, &[("service", &d.service), ("dataset", &d.dataset)], get(*s));
        }
    }
    m.family("persistctl_snapshot_count", "Snapshots of the dataset (not its children).");
    for d in &report.datasets {
        m.sample("persistctl_snapshot_count", &[("service", &d.service), ("dataset", &d.dataset)], d.snapshots.count);
    }
    m.family("persistctl_snapshot_newest_age_seconds", "Age of the dataset's newest snapshot.");
    for d in &report.datasets {
        if let Some(s) = &d.snapshots.newest {
            let labels = [("service", d.service.as_str()), ("dataset", d.dataset.as_str())];
            m.sample("persistctl_snapshot_newest_age_seconds", &labels, age(now, s.creation));
        }
    }
    m.family(
        "persistctl_replication_lag_seconds",
        "Age of the newest snapshot shared with the syncoid target (absent: no common snapshot or unknown).",
    );
    for d in &report.datasets {
        if let ReplicationFact::Common { target, creation, .. } = &d.replication {
            let labels = [("service", d.service.as_str()), ("dataset", d.dataset.as_str()), ("target", target)];
            m.sample("persistctl_replication_lag_seconds", &labels, age(now, *creation));
        }
    }
    m.family("persistctl_backup_age_seconds", "Age of the newest restic snapshot for the service.");
    for d in &report.datasets {
        if let BackupFact::Newest { time, .. } = &d.backup {
            let labels = [("service", d.service.as_str()), ("dataset", d.dataset.as_str())];
            m.sample("persistctl_backup_age_seconds", &labels, age(now, *time));
        }
    }
    m.family("persistctl_preseed_failed", "1 when the last preseed of the service failed closed.");
    for d in &report.datasets {
        if let PreseedFact::Last { event, .. } = &d.preseed {
            let labels = [("service", d.service.as_str()), ("dataset", d.dataset.as_str())];
            m.sample("persistctl_preseed_failed", &labels, u8::from(event == "failed"));
        }
    }
    m.family("persistctl_drift", "1 when the dataset differs from the config (persistctl plan has work or problems).");
    for d in &report.datasets {
        let drifted = d.drift.status != "in-sync" || !d.drift.findings.is_empty() || !d.drift.problems.is_empty();
        m.sample("persistctl_drift", &[("service", &d.service), ("dataset", &d.dataset)], u8::from(drifted));
    }
    postgres_metrics(&mut m, report);
    m.text
}

/// The `postgresql.<service>` clusters' families, when there is a cluster: a fact that could not be
/// read has no sample (its check is UNKNOWN in `persistctl_check_state`).
fn postgres_metrics(m: &mut Metrics, report: &Report) {
    let now = report.now;
    let clusters: Vec<_> = report.datasets.iter().filter_map(|d| d.postgresql.as_ref().map(|pg| (d, pg))).collect();
    if clusters.is_empty() {
        return;
    }
    let labels = |d: &super::DatasetFacts, pg: &PostgresFacts| {
        [("service", d.service.clone()), ("dataset", d.dataset.clone()), ("server", pg.server_name.clone())]
    };
    let sample = |m: &mut Metrics, name: &str, l: &[(&str, String); 3], value: u64| {
        let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
        m.sample(name, &l, value);
    };
    m.family("persistctl_pg_base_backups", "DONE barman-cloud base backups of the cluster.");
    for (d, pg) in &clusters {
        if let BaseBackupsFact::Listed { done, .. } = &pg.base_backups {
            sample(m, "persistctl_pg_base_backups", &labels(d, pg), u64::try_from(*done).unwrap_or(u64::MAX));
        }
    }
    m.family("persistctl_pg_base_backup_age_seconds", "Age of the end of the newest DONE base backup.");
    for (d, pg) in &clusters {
        if let BaseBackupsFact::Listed { newest: Some(BackupRef { end: Some(end), .. }), .. } = &pg.base_backups {
            sample(m, "persistctl_pg_base_backup_age_seconds", &labels(d, pg), age(now, *end));
        }
    }
    let stats: Vec<_> = clusters
        .iter()
        .filter_map(|(d, pg)| match &pg.archiver {
            ArchiverFact::Stats(s) => Some((labels(d, pg), s)),
            ArchiverFact::Unavailable { .. } => None,
        })
        .collect();
    m.family("persistctl_pg_wal_archive_failing", "1 when the last archive_command attempt failed.");
    for (l, s) in &stats {
        sample(m, "persistctl_pg_wal_archive_failing", l, u64::from(s.failing));
    }
    m.family("persistctl_pg_wal_failed_count", "pg_stat_archiver.failed_count (since its last reset).");
    for (l, s) in &stats {
        sample(m, "persistctl_pg_wal_failed_count", l, s.failed_count);
    }
    m.family("persistctl_pg_wal_ready_files", "WAL files waiting for archive_command (.ready).");
    for (l, s) in &stats {
        sample(m, "persistctl_pg_wal_ready_files", l, s.ready_count);
    }
    m.family(
        "persistctl_pg_wal_oldest_ready_age_seconds",
        "How long the oldest WAL file waiting for archive_command has waited (0: none waiting).",
    );
    for (l, s) in &stats {
        let waited = if s.ready_count == 0 { Some(0) } else { s.oldest_ready_time.map(|t| age(now, t)) };
        if let Some(waited) = waited {
            sample(m, "persistctl_pg_wal_oldest_ready_age_seconds", l, waited);
        }
    }
    m.family(
        "persistctl_pg_wal_last_archived_age_seconds",
        "Age of the last archived WAL file (an idle server legitimately lets it grow).",
    );
    for (l, s) in &stats {
        if let Some(t) = s.last_archived_time {
            sample(m, "persistctl_pg_wal_last_archived_age_seconds", l, age(now, t));
        }
    }
    m.family("persistctl_pg_retention_covered", "1 when the retention policy is covered, 0 when not.");
    for (d, pg) in &clusters {
        let check = report.checks.iter().find(|c| c.service == d.service && c.check == CheckKind::PgRetention);
        match check.map(|c| c.state) {
            Some(State::Ok) => sample(m, "persistctl_pg_retention_covered", &labels(d, pg), 1),
            Some(State::Warning | State::Critical) => sample(m, "persistctl_pg_retention_covered", &labels(d, pg), 0),
            Some(State::Unknown) | None => {}
        }
    }
}

/// Mode of the Prometheus textfile: node-exporter's textfile collector reads it as its own user, and it
/// carries only names and numbers (service, dataset, replication target labels), never error text.
pub const TEXTFILE_MODE: u32 = 0o644;

/// Mode of files that may carry error text (the status state file, the preseed status file): only root,
/// which every reader (`persistctl status`, the deadman's `stat`) runs as, reads them.
pub const PRIVATE_MODE: u32 = 0o600;

/// Replaces `path` with `contents` (with `mode`, whatever the umask) through [`crate::safe_write`]: never
/// through a planted link, never under a guessable temporary name.
pub fn write_atomically(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    crate::safe_write::write_atomically(path, contents.as_bytes(), mode)
}

/// The state a line of [`prometheus`] output reports for a check (used by tests that parse it back).
#[must_use]
pub fn state_from_code(code: u8) -> Option<State> {
    [State::Ok, State::Warning, State::Critical, State::Unknown].into_iter().find(|s| s.exit_code() == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Thresholds;
    use crate::status::{DatasetFacts, DriftFact, SnapshotFacts, SnapshotRef, Space};

    fn report() -> Report {
        let d = DatasetFacts {
            service: "my \"app\"".into(),
            dataset: "tank/persist/my \"app\"".into(),
            space: Some(Space { used: 85, available: 15, quota: 100 }),
            snapshots: SnapshotFacts {
                count: 2,
                newest: Some(SnapshotRef { name: "s".into(), creation: 1000 - 7200 }),
                expected: true,
            },
            replication: ReplicationFact::Common { target: "backup/app".into(), snapshot: "s".into(), creation: -3000 },
            backup: BackupFact::Unavailable { error: "down".into() },
            preseed: PreseedFact::Last { event: "failed".into(), at: Some(0), detail: "x".into() },
            drift: DriftFact { status: "in-sync".into(), ..DriftFact::default() },
            postgresql: None,
        };
        Report::new(vec![d], &Thresholds::default(), 1000)
    }

    #[test]
    fn prometheus_has_every_family_and_escaped_labels() {
        let text = prometheus(&report());
        for line in [
            "persistctl_status_state 2",
            "persistctl_status_timestamp_seconds 1000",
            r#"persistctl_dataset_capacity_percent{service="my \"app\"",dataset="tank/persist/my \"app\""} 85"#,
            r#"persistctl_dataset_quota_bytes{service="my \"app\"",dataset="tank/persist/my \"app\""} 100"#,
            r#"persistctl_snapshot_newest_age_seconds{service="my \"app\"",dataset="tank/persist/my \"app\""} 7200"#,
            r#"persistctl_replication_lag_seconds{service="my \"app\"",dataset="tank/persist/my \"app\"",target="backup/app"} 4000"#,
            r#"persistctl_preseed_failed{service="my \"app\"",dataset="tank/persist/my \"app\""} 1"#,
            r#"persistctl_check_state{service="my \"app\"",dataset="tank/persist/my \"app\"",check="backup-age"} 3"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("persistctl_backup_age_seconds{"), "no age when the repository is down");
        assert!(!text.contains("persistctl_pg_"), "no PostgreSQL families without a cluster");
        // Every sample belongs to a family declared before it.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(declared.last().map(String::as_str), Some(name), "{line}");
            }
        }
        assert_eq!(label_value("a\\b\nc"), "a\\\\b\\nc");
    }

    #[test]
    fn postgres_families_have_a_sample_only_for_what_was_read() {
        use crate::psql::ArchiverStats;
        let dataset = |service: &str, pg: PostgresFacts| DatasetFacts {
            service: service.into(),
            dataset: format!("tank/persist/{service}"),
            space: None,
            snapshots: SnapshotFacts::default(),
            replication: ReplicationFact::NotConfigured,
            backup: BackupFact::NotConfigured,
            preseed: PreseedFact::NoRecord,
            drift: DriftFact { status: "in-sync".into(), ..DriftFact::default() },
            postgresql: Some(pg),
        };
        let stats = ArchiverStats {
            archive_mode: "on".into(),
            in_recovery: false,
            archived_count: 9,
            last_archived_wal: Some("000000010000000000000009".into()),
            last_archived_time: Some(400),
            failed_count: 3,
            last_failed_wal: Some("00000001000000000000000A".into()),
            last_failed_time: Some(900),
            failing: true,
            ready_count: 2,
            oldest_ready_wal: Some("00000001000000000000000A".into()),
            oldest_ready_time: Some(500),
        };
        let up = PostgresFacts {
            destination: "s3://pitr".into(),
            server_name: "main".into(),
            base_backups: BaseBackupsFact::Listed {
                done: 2,
                other: 1,
                newest: Some(BackupRef { id: "20270101T000000".into(), end: Some(100) }),
                oldest: Some(BackupRef { id: "20261231T000000".into(), end: Some(0) }),
            },
            archiver: ArchiverFact::Stats(stats),
            retention: Some(crate::config::RetentionPolicy::Redundancy(3)),
        };
        let down = PostgresFacts {
            server_name: "other".into(),
            base_backups: BaseBackupsFact::Unavailable { error: "exit 4".into() },
            archiver: ArchiverFact::Unavailable { error: "connection refused".into() },
            ..up.clone()
        };
        let text =
            prometheus(&Report::new(vec![dataset("db", up), dataset("db2", down)], &Thresholds::default(), 1000));
        let l = r#"{service="db",dataset="tank/persist/db",server="main"}"#;
        for line in [
            format!("persistctl_pg_base_backups{l} 2"),
            format!("persistctl_pg_base_backup_age_seconds{l} 900"),
            format!("persistctl_pg_wal_archive_failing{l} 1"),
            format!("persistctl_pg_wal_failed_count{l} 3"),
            format!("persistctl_pg_wal_ready_files{l} 2"),
            format!("persistctl_pg_wal_oldest_ready_age_seconds{l} 500"),
            format!("persistctl_pg_wal_last_archived_age_seconds{l} 600"),
            format!("persistctl_pg_retention_covered{l} 0"),
            r#"persistctl_check_state{service="db",dataset="tank/persist/db",check="pg-wal-archiving"} 2"#.to_string(),
            r#"persistctl_check_state{service="db2",dataset="tank/persist/db2",check="pg-base-backup-age"} 3"#
                .to_string(),
            r#"persistctl_check_state{service="db2",dataset="tank/persist/db2",check="pg-retention"} 3"#.to_string(),
        ] {
            assert!(text.lines().any(|x| x == line), "missing {line} in\n{text}");
        }
        assert!(
            !text.contains("service=\"db2\",dataset=\"tank/persist/db2\",server"),
            "nothing read, no sample:\n{text}"
        );
    }

    #[test]
    fn the_table_puts_the_summary_first_and_the_worst_check_next() {
        let text = text(&report());
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("CRITICAL: 1 critical, 1 warning, 1 unknown"), "{text}");
        assert_eq!(lines.next(), Some(""));
        assert!(lines.next().unwrap().starts_with("STATE"));
        assert!(lines.next().unwrap().starts_with("CRITICAL"), "{text}");
        assert!(text.contains("DATASET"), "{text}");
    }

    #[test]
    fn the_textfile_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("persistctl.prom");
        write_atomically(&path, "a 1\n", TEXTFILE_MODE).unwrap();
        write_atomically(&path, "a 2\n", TEXTFILE_MODE).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        let mode = |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions());
        assert_eq!(mode(&path) & 0o777, 0o644, "node-exporter reads it as its own user");
        let private = dir.path().join("state.json");
        write_atomically(&private, "{}", PRIVATE_MODE).unwrap();
        assert_eq!(mode(&private) & 0o777, 0o600);
        std::fs::remove_file(&private).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        assert!(write_atomically(&dir.path().join("missing/x.prom"), "", TEXTFILE_MODE).is_err());
    }
}
