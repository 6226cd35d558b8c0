//! PURE: what `preseed` does, decided from gathered facts. No I/O, no clock, no environment.

use serde::Serialize;

use crate::config::SourceKind;
use crate::restic::{self, ResticError, ResticSnapshot};

/// Every staging directory persistctl makes starts with this; nothing else with it is ever removed.
pub const STAGING_PREFIX: &str = ".persistctl-staging-";

/// ZFS's control directory (`.zfs`, listed when `snapdir=visible`): never data.
pub const ZFS_CTLDIR: &str = ".zfs";

/// Whether a top-level entry counts as data.
#[must_use]
pub fn is_data(entry: &str, ignore: &[String]) -> bool {
    entry != ZFS_CTLDIR && !entry.starts_with(STAGING_PREFIX) && !ignore.iter().any(|i| i == entry)
}

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

/// What to do first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Start {
    /// Real data is there: touch nothing.
    Skip {
        /// Why.
        reason: String,
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
                Start::Skip { reason: format!("data present ({}{more})", shown.join(", ")) }
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
            (mounted(&[".hidden"], &[]), "skip"),
            (mounted(&[".zfs", "lost+found"], &[]), "restore"),
            (mounted(&["db.sqlite", st], &[st]), "finish"),
            (mounted(&[st], &[st]), "finish"),
        ];
        for (facts, want) in cases {
            let got = match start(&facts, &ignore) {
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
        let Start::Skip { reason } = start(&mounted(&["a", "b", "c", "d", "e"], &[]), &[]) else { panic!() };
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
