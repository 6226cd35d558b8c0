//! PURE: what `preseed` does, decided from gathered facts. No I/O, no clock, no environment.

use std::path::Path;

use serde::Serialize;

use crate::config::SourceKind;
use crate::restic::{self, ResticError, ResticSnapshot};
use crate::target::Marks;

pub use crate::names::*;
pub use crate::target::is_data;

/// The service's dataset as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetFacts {
    /// No such dataset.
    Missing,
    /// It exists but is not mounted: its contents cannot be judged.
    NotMounted,
    /// Mounted; its top-level entries.
    Mounted {
        /// Every top-level name (staging directories included).
        entries: Vec<String>,
        /// Staging directories whose restore was verified and whose swap had begun.
        complete_staging: Vec<String>,
    },
}

impl DatasetFacts {
    /// Whether it holds data: `None` when that cannot be seen (missing, not mounted).
    #[must_use]
    pub fn holds_data(&self, ignore: &[String]) -> Option<bool> {
        match self {
            Self::Mounted { entries, .. } => Some(entries.iter().any(|e| is_data(e, ignore))),
            Self::Missing | Self::NotMounted => None,
        }
    }
}

/// Whether an unmounted target is mounted before it is judged, and where: a run killed inside `zfs
/// create` (which creates, then mounts) leaves the dataset unmounted at its `canmount=on` path
/// mountpoint (`would_mount_at`). A dataset carrying a replica swap's mark is resumed instead, never
/// mounted here. `None`: it stays as found, and [`start`] refuses it. The shell mounts only where that
/// hides nothing.
#[must_use]
pub fn remount_at<'a>(mark: &TargetMark, would_mount_at: Option<&'a Path>) -> Option<&'a Path> {
    would_mount_at.filter(|_| *mark == TargetMark::Plain)
}

/// What to do first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Start {
    /// Real data is there: touch nothing.
    Skip {
        /// Why.
        reason: String,
        /// Leftovers of our own restore staging (a kill after the swap, before the clean-up): removed.
        stale_staging: Vec<String>,
    },
    /// A previous run was killed while swapping a verified restore in: finish it.
    FinishSwap {
        /// The staging directory's name.
        staging: String,
    },
    /// Restore (creating the dataset first when `create`), after removing stale staging of our own.
    Restore {
        /// The dataset does not exist yet.
        create: bool,
        /// Staging directories left by a killed run before its restore was verified.
        stale_staging: Vec<String>,
        /// Why.
        reason: String,
    },
    /// Cannot decide safely.
    Refuse {
        /// Why.
        reason: String,
    },
}

/// What `preseed.dataMarkers` found in a mounted dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Markers {
    /// None configured: any entry not ignored counts as data.
    NotConfigured,
    /// This configured marker exists.
    Present(String),
    /// Markers are configured and none exists.
    Absent,
}

/// Decides whether the dataset needs a restore. `ignore`: entries that do not count as data;
/// `markers`: what the configured data markers showed.
#[must_use]
pub fn start_with_markers(facts: &DatasetFacts, ignore: &[String], markers: &Markers) -> Start {
    let decided = start(facts, ignore);
    match (decided, markers) {
        (Start::Skip { reason, stale_staging }, Markers::Present(marker)) => {
            Start::Skip { reason: format!("{reason}; data marker {marker} exists"), stale_staging }
        }
        (Start::Skip { reason, .. }, Markers::Absent) => Start::Refuse {
            reason: format!(
                "{reason}, but none of preseed.dataMarkers exists: the data may be missing while something \
                 pre-created entries (a tmpfiles rule, StateDirectory). Not restoring over them and not \
                 starting the service: move those entries away (then preseed restores), or fix dataMarkers"
            ),
        },
        (other, _) => other,
    }
}

/// Decides whether the dataset needs a restore. `ignore`: entries that do not count as data.
#[must_use]
pub fn start(facts: &DatasetFacts, ignore: &[String]) -> Start {
    match facts {
        DatasetFacts::Missing => {
            Start::Restore { create: true, stale_staging: Vec::new(), reason: "the dataset does not exist".into() }
        }
        DatasetFacts::NotMounted => Start::Refuse {
            reason: "the dataset exists but is not mounted, so its contents cannot be checked; mount it (zfs mount) \
                     or fix its mountpoint, then rerun"
                .into(),
        },
        DatasetFacts::Mounted { entries, complete_staging } => {
            if let Some(staging) = complete_staging.first() {
                return Start::FinishSwap { staging: staging.clone() };
            }
            let stale: Vec<String> = entries.iter().filter(|e| e.starts_with(STAGING_PREFIX)).cloned().collect();
            let data: Vec<&String> = entries.iter().filter(|e| is_data(e, ignore)).collect();
            if data.is_empty() {
                let reason = if entries.is_empty() {
                    "the dataset is empty".to_string()
                } else {
                    "the dataset holds only ignored entries".to_string()
                };
                Start::Restore { create: false, stale_staging: stale, reason }
            } else {
                let shown: Vec<&str> = data.iter().take(3).map(|s| s.as_str()).collect();
                let more = if data.len() > 3 { format!(" and {} more", data.len() - 3) } else { String::new() };
                Start::Skip { reason: format!("data present ({}{more})", shown.join(", ")), stale_staging: stale }
            }
        }
    }
}

/// What probing one source found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe<T> {
    /// Restore from this.
    Use {
        /// The snapshot.
        what: T,
        /// Why this one.
        why: String,
    },
    /// The source answered: it holds no backup. The next source is tried.
    NoBackup(String),
    /// The source could not answer, or answered something unusable. Never "empty".
    Failed(String),
}

/// The dataset's own snapshots: restore only by rolling back to the NEWEST one, and only when it holds
/// data. An older snapshot with data cannot be rolled back to without destroying the later ones
/// (`rollback -r`), which persistctl never does: that counts as a failed source, never as "no backup".
///
/// `newest`: the newest snapshot's name and whether it holds data (or why that could not be seen);
/// `older_with_data`: the newest older snapshot that holds data, looked for only when the newest is empty.
#[must_use]
pub fn choose_snapshot(newest: Option<(&str, &Result<bool, String>)>, older_with_data: Option<&str>) -> Probe<String> {
    match newest {
        None => Probe::NoBackup("the dataset has no snapshots".into()),
        Some((name, Err(why))) => Probe::Failed(format!("cannot look into snapshot {name}: {why}")),
        Some((name, Ok(true))) => {
            Probe::Use { what: name.to_string(), why: format!("newest snapshot {name} holds data") }
        }
        Some((name, Ok(false))) => match older_with_data {
            Some(older) => Probe::Failed(format!(
                "the newest snapshot {name} is empty and the older {older} holds data; rolling back to it would \
                 destroy the later snapshots, which persistctl never does (restore it by hand: \
                 docs/restore-procedures.md)"
            )),
            None => Probe::NoBackup(format!("no snapshot holds data (newest: {name})")),
        },
    }
}

/// [`choose_snapshot`] over the dataset's snapshots (oldest first, as `zfs list -s createtxg` lists
/// them), looking into them through `holds_data` only as far as the decision needs: the newest, and
/// only when it is empty the older ones, newest first, up to the first that holds data. An older
/// snapshot that cannot be looked into counts as empty: it cannot make the source usable either way.
pub fn choose_snapshot_among(
    snapshots: &[String],
    mut holds_data: impl FnMut(&str) -> Result<bool, String>,
) -> Probe<String> {
    let Some((newest, older)) = snapshots.split_last() else { return choose_snapshot(None, None) };
    let looked = holds_data(newest);
    let older_with_data = match looked {
        Ok(false) => older.iter().rev().find(|name| holds_data(name) == Ok(true)).map(String::as_str),
        Ok(true) | Err(_) => None,
    };
    choose_snapshot(Some((newest, &looked)), older_with_data)
}

/// The restic listing: newest matching snapshot; an error is a failed source, an empty list "no backup".
#[must_use]
pub fn choose_restic(listing: &Result<Vec<ResticSnapshot>, ResticError>) -> Probe<ResticSnapshot> {
    match listing {
        Err(e) => Probe::Failed(e.to_string()),
        Ok(list) => match restic::newest(list) {
            None => Probe::NoBackup("no restic snapshot matches".into()),
            Some(snap) => Probe::Use {
                what: snap.clone(),
                why: format!(
                    "newest of {} matching restic snapshot(s): {} at {}",
                    list.len(),
                    snap.short_id(),
                    snap.time
                ),
            },
        },
    }
}

/// The replica snapshot a dataset renamed into place was received from, when settling it.
///
/// Settling records provenance and only then clears `persistctl:staging-snapshot`, then
/// `persistctl:staging` (one `zfs inherit` each): a run killed between the two leaves the dataset marked
/// but without the staging snapshot, and the provenance already written names it.
#[must_use]
pub fn settled_snapshot(
    staging_snapshot: Option<&str>,
    restored_from: Option<&str>,
    restored_snapshot: Option<&str>,
) -> Option<String> {
    match (staging_snapshot, restored_from, restored_snapshot) {
        (Some(snapshot), _, _) | (None, Some("replica"), Some(snapshot)) => Some(snapshot.to_string()),
        _ => None,
    }
}

/// The replica's snapshot listing: `None` when the replica dataset does not exist. A missing replica
/// dataset or an unreachable host is a failed source (it may hold the only copy), never "no backup";
/// only an existing replica with no snapshot is "no backup".
#[must_use]
pub fn choose_replica(replica: &str, listing: &Result<Option<Vec<String>>, String>) -> Probe<String> {
    match listing {
        Err(why) => Probe::Failed(format!("cannot list the snapshots of replica {replica}: {why}")),
        Ok(None) => Probe::Failed(format!(
            "the replica dataset {replica} does not exist (wrong name, or the replica pool is not imported)"
        )),
        Ok(Some(list)) => match list.last() {
            None => Probe::NoBackup(format!("the replica {replica} has no snapshots")),
            Some(newest) => Probe::Use {
                what: newest.clone(),
                why: format!("newest of {} snapshot(s) of replica {replica}: {newest}", list.len()),
            },
        },
    }
}

/// A staging dataset as found, by its user properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StagingFacts {
    /// No staging dataset.
    Missing,
    /// A dataset with the staging name that persistctl did not mark: never touched.
    NotOurs,
    /// Received completely (ZFS discards partial receives), not yet verified.
    Received {
        /// The replica snapshot it holds.
        snapshot: String,
    },
    /// Received and verified: ready to be swapped in.
    Verified {
        /// The replica snapshot it holds.
        snapshot: String,
    },
}

impl StagingFacts {
    /// The staging dataset by its marks (`None`: it does not exist). Only a staging mark with the
    /// snapshot it holds makes it persistctl's.
    #[must_use]
    pub fn of(marks: Option<&Marks>) -> Self {
        let Some(marks) = marks else { return Self::Missing };
        match (marks.staging.as_deref(), &marks.staging_snapshot) {
            (Some("verified"), Some(snapshot)) => Self::Verified { snapshot: snapshot.clone() },
            (Some("received"), Some(snapshot)) => Self::Received { snapshot: snapshot.clone() },
            _ => Self::NotOurs,
        }
    }
}

/// What the replica source does with the staging place before it can verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StagingPlan {
    /// `zfs send | zfs receive` into a new staging dataset.
    Receive,
    /// A killed run already received this snapshot: verify it (again) and use it.
    Reuse,
    /// Something is in the way: the source fails (persistctl never destroys a dataset).
    Blocked(String),
}

/// Decides what to do with the staging dataset `name` before restoring replica snapshot `newest`.
#[must_use]
pub fn plan_staging(name: &str, facts: &StagingFacts, newest: &str) -> StagingPlan {
    match facts {
        StagingFacts::Missing => StagingPlan::Receive,
        StagingFacts::NotOurs => StagingPlan::Blocked(format!(
            "{name} exists but is not a persistctl staging dataset ({PROP_STAGING} is not set); not touching it"
        )),
        StagingFacts::Received { snapshot } | StagingFacts::Verified { snapshot } if snapshot == newest => {
            StagingPlan::Reuse
        }
        StagingFacts::Received { snapshot } | StagingFacts::Verified { snapshot } => StagingPlan::Blocked(format!(
            "the staging dataset {name} left by an earlier run holds {snapshot}, but the replica's newest snapshot is \
             now {newest}; persistctl never destroys a dataset: check it, remove it (zfs destroy -r '{name}'), rerun"
        )),
    }
}

/// Whether the received replica snapshot can be used. `has_data`: whether its root holds any data entry;
/// `snapshots`: how many snapshots the replica has. An empty newest snapshot with older ones behind it may
/// hide older data: a failed source (restore by hand), never "no backup".
#[must_use]
pub fn replica_content(snapshot: &str, has_data: &Result<bool, String>, snapshots: usize) -> Probe<()> {
    match has_data {
        Err(why) => Probe::Failed(format!("cannot look into the received {snapshot}: {why}")),
        Ok(true) => Probe::Use { what: (), why: format!("{snapshot} holds data") },
        Ok(false) if snapshots <= 1 => Probe::NoBackup(format!("the replica's only snapshot {snapshot} is empty")),
        Ok(false) => Probe::Failed(format!(
            "the replica's newest snapshot {snapshot} is empty and older ones may hold data; restore one by hand \
             (docs/restore-procedures.md)"
        )),
    }
}

/// What the target carries from an interrupted replica swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetMark {
    /// Nothing: an ordinary dataset (or none).
    Plain,
    /// It is a staging dataset already renamed into place (`persistctl:staging` set).
    Staged,
    /// It is the empty target, marked to be moved aside to this name.
    Aside(String),
}

impl TargetMark {
    /// The target's replica-swap mark, by its marks: a staging mark wins (the staging dataset is
    /// already renamed into place), then an aside mark.
    #[must_use]
    pub fn of(marks: &Marks) -> Self {
        match (&marks.staging, &marks.empty_aside) {
            (Some(_), _) => Self::Staged,
            (None, Some(aside)) => Self::Aside(aside.clone()),
            (None, None) => Self::Plain,
        }
    }
}

/// Whether to look for an interrupted replica swap (the staging dataset's marks, one more `zfs get`)
/// before deciding: always, unless the target is an unmarked dataset that plainly holds data (the
/// skip path, which then costs no extra zfs call).
#[must_use]
pub fn look_for_interrupted_swap(target: &DatasetFacts, mark: &TargetMark, ignore: &[String]) -> bool {
    !(*mark == TargetMark::Plain && target.holds_data(ignore) == Some(true))
}

/// What to do about an interrupted replica swap, decided before anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Nothing is in flight: decide as usual.
    Nothing,
    /// The restored dataset is in place: set its properties as apply would, mount it, record provenance.
    Settle,
    /// A verified staging dataset waits and the target is empty, missing or marked aside: swap it in.
    SwapIn,
    /// The target was marked aside but there is no verified staging any more: unmark it, decide as usual.
    Unmark,
    /// Cannot continue safely.
    Refuse(String),
}

/// Decides how to resume. `target`: the target as found; `mark`: what it carries; `staging`: the staging
/// dataset as found.
#[must_use]
pub fn resume(target: &DatasetFacts, mark: &TargetMark, staging: &StagingFacts, ignore: &[String]) -> Resume {
    let has_data = |entries: &[String]| entries.iter().any(|e| is_data(e, ignore));
    match (mark, staging, target) {
        (TargetMark::Staged, _, _) => Resume::Settle,
        (TargetMark::Aside(_), StagingFacts::Verified { .. }, DatasetFacts::Mounted { entries, .. })
            if has_data(entries) =>
        {
            Resume::Refuse(
                "the target was found empty and marked to be moved aside, but holds data now; not moving it \
                 (check it, then clear persistctl:empty-aside with zfs inherit)"
                    .into(),
            )
        }
        (TargetMark::Aside(_), StagingFacts::Verified { .. }, _)
        | (TargetMark::Plain, StagingFacts::Verified { .. }, DatasetFacts::Missing) => Resume::SwapIn,
        (TargetMark::Aside(_), _, _) => Resume::Unmark,
        (TargetMark::Plain, StagingFacts::Verified { .. }, DatasetFacts::Mounted { entries, complete_staging })
            if !has_data(entries) && complete_staging.is_empty() =>
        {
            Resume::SwapIn
        }
        _ => Resume::Nothing,
    }
}

impl Resume {
    /// What resuming does, for the log and the report (`None`: nothing, or a refusal with its reason).
    #[must_use]
    pub fn what(&self) -> Option<&'static str> {
        match self {
            Self::Nothing | Self::Refuse(_) => None,
            Self::Settle => Some("finish the replica restore a killed run had renamed into place"),
            Self::SwapIn => Some("swap in the verified replica staging dataset a killed run left"),
            Self::Unmark => Some("unmark the empty dataset a killed run had marked to be moved aside"),
        }
    }
}

/// After a failed source: whether the next one may still write into the target. It must be as the
/// chain found it: still missing (when it was: `was_missing`), or mounted, unmarked, without a rollback
/// mark, empty and without verified staging. Anything else — restored entries, a half-done replica swap,
/// a rollback mark whose removal failed too (it would be taken for a restore later) — stops the chain:
/// a rerun finishes or cleans up what the failed source left.
#[must_use]
pub fn untouched(
    target: &DatasetFacts,
    mark: &TargetMark,
    rolling_back: Option<&str>,
    was_missing: bool,
    ignore: &[String],
) -> bool {
    match (target, mark, rolling_back) {
        (DatasetFacts::Missing, _, _) => was_missing,
        (DatasetFacts::Mounted { complete_staging, .. }, TargetMark::Plain, None) => {
            complete_staging.is_empty() && target.holds_data(ignore) == Some(false)
        }
        _ => false,
    }
}

/// How one source went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result", content = "detail")]
pub enum Attempt {
    /// Restored from it.
    Restored(String),
    /// It holds no backup.
    NoBackup(String),
    /// It failed (unreachable, wrong password, corrupt, verify hook, timeout, ...).
    Failed(String),
}

/// The end of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conclusion {
    /// Restored from this source.
    Restored(SourceKind),
    /// Every source said "no backup" and `allowEmptyBootstrap` is on: start empty.
    Empty,
    /// Keep the service down.
    FailClosed(String),
}

/// Concludes from the attempts, in order. A failed source blocks an empty start even with
/// `allowEmptyBootstrap`: it may hold the only copy.
#[must_use]
pub fn conclude(attempts: &[(SourceKind, Attempt)], allow_empty: bool) -> Conclusion {
    if let Some((kind, _)) = attempts.iter().find(|(_, a)| matches!(a, Attempt::Restored(_))) {
        return Conclusion::Restored(*kind);
    }
    let failed: Vec<String> = attempts
        .iter()
        .filter_map(|(kind, a)| match a {
            Attempt::Failed(why) => Some(format!("{kind}: {why}")),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        return Conclusion::FailClosed(format!(
            "no source restored the data and {} failed ({}); not starting on an empty dataset",
            failed.len(),
            failed.join("; ")
        ));
    }
    if allow_empty {
        Conclusion::Empty
    } else {
        Conclusion::FailClosed(if attempts.is_empty() {
            "no sources are configured and allowEmptyBootstrap is false".to_string()
        } else {
            "no source holds a backup and allowEmptyBootstrap is false; not starting on an empty dataset".to_string()
        })
    }
}

#[cfg(test)]
mod marker_tests {
    use super::*;

    fn mounted(entries: &[&str]) -> DatasetFacts {
        DatasetFacts::Mounted { entries: entries.iter().map(|e| (*e).to_string()).collect(), complete_staging: vec![] }
    }

    #[test]
    fn data_markers_turn_a_silent_skip_into_a_refusal() {
        let ignore = vec!["lost+found".to_string()];
        let logs = mounted(&["logs"]);
        assert!(matches!(start_with_markers(&logs, &ignore, &Markers::NotConfigured), Start::Skip { .. }));
        let Start::Refuse { reason } = start_with_markers(&logs, &ignore, &Markers::Absent) else { panic!() };
        assert!(reason.contains("none of preseed.dataMarkers exists"), "{reason}");
        let Start::Skip { reason, .. } = start_with_markers(&logs, &ignore, &Markers::Present("sonarr.db".into()))
        else {
            panic!()
        };
        assert!(reason.contains("sonarr.db"), "{reason}");
        // An empty dataset is restored whatever the markers say.
        assert!(matches!(start_with_markers(&mounted(&[]), &ignore, &Markers::Absent), Start::Restore { .. }));
        assert!(matches!(start_with_markers(&DatasetFacts::Missing, &ignore, &Markers::Absent), Start::Restore { .. }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounted(entries: &[&str], complete: &[&str]) -> DatasetFacts {
        DatasetFacts::Mounted {
            entries: entries.iter().map(|s| (*s).to_string()).collect(),
            complete_staging: complete.iter().map(|s| (*s).to_string()).collect(),
        }
    }

    #[test]
    fn start_decisions() {
        let ignore = vec!["lost+found".to_string()];
        let st = ".persistctl-staging-restic-1";
        let cases: Vec<(DatasetFacts, &str)> = vec![
            (DatasetFacts::Missing, "restore create"),
            (DatasetFacts::NotMounted, "refuse"),
            (mounted(&[], &[]), "restore"),
            (mounted(&["lost+found"], &[]), "restore"),
            (mounted(&["lost+found", st], &[]), "restore stale"),
            (mounted(&["db.sqlite"], &[]), "skip"),
            // killed after the swap, before the staging was removed: data present, leftovers cleaned
            (mounted(&["db.sqlite", st], &[]), "skip stale"),
            (mounted(&[".hidden"], &[]), "skip"),
            (mounted(&[".zfs", "lost+found"], &[]), "restore"),
            (mounted(&["db.sqlite", st], &[st]), "finish"),
            (mounted(&[st], &[st]), "finish"),
        ];
        for (facts, want) in cases {
            let got = match start(&facts, &ignore) {
                Start::Skip { stale_staging, .. } if !stale_staging.is_empty() => "skip stale",
                Start::Skip { .. } => "skip",
                Start::FinishSwap { .. } => "finish",
                Start::Restore { create: true, .. } => "restore create",
                Start::Restore { stale_staging, .. } if !stale_staging.is_empty() => "restore stale",
                Start::Restore { .. } => "restore",
                Start::Refuse { .. } => "refuse",
            };
            assert_eq!(got, want, "{facts:?}");
        }
    }

    #[test]
    fn skip_names_what_it_found() {
        let Start::Skip { reason, .. } = start(&mounted(&["a", "b", "c", "d", "e"], &[]), &[]) else { panic!() };
        assert_eq!(reason, "data present (a, b, c and 2 more)");
    }

    #[test]
    fn snapshot_choices() {
        let yes = Ok(true);
        let no = Ok(false);
        let err = Err("mount failed".to_string());
        assert!(matches!(choose_snapshot(None, None), Probe::NoBackup(_)));
        assert_eq!(
            choose_snapshot(Some(("t@b", &yes)), None),
            Probe::Use { what: "t@b".into(), why: "newest snapshot t@b holds data".into() }
        );
        assert!(matches!(choose_snapshot(Some(("t@b", &no)), None), Probe::NoBackup(_)));
        let Probe::Failed(why) = choose_snapshot(Some(("t@b", &no)), Some("t@a")) else { panic!() };
        assert!(why.contains("never does"), "{why}");
        assert!(matches!(choose_snapshot(Some(("t@b", &err)), None), Probe::Failed(_)));
    }

    #[test]
    fn the_snapshot_lookup_looks_into_older_snapshots_only_behind_an_empty_newest_one() {
        // (snapshots oldest first with what looking into each says, the decision, the ones looked into)
        type Case = (&'static [(&'static str, Result<bool, &'static str>)], &'static str, &'static [&'static str]);
        let cases: [Case; 7] = [
            (&[], "no backup", &[]),
            (&[("t@a", Ok(false)), ("t@b", Ok(true))], "use t@b", &["t@b"]),
            (&[("t@a", Ok(true)), ("t@b", Err("EIO"))], "failed", &["t@b"]),
            (&[("t@a", Ok(false)), ("t@b", Ok(false))], "no backup", &["t@b", "t@a"]),
            // The first older one with data (newest first) ends the lookup: rolling back to it would
            // destroy t@c, so the source fails.
            (&[("t@a", Ok(true)), ("t@b", Ok(true)), ("t@c", Ok(false))], "failed", &["t@c", "t@b"]),
            // An older one that cannot be looked into counts as empty.
            (&[("t@a", Err("EIO")), ("t@b", Ok(false))], "no backup", &["t@b", "t@a"]),
            (&[("t@a", Ok(true)), ("t@b", Err("EIO")), ("t@c", Ok(false))], "failed", &["t@c", "t@b", "t@a"]),
        ];
        for (snapshots, want, want_looked) in cases {
            let names: Vec<String> = snapshots.iter().map(|(n, _)| (*n).to_string()).collect();
            let mut looked = Vec::new();
            let probe = choose_snapshot_among(&names, |name| {
                looked.push(name.to_string());
                let (_, answer) = snapshots.iter().find(|(n, _)| *n == name).unwrap();
                answer.map_err(String::from)
            });
            let got = match &probe {
                Probe::Use { what, .. } => format!("use {what}"),
                Probe::NoBackup(_) => "no backup".into(),
                Probe::Failed(_) => "failed".into(),
            };
            assert_eq!(got, want, "{snapshots:?}");
            assert_eq!(looked, want_looked, "{snapshots:?}");
        }
    }

    #[test]
    fn an_unmounted_target_is_mounted_first_only_when_unmarked_at_a_path() {
        let at = Some(Path::new("/srv/a"));
        let aside = TargetMark::Aside("t/p/a.persistctl-empty-x".into());
        let cases: [(&TargetMark, Option<&Path>, Option<&Path>); 5] = [
            (&TargetMark::Plain, at, at),
            (&TargetMark::Plain, None, None),
            (&TargetMark::Staged, at, None),
            (&aside, at, None),
            (&aside, None, None),
        ];
        for (mark, would_mount_at, want) in cases {
            assert_eq!(remount_at(mark, would_mount_at), want, "{mark:?} {would_mount_at:?}");
        }
    }

    #[test]
    fn marks_name_the_target_and_staging_state() {
        let marks = |staging: Option<&str>, snapshot: Option<&str>, aside: Option<&str>| Marks {
            staging: staging.map(String::from),
            staging_snapshot: snapshot.map(String::from),
            empty_aside: aside.map(String::from),
            ..Marks::default()
        };
        let cases: [(Marks, TargetMark, StagingFacts); 7] = [
            (marks(None, None, None), TargetMark::Plain, StagingFacts::NotOurs),
            (
                marks(Some("verified"), Some("b/r@s"), None),
                TargetMark::Staged,
                StagingFacts::Verified { snapshot: "b/r@s".into() },
            ),
            (
                marks(Some("received"), Some("b/r@s"), None),
                TargetMark::Staged,
                StagingFacts::Received { snapshot: "b/r@s".into() },
            ),
            (marks(Some("verified"), None, None), TargetMark::Staged, StagingFacts::NotOurs),
            (marks(Some("other"), Some("b/r@s"), None), TargetMark::Staged, StagingFacts::NotOurs),
            (marks(None, None, Some("t/a.x")), TargetMark::Aside("t/a.x".into()), StagingFacts::NotOurs),
            (
                marks(Some("verified"), Some("b/r@s"), Some("t/a.x")),
                TargetMark::Staged,
                StagingFacts::Verified { snapshot: "b/r@s".into() },
            ),
        ];
        for (marks, mark, staging) in cases {
            assert_eq!(TargetMark::of(&marks), mark, "{marks:?}");
            assert_eq!(StagingFacts::of(Some(&marks)), staging, "{marks:?}");
        }
        assert_eq!(StagingFacts::of(None), StagingFacts::Missing);
    }

    #[test]
    fn the_interrupted_swap_is_looked_for_unless_an_unmarked_target_holds_data() {
        let ignore = vec!["lost+found".to_string()];
        let aside = TargetMark::Aside("t/a.x".into());
        let cases: Vec<(DatasetFacts, TargetMark, bool)> = vec![
            (mounted(&["db"], &[]), TargetMark::Plain, false),
            (mounted(&["lost+found"], &[]), TargetMark::Plain, true),
            (mounted(&[], &[]), TargetMark::Plain, true),
            (mounted(&["db"], &[]), TargetMark::Staged, true),
            (mounted(&["db"], &[]), aside, true),
            (DatasetFacts::Missing, TargetMark::Plain, true),
            (DatasetFacts::NotMounted, TargetMark::Plain, true),
        ];
        for (target, mark, want) in cases {
            assert_eq!(look_for_interrupted_swap(&target, &mark, &ignore), want, "{target:?} {mark:?}");
        }
    }

    #[test]
    fn a_failed_source_stops_the_chain_unless_the_target_is_as_found() {
        let ignore = vec!["lost+found".to_string()];
        let st = ".persistctl-staging-restic-1";
        let aside = TargetMark::Aside("t/a.x".into());
        // (target after the failure, its mark, its rollback mark, missing before, the next source may run)
        let cases: Vec<(DatasetFacts, TargetMark, Option<&str>, bool, bool)> = vec![
            (DatasetFacts::Missing, TargetMark::Plain, None, true, true),
            (DatasetFacts::Missing, TargetMark::Plain, None, false, false),
            (mounted(&[], &[]), TargetMark::Plain, None, false, true),
            (mounted(&["lost+found", st], &[]), TargetMark::Plain, None, false, true),
            (mounted(&[], &[]), TargetMark::Plain, None, true, true),
            (mounted(&["db"], &[]), TargetMark::Plain, None, false, false),
            (mounted(&[st], &[st]), TargetMark::Plain, None, false, false),
            (mounted(&[], &[]), TargetMark::Plain, Some("t@a"), false, false),
            (mounted(&[], &[]), TargetMark::Staged, None, false, false),
            (mounted(&[], &[]), aside, None, false, false),
            (DatasetFacts::NotMounted, TargetMark::Plain, None, false, false),
        ];
        for (target, mark, rolling_back, was_missing, want) in cases {
            assert_eq!(
                untouched(&target, &mark, rolling_back, was_missing, &ignore),
                want,
                "{target:?} {mark:?} {rolling_back:?} {was_missing}"
            );
        }
    }

    #[test]
    fn restic_errors_are_failures_and_only_an_empty_listing_is_no_backup() {
        let snap = ResticSnapshot {
            id: "0123456789".into(),
            time: "2024-01-01T00:00:00Z".into(),
            paths: vec![],
            hostname: None,
            tags: None,
        };
        assert!(matches!(choose_restic(&Ok(vec![])), Probe::NoBackup(_)));
        assert!(matches!(choose_restic(&Ok(vec![snap])), Probe::Use { .. }));
        for e in [
            ResticError::WrongPassword,
            ResticError::NoRepository { stderr: String::new() },
            ResticError::Failed { verb: "snapshots".into(), code: 1, stderr: String::new() },
            ResticError::TimedOut { verb: "snapshots".into(), secs: 5 },
            ResticError::NotRun("ENOENT".into()),
        ] {
            assert!(matches!(choose_restic(&Err(e.clone())), Probe::Failed(_)), "{e}");
        }
    }

    #[test]
    fn replica_choices() {
        let list = |names: &[&str]| Ok(Some(names.iter().map(|s| (*s).to_string()).collect()));
        assert!(matches!(choose_replica("b/r", &list(&[])), Probe::NoBackup(_)));
        assert!(matches!(choose_replica("b/r", &Ok(None)), Probe::Failed(w) if w.contains("does not exist")));
        assert!(matches!(choose_replica("b/r", &Err("ssh: connect refused".into())), Probe::Failed(_)));
        let Probe::Use { what, .. } = choose_replica("b/r", &list(&["b/r@a", "b/r@b"])) else { panic!() };
        assert_eq!(what, "b/r@b", "the newest (listed last, by createtxg)");
    }

    #[test]
    fn staging_plans() {
        let received = |s: &str| StagingFacts::Received { snapshot: s.into() };
        let verified = |s: &str| StagingFacts::Verified { snapshot: s.into() };
        let cases: Vec<(StagingFacts, &str)> = vec![
            (StagingFacts::Missing, "receive"),
            (StagingFacts::NotOurs, "blocked"),
            (received("b/r@b"), "reuse"),
            (verified("b/r@b"), "reuse"),
            (received("b/r@a"), "blocked"),
            (verified("b/r@a"), "blocked"),
        ];
        for (facts, want) in cases {
            let got = match plan_staging("t/p/a.persistctl-staging", &facts, "b/r@b") {
                StagingPlan::Receive => "receive",
                StagingPlan::Reuse => "reuse",
                StagingPlan::Blocked(_) => "blocked",
            };
            assert_eq!(got, want, "{facts:?}");
        }
        assert_eq!(staging_dataset("t/p/my app"), "t/p/my app.persistctl-staging");
        assert_eq!(aside_dataset("t/p/a", "20240501T120000Z"), "t/p/a.persistctl-empty-20240501T120000Z");
    }

    #[test]
    fn replica_contents() {
        assert!(matches!(replica_content("r@s", &Ok(true), 5), Probe::Use { .. }));
        assert!(matches!(replica_content("r@s", &Ok(false), 1), Probe::NoBackup(_)));
        assert!(matches!(replica_content("r@s", &Ok(false), 2), Probe::Failed(_)));
        assert!(matches!(replica_content("r@s", &Err("EIO".into()), 2), Probe::Failed(_)));
    }

    #[test]
    fn settled_snapshot_falls_back_to_the_provenance_only_of_a_replica_restore() {
        type Opt = Option<&'static str>;
        let cases: [(Opt, Opt, Opt, Opt); 6] = [
            (Some("b/r@s2"), None, None, Some("b/r@s2")),
            // The staging mark wins over an older provenance from a previous restore.
            (Some("b/r@s2"), Some("replica"), Some("b/r@s1"), Some("b/r@s2")),
            // Killed between clearing staging-snapshot and staging: provenance was written first.
            (None, Some("replica"), Some("b/r@s2"), Some("b/r@s2")),
            (None, Some("restic"), Some("abc123"), None),
            (None, Some("replica"), None, None),
            (None, None, None, None),
        ];
        for (staging, from, snapshot, want) in cases {
            assert_eq!(settled_snapshot(staging, from, snapshot).as_deref(), want, "{staging:?} {from:?} {snapshot:?}");
        }
    }

    #[test]
    fn resume_decisions() {
        let ignore = vec!["lost+found".to_string()];
        let verified = StagingFacts::Verified { snapshot: "b/r@s".into() };
        let received = StagingFacts::Received { snapshot: "b/r@s".into() };
        let aside = TargetMark::Aside("t/p/a.persistctl-empty-x".into());
        let cases: Vec<(DatasetFacts, TargetMark, StagingFacts, &str)> = vec![
            (mounted(&["db"], &[]), TargetMark::Plain, StagingFacts::Missing, "nothing"),
            (mounted(&[], &[]), TargetMark::Plain, StagingFacts::Missing, "nothing"),
            (mounted(&[], &[]), TargetMark::Plain, received.clone(), "nothing"),
            (mounted(&["db"], &[]), TargetMark::Plain, verified.clone(), "nothing"),
            (mounted(&["lost+found"], &[]), TargetMark::Plain, verified.clone(), "swap"),
            (DatasetFacts::Missing, TargetMark::Plain, verified.clone(), "swap"),
            (DatasetFacts::NotMounted, TargetMark::Plain, verified.clone(), "nothing"),
            (DatasetFacts::NotMounted, TargetMark::Staged, StagingFacts::Missing, "settle"),
            (mounted(&["db"], &[]), TargetMark::Staged, StagingFacts::Missing, "settle"),
            (DatasetFacts::NotMounted, aside.clone(), verified.clone(), "swap"),
            (mounted(&[], &[]), aside.clone(), verified.clone(), "swap"),
            (mounted(&["db"], &[]), aside.clone(), verified, "refuse"),
            (DatasetFacts::NotMounted, aside.clone(), received, "unmark"),
            (mounted(&[], &[]), aside, StagingFacts::Missing, "unmark"),
        ];
        for (target, mark, staging, want) in cases {
            let got = match resume(&target, &mark, &staging, &ignore) {
                Resume::Nothing => "nothing",
                Resume::Settle => "settle",
                Resume::SwapIn => "swap",
                Resume::Unmark => "unmark",
                Resume::Refuse(_) => "refuse",
            };
            assert_eq!(got, want, "{target:?} {mark:?} {staging:?}");
        }
        assert_eq!(Resume::Nothing.what(), None);
        assert_eq!(Resume::Refuse("x".into()).what(), None);
        assert!(Resume::SwapIn.what().is_some_and(|w| w.contains("swap in")));
    }

    #[test]
    #[allow(clippy::type_complexity)] // one table of cases
    fn conclusions() {
        use Attempt::{Failed, NoBackup, Restored};
        use SourceKind::{Replica, Restic, Snapshot};
        let nb = || NoBackup("none".into());
        let f = || Failed("unreachable".into());
        let cases: Vec<(Vec<(SourceKind, Attempt)>, bool, &str)> = vec![
            (vec![(Snapshot, nb()), (Restic, Restored("x".into()))], false, "restored restic"),
            (vec![(Snapshot, f()), (Restic, Restored("x".into()))], false, "restored restic"),
            (vec![(Snapshot, nb()), (Restic, nb())], false, "fail"),
            (vec![(Snapshot, nb()), (Restic, nb())], true, "empty"),
            (vec![(Snapshot, nb()), (Restic, f())], true, "fail"),
            (vec![(Replica, f()), (Restic, nb())], true, "fail"),
            (vec![], true, "empty"),
            (vec![], false, "fail"),
        ];
        for (attempts, allow, want) in cases {
            let got = match conclude(&attempts, allow) {
                Conclusion::Restored(Restic) => "restored restic",
                Conclusion::Restored(_) => "restored other",
                Conclusion::Empty => "empty",
                Conclusion::FailClosed(_) => "fail",
            };
            assert_eq!(got, want, "{attempts:?} allow={allow}");
        }
    }
}
