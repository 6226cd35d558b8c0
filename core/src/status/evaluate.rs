//! PURE: facts + thresholds + `now` → checks. No I/O, no clock: `now` is handed in, so every threshold
//! crossing is table-tested here.

use crate::config::{Limits, Thresholds};
use crate::zfs::SnapshotInfo;

use super::{BackupFact, Check, CheckKind, DatasetFacts, PreseedFact, ReplicationFact, State};

/// The level a value reaches: above `critical` → CRITICAL, above `warning` → WARNING, else OK.
#[must_use]
pub fn level(value: u64, limits: Limits) -> State {
    if limits.critical.is_some_and(|c| value > c) {
        State::Critical
    } else if limits.warning.is_some_and(|w| value > w) {
        State::Warning
    } else {
        State::Ok
    }
}

/// `used / (used + available)` in whole percent, rounded down (0 for an empty, full-size dataset).
#[must_use]
pub fn capacity_percent(used: u64, available: u64) -> u64 {
    let total = u128::from(used) + u128::from(available);
    if total == 0 {
        return 0;
    }
    u64::try_from(u128::from(used) * 100 / total).unwrap_or(100)
}

/// The newest snapshot of `source` that `target` also holds (same GUID: `zfs receive` keeps it).
#[must_use]
pub fn newest_common<'a>(source: &'a [SnapshotInfo], target: &[SnapshotInfo]) -> Option<&'a SnapshotInfo> {
    source.iter().filter(|s| target.iter().any(|t| t.guid == s.guid)).max_by_key(|s| s.creation)
}

/// Seconds from `then` to `now`, never negative (a clock that went back reads as age 0).
#[must_use]
pub fn age(now: i64, then: i64) -> u64 {
    u64::try_from(now.saturating_sub(then)).unwrap_or(0)
}

/// `1d 2h`, `3h 5m`, `45m`, `30s`.
#[must_use]
pub fn human_duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn limit_text(state: State, limits: Limits, unit: &dyn Fn(u64) -> String) -> String {
    match state {
        State::Critical => limits.critical.map(|c| format!(" > {}", unit(c))).unwrap_or_default(),
        State::Warning => limits.warning.map(|w| format!(" > {}", unit(w))).unwrap_or_default(),
        _ => String::new(),
    }
}

/// Every check of every dataset, worst first (then by service and check name).
#[must_use]
pub fn evaluate(datasets: &[DatasetFacts], thresholds: &Thresholds, now: i64) -> Vec<Check> {
    let mut checks: Vec<Check> = datasets.iter().flat_map(|d| evaluate_dataset(d, thresholds, now)).collect();
    checks.sort_by(|a, b| {
        b.state.severity().cmp(&a.state.severity()).then_with(|| a.service.cmp(&b.service)).then(a.check.cmp(&b.check))
    });
    checks
}

/// The overall state: CRITICAL if any check is, then WARNING, then UNKNOWN, else OK.
#[must_use]
pub fn overall(checks: &[Check]) -> State {
    checks.iter().map(|c| c.state).max_by_key(|s| s.severity()).unwrap_or(State::Ok)
}

#[allow(clippy::too_many_lines)] // one arm per check, read top to bottom
fn evaluate_dataset(d: &DatasetFacts, t: &Thresholds, now: i64) -> Vec<Check> {
    let mut out = Vec::new();
    let mut push = |check: CheckKind, state: State, value: Option<u64>, message: String| {
        out.push(Check { service: d.service.clone(), dataset: d.dataset.clone(), check, state, value, message });
    };
    let duration = |s: u64| human_duration(s);
    let percent = |p: u64| format!("{p}%");

    // Drift first: it also says whether the dataset exists at all.
    let drift = &d.drift;
    if !drift.problems.is_empty() {
        push(CheckKind::Drift, State::Critical, None, drift.problems.join("; "));
    } else if let Some(why) = &drift.skipped {
        push(CheckKind::Drift, State::Critical, None, format!("not checked: {why}"));
    } else if !drift.pending.is_empty() || !drift.findings.is_empty() {
        let mut parts: Vec<String> = drift.pending.clone();
        parts.extend(drift.findings.iter().cloned());
        push(CheckKind::Drift, State::Warning, None, format!("{}: {}", drift.status, parts.join("; ")));
    } else {
        push(CheckKind::Drift, State::Ok, None, "in sync with the config".into());
    }

    match &d.space {
        Some(space) => {
            let pct = capacity_percent(space.used, space.available);
            let state = level(pct, t.capacity_percent);
            let quota = if space.quota > 0 { format!(", quota {}", human_bytes(space.quota)) } else { String::new() };
            push(
                CheckKind::Capacity,
                state,
                Some(pct),
                format!(
                    "{pct}% used{} ({} used, {} available{quota})",
                    limit_text(state, t.capacity_percent, &percent),
                    human_bytes(space.used),
                    human_bytes(space.available)
                ),
            );
        }
        None if drift.skipped.is_none() => {
            push(CheckKind::Capacity, State::Unknown, None, "the dataset does not exist".into());
        }
        None => {}
    }

    let snaps = &d.snapshots;
    match &snaps.newest {
        Some(newest) => {
            let a = age(now, newest.creation);
            let state = level(a, t.snapshot_age);
            push(
                CheckKind::SnapshotAge,
                state,
                Some(a),
                format!(
                    "newest of {} snapshot(s) is @{}, {} old{}",
                    snaps.count,
                    newest.name,
                    human_duration(a),
                    limit_text(state, t.snapshot_age, &duration)
                ),
            );
        }
        None if snaps.expected && d.space.is_some() => {
            let state = if t.snapshot_age.warning.is_some() || t.snapshot_age.critical.is_some() {
                level(u64::MAX, t.snapshot_age)
            } else {
                State::Ok
            };
            push(CheckKind::SnapshotAge, state, None, "no snapshots, but com.sun:auto-snapshot is true".into());
        }
        None => {}
    }

    match &d.replication {
        ReplicationFact::NotConfigured => {}
        ReplicationFact::Common { target, snapshot, creation } => {
            let lag = age(now, *creation);
            let state = level(lag, t.replication_lag);
            push(
                CheckKind::ReplicationLag,
                state,
                Some(lag),
                format!(
                    "{} behind: newest snapshot shared with {target} is @{snapshot}{}",
                    human_duration(lag),
                    limit_text(state, t.replication_lag, &duration)
                ),
            );
        }
        ReplicationFact::NoCommonSnapshot { target } => push(
            CheckKind::ReplicationLag,
            State::Critical,
            None,
            format!("{target} shares no snapshot with {}: the next sync needs a full send", d.dataset),
        ),
        ReplicationFact::TargetMissing { target } => push(
            CheckKind::ReplicationLag,
            State::Critical,
            None,
            format!("the replica {target} does not exist (never replicated?)"),
        ),
        ReplicationFact::Unavailable { target, error } => {
            push(CheckKind::ReplicationLag, State::Unknown, None, format!("{target}: {error}"));
        }
    }

    match &d.backup {
        BackupFact::NotConfigured => {}
        BackupFact::Newest { id, time } => {
            let a = age(now, *time);
            let state = level(a, t.backup_age);
            push(
                CheckKind::BackupAge,
                state,
                Some(a),
                format!(
                    "newest restic snapshot {id} is {} old{}",
                    human_duration(a),
                    limit_text(state, t.backup_age, &duration)
                ),
            );
        }
        BackupFact::NoSnapshots => {
            push(
                CheckKind::BackupAge,
                State::Critical,
                None,
                "the repository holds no snapshot for this service".into(),
            );
        }
        BackupFact::Unavailable { error } => {
            push(CheckKind::BackupAge, State::Unknown, None, format!("could not list restic snapshots: {error}"));
        }
    }

    match &d.preseed {
        PreseedFact::NoRecord => {}
        PreseedFact::Last { event, at, detail } => {
            let state = if event == "failed" { State::Critical } else { State::Ok };
            let when = at.map(|t| format!(" {} ago", human_duration(age(now, t)))).unwrap_or_default();
            push(CheckKind::Preseed, state, None, format!("last preseed{when}: {event}: {detail}"));
        }
        PreseedFact::Unreadable { error } => push(CheckKind::Preseed, State::Unknown, None, error.clone()),
    }

    if let Some(pg) = &d.postgresql {
        for (check, state, value, message) in super::postgres::evaluate(pg, t, now) {
            push(check, state, value, message);
        }
    }
    out
}

/// `1.5G`, `512M`, `4.0K`, `100B` (binary units, as `zfs list` prints them).
#[must_use]
#[allow(clippy::cast_precision_loss)] // display only
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 { format!("{value:.1}{}", UNITS[unit]) } else { format!("{value:.0}{}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{DriftFact, SnapshotFacts, SnapshotRef, Space};

    const NOW: i64 = 1_800_000_000;
    const H: i64 = 3600;

    fn facts() -> DatasetFacts {
        DatasetFacts {
            service: "sonarr".into(),
            dataset: "tank/persist/sonarr".into(),
            space: Some(Space { used: 10, available: 90, quota: 0 }),
            snapshots: SnapshotFacts { count: 0, newest: None, expected: false },
            replication: ReplicationFact::NotConfigured,
            backup: BackupFact::NotConfigured,
            preseed: PreseedFact::NoRecord,
            drift: DriftFact { status: "in-sync".into(), ..DriftFact::default() },
            postgresql: None,
        }
    }

    fn state_of(d: &DatasetFacts, kind: CheckKind) -> Option<State> {
        evaluate(std::slice::from_ref(d), &Thresholds::default(), NOW).iter().find(|c| c.check == kind).map(|c| c.state)
    }

    fn snap(name: &str, creation: i64, guid: &str) -> SnapshotInfo {
        SnapshotInfo { dataset: "x".into(), name: name.into(), creation, used: 0, guid: guid.into() }
    }

    #[test]
    fn levels_are_strictly_above_the_limit() {
        let l = Limits { warning: Some(10), critical: Some(20) };
        let cases =
            [(0, State::Ok), (10, State::Ok), (11, State::Warning), (20, State::Warning), (21, State::Critical)];
        for (value, want) in cases {
            assert_eq!(level(value, l), want, "{value}");
        }
        assert_eq!(level(u64::MAX, Limits { warning: None, critical: None }), State::Ok);
        assert_eq!(level(5, Limits { warning: None, critical: Some(4) }), State::Critical);
    }

    #[test]
    fn every_seed_threshold_is_crossed_where_the_seed_says() {
        // (what, setup, check, state)
        type Setup = fn(&mut DatasetFacts);
        let cases: &[(&str, Setup, CheckKind, State)] = &[
            (
                "capacity 80%",
                |d| d.space = Some(Space { used: 80, available: 20, quota: 0 }),
                CheckKind::Capacity,
                State::Ok,
            ),
            (
                "capacity 81%",
                |d| d.space = Some(Space { used: 81, available: 19, quota: 0 }),
                CheckKind::Capacity,
                State::Warning,
            ),
            (
                "capacity 90%",
                |d| d.space = Some(Space { used: 90, available: 10, quota: 0 }),
                CheckKind::Capacity,
                State::Warning,
            ),
            (
                "capacity 91%",
                |d| d.space = Some(Space { used: 91, available: 9, quota: 100 }),
                CheckKind::Capacity,
                State::Critical,
            ),
            ("lag 12h", |d| d.replication = common(12 * H), CheckKind::ReplicationLag, State::Ok),
            ("lag 12h+1s", |d| d.replication = common(12 * H + 1), CheckKind::ReplicationLag, State::Warning),
            ("lag 24h+1s", |d| d.replication = common(24 * H + 1), CheckKind::ReplicationLag, State::Critical),
            ("backup 24h", |d| d.backup = backup(24 * H), CheckKind::BackupAge, State::Ok),
            ("backup 25h", |d| d.backup = backup(25 * H), CheckKind::BackupAge, State::Warning),
            ("backup 49h", |d| d.backup = backup(49 * H), CheckKind::BackupAge, State::Critical),
            ("no backup", |d| d.backup = BackupFact::NoSnapshots, CheckKind::BackupAge, State::Critical),
            (
                "repo down",
                |d| d.backup = BackupFact::Unavailable { error: "x".into() },
                CheckKind::BackupAge,
                State::Unknown,
            ),
            ("snapshot 48h", |d| d.snapshots = newest(48 * H), CheckKind::SnapshotAge, State::Ok),
            ("snapshot 49h", |d| d.snapshots = newest(49 * H), CheckKind::SnapshotAge, State::Warning),
            ("snapshot 1y", |d| d.snapshots = newest(365 * 24 * H), CheckKind::SnapshotAge, State::Warning),
            ("preseed failed", |d| d.preseed = preseed("failed"), CheckKind::Preseed, State::Critical),
            ("preseed restored", |d| d.preseed = preseed("restored"), CheckKind::Preseed, State::Ok),
            (
                "no common",
                |d| d.replication = ReplicationFact::NoCommonSnapshot { target: "b/x".into() },
                CheckKind::ReplicationLag,
                State::Critical,
            ),
            (
                "no replica",
                |d| d.replication = ReplicationFact::TargetMissing { target: "b/x".into() },
                CheckKind::ReplicationLag,
                State::Critical,
            ),
            (
                "pending",
                |d| {
                    d.drift =
                        DriftFact { status: "update".into(), pending: vec!["set a=b".into()], ..DriftFact::default() }
                },
                CheckKind::Drift,
                State::Warning,
            ),
            (
                "problem",
                |d| {
                    d.drift = DriftFact {
                        status: "blocked".into(),
                        problems: vec!["would hide files".into()],
                        ..DriftFact::default()
                    }
                },
                CheckKind::Drift,
                State::Critical,
            ),
            (
                "auto-snapshot, none",
                |d| d.snapshots = SnapshotFacts { count: 0, newest: None, expected: true },
                CheckKind::SnapshotAge,
                State::Warning,
            ),
        ];
        for (what, setup, check, want) in cases {
            let mut d = facts();
            setup(&mut d);
            assert_eq!(state_of(&d, *check), Some(*want), "{what}");
        }
    }

    fn common(lag: i64) -> ReplicationFact {
        ReplicationFact::Common { target: "backup/sonarr".into(), snapshot: "s".into(), creation: NOW - lag }
    }
    fn backup(a: i64) -> BackupFact {
        BackupFact::Newest { id: "abcd1234".into(), time: NOW - a }
    }
    fn newest(a: i64) -> SnapshotFacts {
        SnapshotFacts { count: 3, newest: Some(SnapshotRef { name: "s".into(), creation: NOW - a }), expected: true }
    }
    fn preseed(event: &str) -> PreseedFact {
        PreseedFact::Last { event: event.into(), at: Some(NOW - H), detail: "d".into() }
    }

    #[test]
    fn unconfigured_checks_are_left_out() {
        let kinds: Vec<CheckKind> = evaluate(&[facts()], &Thresholds::default(), NOW).iter().map(|c| c.check).collect();
        assert_eq!(kinds, [CheckKind::Drift, CheckKind::Capacity]);
    }

    #[test]
    fn checks_come_worst_first_and_the_overall_state_is_the_worst() {
        let mut a = facts();
        a.service = "a".into();
        a.backup = backup(25 * H);
        let mut b = facts();
        b.service = "b".into();
        b.replication = common(30 * H);
        let mut c = facts();
        c.service = "c".into();
        c.backup = BackupFact::Unavailable { error: "down".into() };
        let checks = evaluate(&[a, b, c], &Thresholds::default(), NOW);
        let states: Vec<(State, &str)> = checks.iter().map(|c| (c.state, c.service.as_str())).take(3).collect();
        assert_eq!(states, [(State::Critical, "b"), (State::Warning, "a"), (State::Unknown, "c")]);
        assert_eq!(overall(&checks), State::Critical);
        assert_eq!(overall(&checks[1..]), State::Warning);
        assert_eq!(overall(&checks[2..]), State::Unknown);
        assert_eq!(overall(&checks[3..]), State::Ok);
        assert_eq!(overall(&[]), State::Ok);
    }

    #[test]
    fn thresholds_are_configurable_and_can_be_switched_off() {
        let mut d = facts();
        d.replication = common(2 * H);
        let t = Thresholds {
            replication_lag: Limits { warning: Some(H as u64), critical: None },
            capacity_percent: Limits { warning: None, critical: None },
            ..Thresholds::default()
        };
        d.space = Some(Space { used: 99, available: 1, quota: 0 });
        let checks = evaluate(&[d], &t, NOW);
        let get = |k| checks.iter().find(|c| c.check == k).unwrap();
        assert_eq!(get(CheckKind::ReplicationLag).state, State::Warning);
        assert!(
            get(CheckKind::ReplicationLag).message.contains("> 1h 0m"),
            "{}",
            get(CheckKind::ReplicationLag).message
        );
        assert_eq!(get(CheckKind::Capacity).state, State::Ok);
        assert_eq!(get(CheckKind::Capacity).value, Some(99));
    }

    #[test]
    fn the_newest_common_snapshot_is_matched_by_guid() {
        let source = [snap("a", 1, "g1"), snap("b", 2, "g2"), snap("c", 3, "g3")];
        let target = [snap("a", 1, "g1"), snap("b", 2, "g2")];
        assert_eq!(newest_common(&source, &target).map(|s| s.name.as_str()), Some("b"));
        // Same name, different GUID (a snapshot re-taken after a restore): not common.
        let renamed = [snap("c", 3, "other")];
        assert_eq!(newest_common(&source, &renamed), None);
        assert_eq!(newest_common(&[], &target), None);
    }

    #[test]
    fn ages_and_sizes_read_well() {
        assert_eq!(age(100, 40), 60);
        assert_eq!(age(100, 200), 0, "a snapshot from the future is age 0");
        assert_eq!(human_duration(30), "30s");
        assert_eq!(human_duration(45 * 60), "45m");
        assert_eq!(human_duration(3 * 3600 + 5 * 60), "3h 5m");
        assert_eq!(human_duration(26 * 3600), "1d 2h");
        assert_eq!(capacity_percent(0, 0), 0);
        assert_eq!(capacity_percent(1, 2), 33);
        assert_eq!(capacity_percent(u64::MAX, u64::MAX), 50);
        assert_eq!(human_bytes(100), "100B");
        assert_eq!(human_bytes(1536), "1.5K");
        assert_eq!(human_bytes(300 << 20), "300M");
    }
}
