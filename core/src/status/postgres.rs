//! PURE: the PostgreSQL point-in-time-recovery checks of a `postgresql.<service>` cluster — the age
//! of the newest DONE base backup, whether WAL archiving works and keeps up, whether the retention
//! policy is covered — from the facts `persistctl::status` gathers (barman-cloud's backup list,
//! psql's archiver row).
//!
//! "Cannot tell" (the archive does not answer, PostgreSQL is not reachable) is UNKNOWN, as for the
//! restic and replica checks: never OK, never taken for "no backup".

use serde::Serialize;

use super::evaluate::{age, human_duration, level};
use super::{CheckKind, State};
use crate::barman::{self, Backup};
use crate::config::{Limits, RetentionPolicy, Thresholds};
use crate::psql::ArchiverStats;

/// What `status` knows about the cluster of one `postgresql.<service>` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostgresFacts {
    /// The archive (`s3://bucket/prefix`).
    pub destination: String,
    /// The server name in it.
    pub server_name: String,
    /// Its base backups.
    pub base_backups: BaseBackupsFact,
    /// The running server's WAL archiver.
    pub archiver: ArchiverFact,
    /// The configured retention policy (`null`: none, the retention check is not made).
    pub retention: Option<RetentionPolicy>,
}

/// A base backup, by id and end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupRef {
    /// barman's id (`20261201T212759`).
    pub id: String,
    /// When it ended, seconds since the epoch (`null`: barman older than 3.12.1 lists no
    /// `end_time_iso`).
    pub end: Option<i64>,
}

/// The archive's base backups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum BaseBackupsFact {
    /// `barman-cloud-backup-list` answered.
    Listed {
        /// DONE backups: the only ones a restore can start from.
        done: usize,
        /// Backups in any other state (FAILED, STARTED, ...).
        other: usize,
        /// The newest DONE one (by id: barman's ids are start times).
        newest: Option<BackupRef>,
        /// The oldest DONE one.
        oldest: Option<BackupRef>,
    },
    /// It did not (exit ≠ 0, a timeout, unreadable credentials): never read as "no backup".
    Unavailable {
        /// Why, secrets masked.
        error: String,
    },
}

impl BaseBackupsFact {
    /// The fact of a listing (every status, as `barman-cloud-backup-list --format json` gives it).
    #[must_use]
    pub fn from_listing(list: &[Backup]) -> Self {
        let done: Vec<&Backup> = list.iter().filter(|b| b.status == "DONE").collect();
        let to_ref = |b: &&Backup| BackupRef {
            id: b.backup_id.clone(),
            end: b.end_ns().and_then(|ns| i64::try_from(ns.div_euclid(1_000_000_000)).ok()),
        };
        let newest = match barman::choose(list, &barman::Select::Latest) {
            barman::Choice::Found(b) => Some(to_ref(&b)),
            _ => None,
        };
        let oldest = done.iter().min_by(|a, b| a.backup_id.cmp(&b.backup_id)).map(to_ref);
        Self::Listed { done: done.len(), other: list.len() - done.len(), newest, oldest }
    }
}

/// The server's WAL archiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ArchiverFact {
    /// psql answered.
    Stats(ArchiverStats),
    /// It did not (the server is down, refuses the connection, a timeout, no such user).
    Unavailable {
        /// Why.
        error: String,
    },
}

/// One check's result, before it is given its service and dataset.
pub type Verdict = (CheckKind, State, Option<u64>, String);

fn limit_text(state: State, limits: Limits) -> String {
    let over = match state {
        State::Critical => limits.critical,
        State::Warning => limits.warning,
        _ => None,
    };
    over.map(|l| format!(" > {}", human_duration(l))).unwrap_or_default()
}

fn ago(now: i64, then: Option<i64>) -> String {
    then.map_or_else(|| "at an unknown time".to_string(), |t| format!("{} ago", human_duration(age(now, t))))
}

/// The checks of one cluster: `pg-base-backup-age`, `pg-wal-archiving` and, with a retention
/// policy, `pg-retention`.
#[must_use]
pub fn evaluate(pg: &PostgresFacts, t: &Thresholds, now: i64) -> Vec<Verdict> {
    let mut out =
        vec![base_backup_age(pg, t.base_backup_age, now), wal_archiving(&pg.archiver, t.wal_archive_age, now)];
    if let Some(policy) = pg.retention {
        out.push(retention(&pg.base_backups, policy, now));
    }
    out
}

fn base_backup_age(pg: &PostgresFacts, limits: Limits, now: i64) -> Verdict {
    let kind = CheckKind::PgBaseBackupAge;
    match &pg.base_backups {
        BaseBackupsFact::Unavailable { error } => {
            (kind, State::Unknown, None, format!("could not list the base backups: {error}"))
        }
        BaseBackupsFact::Listed { newest: None, other, .. } => {
            let others = if *other > 0 { format!(" ({other} not DONE: failed or unfinished)") } else { String::new() };
            let message = format!("{} holds no DONE base backup of server {}{others}", pg.destination, pg.server_name);
            (kind, State::Critical, None, message)
        }
        BaseBackupsFact::Listed { newest: Some(BackupRef { id, end: None }), .. } => (
            kind,
            State::Unknown,
            None,
            format!("base backup {id} has no end time (barman-cloud older than 3.12.1 lists no end_time_iso)"),
        ),
        BaseBackupsFact::Listed { newest: Some(BackupRef { id, end: Some(end) }), done, .. } => {
            let a = age(now, *end);
            let state = level(a, limits);
            let message = format!(
                "newest DONE base backup {id} ended {} ago{} ({done} DONE)",
                human_duration(a),
                limit_text(state, limits)
            );
            (kind, state, Some(a), message)
        }
    }
}

fn wal_archiving(archiver: &ArchiverFact, limits: Limits, now: i64) -> Verdict {
    let kind = CheckKind::PgWalArchiving;
    let s = match archiver {
        ArchiverFact::Unavailable { error } => {
            return (kind, State::Unknown, None, format!("could not query PostgreSQL: {error}"));
        }
        ArchiverFact::Stats(s) => s,
    };
    let last = match &s.last_archived_wal {
        Some(wal) => format!("last archived {wal} {}", ago(now, s.last_archived_time)),
        None => "nothing archived yet".to_string(),
    };
    if s.archive_mode == "off" {
        return (kind, State::Critical, None, "archive_mode is off: no WAL is archived".into());
    }
    if s.in_recovery && s.archive_mode != "always" {
        let message = format!("the server is in recovery and archive_mode is {}: it archives nothing", s.archive_mode);
        return (kind, State::Unknown, None, message);
    }
    if s.failing {
        let wal = s.last_failed_wal.as_deref().unwrap_or("(unknown)");
        let message = format!(
            "archive_command fails: the last attempt, for {wal}, failed {} ({} failure(s) counted); {last}",
            ago(now, s.last_failed_time),
            s.failed_count
        );
        return (kind, State::Critical, None, message);
    }
    match (s.ready_count, s.oldest_ready_time) {
        (0, _) => (kind, State::Ok, Some(0), format!("nothing waiting to be archived; {last}")),
        (n, Some(since)) => {
            let a = age(now, since);
            let state = level(a, limits);
            let oldest = s.oldest_ready_wal.as_deref().unwrap_or("?");
            let message = format!(
                "{n} WAL file(s) waiting to be archived, the oldest ({oldest}) for {}{}; {last}",
                human_duration(a),
                limit_text(state, limits)
            );
            (kind, state, Some(a), message)
        }
        (n, None) => (kind, State::Unknown, None, format!("{n} WAL file(s) waiting, since an unknown time; {last}")),
    }
}

fn retention(backups: &BaseBackupsFact, policy: RetentionPolicy, now: i64) -> Verdict {
    let kind = CheckKind::PgRetention;
    let (done, oldest) = match backups {
        BaseBackupsFact::Unavailable { error } => {
            return (kind, State::Unknown, None, format!("{policy}: could not list the base backups: {error}"));
        }
        BaseBackupsFact::Listed { done, oldest, .. } => (*done, oldest),
    };
    let window = match policy {
        RetentionPolicy::Redundancy(n) => {
            let count = u64::try_from(done).unwrap_or(u64::MAX);
            let state = if count >= u64::from(n) { State::Ok } else { State::Warning };
            return (kind, state, Some(count), format!("{done} DONE base backup(s); {policy} keeps {n}"));
        }
        RetentionPolicy::RecoveryWindow { count, unit } => u64::from(count) * unit.secs(),
    };
    match oldest {
        None => (kind, State::Warning, None, format!("{policy} not covered: no DONE base backup")),
        Some(BackupRef { id, end: None }) => {
            (kind, State::Unknown, None, format!("{policy}: base backup {id} has no end time"))
        }
        Some(BackupRef { id, end: Some(end) }) => {
            // barman's recovery window is covered once a DONE backup ended before now − window: from
            // it, every point of the window can be replayed to.
            let a = age(now, *end);
            if a >= window {
                let message =
                    format!("{policy} covered: the oldest DONE base backup {id} ended {} ago", human_duration(a));
                (kind, State::Ok, Some(a), message)
            } else {
                let message = format!(
                    "{policy}: window not yet covered: oldest backup is {} old ({id}; {} to go)",
                    human_duration(a),
                    human_duration(window - a)
                );
                (kind, State::Warning, Some(a), message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const H: i64 = 3600;
    const D: i64 = 24 * H;

    fn stats() -> ArchiverStats {
        ArchiverStats {
            archive_mode: "on".into(),
            in_recovery: false,
            archived_count: 10,
            last_archived_wal: Some("000000010000000000000009".into()),
            last_archived_time: Some(NOW - 3 * D),
            failed_count: 0,
            last_failed_wal: None,
            last_failed_time: None,
            failing: false,
            ready_count: 0,
            oldest_ready_wal: None,
            oldest_ready_time: None,
        }
    }

    fn listed(done_ends: &[i64], other: usize) -> BaseBackupsFact {
        let refs: Vec<BackupRef> = done_ends
            .iter()
            .enumerate()
            .map(|(i, e)| BackupRef { id: format!("2027010{i}T000000"), end: Some(*e) })
            .collect();
        BaseBackupsFact::Listed { done: refs.len(), other, newest: refs.last().cloned(), oldest: refs.first().cloned() }
    }

    fn facts(base_backups: BaseBackupsFact, archiver: ArchiverFact, retention: Option<&str>) -> PostgresFacts {
        PostgresFacts {
            destination: "s3://pitr/pg".into(),
            server_name: "main".into(),
            base_backups,
            archiver,
            retention: retention.map(|r| RetentionPolicy::parse(r).unwrap()),
        }
    }

    fn verdict(pg: &PostgresFacts, kind: CheckKind) -> Option<(State, Option<u64>, String)> {
        evaluate(pg, &Thresholds::default(), NOW).into_iter().find(|v| v.0 == kind).map(|(_, s, v, m)| (s, v, m))
    }

    #[test]
    fn base_backup_age_crosses_the_daily_schedules_thresholds() {
        let unavailable =
            BaseBackupsFact::Unavailable { error: "barman-cloud-backup-list failed (exit 4): ***".into() };
        let no_end = BaseBackupsFact::Listed {
            done: 1,
            other: 0,
            newest: Some(BackupRef { id: "20270101T000000".into(), end: None }),
            oldest: None,
        };
        // (what, backups, state, message part)
        let cases: Vec<(&str, BaseBackupsFact, State, &str)> = vec![
            ("an hour old", listed(&[NOW - 3 * D, NOW - H], 0), State::Ok, "ended 1h 0m ago (2 DONE)"),
            ("26 h", listed(&[NOW - 26 * H], 0), State::Ok, "1d 2h ago"),
            ("26 h 1 s", listed(&[NOW - 26 * H - 1], 0), State::Warning, "> 1d 2h"),
            ("50 h", listed(&[NOW - 50 * H], 0), State::Warning, "> 1d 2h"),
            ("50 h 1 s", listed(&[NOW - 50 * H - 1], 0), State::Critical, "> 2d 2h"),
            ("none", listed(&[], 0), State::Critical, "s3://pitr/pg holds no DONE base backup of server main"),
            ("only failed ones", listed(&[], 2), State::Critical, "(2 not DONE"),
            ("the list failed", unavailable, State::Unknown, "could not list the base backups: barman-cloud"),
            ("no end time", no_end, State::Unknown, "no end time"),
        ];
        for (what, backups, want, part) in cases {
            let pg = facts(backups, ArchiverFact::Stats(stats()), None);
            let (state, _, message) = verdict(&pg, CheckKind::PgBaseBackupAge).unwrap();
            assert_eq!(state, want, "{what}: {message}");
            assert!(message.contains(part), "{what}: {message}");
        }
    }

    #[test]
    #[allow(clippy::too_many_lines)] // one table of cases
    fn wal_archiving_fails_on_a_failure_and_ages_only_what_waits() {
        type Setup = fn(&mut ArchiverStats);
        // (what, setup, state, value, message part)
        let cases: &[(&str, Setup, State, Option<u64>, &str)] = &[
            (
                "idle for 3 days, nothing waiting",
                |_| {},
                State::Ok,
                Some(0),
                "nothing waiting to be archived; last archived 000000010000000000000009 3d 0h ago",
            ),
            (
                "never archived, nothing waiting",
                |s| {
                    s.last_archived_wal = None;
                    s.last_archived_time = None;
                },
                State::Ok,
                Some(0),
                "nothing archived yet",
            ),
            (
                "a segment ready for a minute after 3 idle days",
                |s| {
                    s.ready_count = 1;
                    s.oldest_ready_wal = Some("00000001000000000000000A".into());
                    s.oldest_ready_time = Some(NOW - 60);
                },
                State::Ok,
                Some(60),
                "1 WAL file(s) waiting to be archived, the oldest (00000001000000000000000A) for 1m",
            ),
            (
                "waiting 1 h",
                |s| {
                    s.ready_count = 3;
                    s.oldest_ready_time = Some(NOW - H);
                },
                State::Ok,
                Some(3600),
                "3 WAL file(s)",
            ),
            (
                "waiting 1 h 1 s",
                |s| {
                    s.ready_count = 3;
                    s.oldest_ready_time = Some(NOW - H - 1);
                },
                State::Warning,
                Some(3601),
                "> 1h 0m",
            ),
            (
                "waiting 6 h 1 s",
                |s| {
                    s.ready_count = 30;
                    s.oldest_ready_time = Some(NOW - 6 * H - 1);
                },
                State::Critical,
                Some(6 * 3600 + 1),
                "> 6h 0m",
            ),
            ("waiting since an unknown time", |s| s.ready_count = 1, State::Unknown, None, "unknown time"),
            (
                "the last attempt failed",
                |s| {
                    s.failing = true;
                    s.failed_count = 7;
                    s.last_failed_wal = Some("00000001000000000000000A".into());
                    s.last_failed_time = Some(NOW - 30);
                    s.ready_count = 1;
                    s.oldest_ready_time = Some(NOW - 60);
                },
                State::Critical,
                None,
                "archive_command fails: the last attempt, for 00000001000000000000000A, failed 30s ago (7 failure(s) counted)",
            ),
            (
                "failed and never archived",
                |s| {
                    s.failing = true;
                    s.failed_count = 1;
                    s.last_archived_wal = None;
                    s.last_archived_time = None;
                    s.last_failed_wal = Some("000000010000000000000001".into());
                    s.last_failed_time = Some(NOW - 5);
                },
                State::Critical,
                None,
                "for 000000010000000000000001, failed 5s ago (1 failure(s) counted); nothing archived yet",
            ),
            (
                "failed once, archived since",
                |s| {
                    s.failed_count = 1;
                    s.last_failed_wal = Some("000000010000000000000008".into());
                    s.last_failed_time = Some(NOW - 4 * D);
                },
                State::Ok,
                Some(0),
                "nothing waiting",
            ),
            ("archive_mode off", |s| s.archive_mode = "off".into(), State::Critical, None, "archive_mode is off"),
            ("a standby", |s| s.in_recovery = true, State::Unknown, None, "in recovery and archive_mode is on"),
            (
                "a standby that archives",
                |s| {
                    s.in_recovery = true;
                    s.archive_mode = "always".into();
                },
                State::Ok,
                Some(0),
                "nothing waiting",
            ),
        ];
        for (what, setup, want, value, part) in cases {
            let mut s = stats();
            setup(&mut s);
            let pg = facts(listed(&[NOW - H], 0), ArchiverFact::Stats(s), None);
            let (state, got_value, message) = verdict(&pg, CheckKind::PgWalArchiving).unwrap();
            assert_eq!((state, got_value), (*want, *value), "{what}: {message}");
            assert!(message.contains(part), "{what}: {message}");
        }
        let down = facts(listed(&[], 0), ArchiverFact::Unavailable { error: "connection refused".into() }, None);
        let (state, _, message) = verdict(&down, CheckKind::PgWalArchiving).unwrap();
        assert_eq!((state, message.as_str()), (State::Unknown, "could not query PostgreSQL: connection refused"));
    }

    #[test]
    fn retention_is_covered_by_an_old_enough_backup_or_enough_backups() {
        let unavailable = || BaseBackupsFact::Unavailable { error: "timed out".into() };
        // (what, policy, backups, state, message part)
        let cases: Vec<(&str, &str, BaseBackupsFact, State, &str)> = vec![
            (
                "window covered",
                "RECOVERY WINDOW OF 7 DAYS",
                listed(&[NOW - 8 * D, NOW - H], 0),
                State::Ok,
                "covered: the oldest DONE base backup 20270100T000000 ended 8d 0h ago",
            ),
            ("exactly the window", "RECOVERY WINDOW OF 7 DAYS", listed(&[NOW - 7 * D], 0), State::Ok, "covered"),
            (
                "a second short",
                "RECOVERY WINDOW OF 7 DAYS",
                listed(&[NOW - 7 * D + 1, NOW - H], 0),
                State::Warning,
                "window not yet covered: oldest backup is 6d 23h old",
            ),
            (
                "a month is 31 days",
                "RECOVERY WINDOW OF 1 MONTHS",
                listed(&[NOW - 30 * D], 0),
                State::Warning,
                "not yet covered",
            ),
            ("31 days", "RECOVERY WINDOW OF 1 MONTHS", listed(&[NOW - 31 * D], 0), State::Ok, "covered"),
            ("weeks", "RECOVERY WINDOW OF 2 WEEKS", listed(&[NOW - 13 * D], 0), State::Warning, "1d 0h to go"),
            (
                "no backup, window",
                "RECOVERY WINDOW OF 1 DAYS",
                listed(&[], 1),
                State::Warning,
                "not covered: no DONE base backup",
            ),
            (
                "redundancy met",
                "REDUNDANCY 2",
                listed(&[NOW - D, NOW - H], 3),
                State::Ok,
                "2 DONE base backup(s); REDUNDANCY 2 keeps 2",
            ),
            ("redundancy short", "REDUNDANCY 3", listed(&[NOW - D, NOW - H], 3), State::Warning, "2 DONE"),
            ("no backup, redundancy", "REDUNDANCY 1", listed(&[], 0), State::Warning, "0 DONE"),
            ("the list failed", "REDUNDANCY 1", unavailable(), State::Unknown, "could not list"),
            ("the list failed, window", "RECOVERY WINDOW OF 1 DAYS", unavailable(), State::Unknown, "timed out"),
        ];
        for (what, policy, backups, want, part) in cases {
            let pg = facts(backups, ArchiverFact::Stats(stats()), Some(policy));
            let (state, _, message) = verdict(&pg, CheckKind::PgRetention).unwrap();
            assert_eq!(state, want, "{what}: {message}");
            assert!(message.contains(part), "{what}: {message}");
        }
        let none = facts(listed(&[NOW - H], 0), ArchiverFact::Stats(stats()), None);
        assert_eq!(verdict(&none, CheckKind::PgRetention), None, "no policy, no check");
    }

    #[test]
    fn a_listing_gives_counts_and_the_newest_and_oldest_done_backups() {
        let text = r#"{"backups_list": [
            {"backup_id": "20270102T000000", "status": "DONE", "end_time_iso": "2027-01-02T00:10:00.5+00:00", "begin_wal": "000000010000000000000004"},
            {"backup_id": "20270103T000000", "status": "FAILED"},
            {"backup_id": "20270101T000000", "status": "DONE", "end_time_iso": "2027-01-01T00:10:00+00:00", "begin_wal": "000000010000000000000002"},
            {"backup_id": "20270104T000000", "status": "STARTED"}
        ]}"#;
        let list = barman::parse_backup_list(text).unwrap();
        let fact = BaseBackupsFact::from_listing(&list);
        let end = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_second();
        assert_eq!(
            fact,
            BaseBackupsFact::Listed {
                done: 2,
                other: 2,
                newest: Some(BackupRef { id: "20270102T000000".into(), end: Some(end("2027-01-02T00:10:00Z")) }),
                oldest: Some(BackupRef { id: "20270101T000000".into(), end: Some(end("2027-01-01T00:10:00Z")) }),
            }
        );
        assert_eq!(
            BaseBackupsFact::from_listing(&[]),
            BaseBackupsFact::Listed { done: 0, other: 0, newest: None, oldest: None }
        );
        let json = serde_json::to_value(&fact).unwrap();
        assert_eq!(json["kind"], "listed");
        assert_eq!(json["newest"]["id"], "20270102T000000");
    }
}
