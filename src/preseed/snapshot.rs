//! The snapshot source: the dataset's own newest snapshot, when it holds data, by `zfs rollback` (never
//! `-r`: an older snapshot behind an empty newest one would need the later ones destroyed, so that fails
//! the source). The snapshot is its own staged copy, seen at `.zfs/snapshot/<name>`. The rollback is
//! marked on the dataset first (`persistctl:rolling-back`), so a rerun after a kill records it.

use std::path::PathBuf;

use super::sources::{Found, Miss, Restored, Source, Turn, chosen};
use super::{Event, Report, Run, decide};
use crate::names::PROP_ROLLING_BACK;

/// The dataset's own snapshots.
pub(super) struct Snapshot;

impl Source for Snapshot {
    /// Where the chosen snapshot is seen: `<mountpoint>/.zfs/snapshot/<name>`.
    type Backup = PathBuf;
    type Staged = ();

    fn probe(&self, turn: &Turn) -> Result<Found<PathBuf>, Miss> {
        let Some(mountpoint) = turn.mountpoint else {
            return Err(Miss::NoBackup("the dataset does not exist yet, so it has no snapshots".into()));
        };
        let run = turn.run;
        let snapshots = run.zfs.snapshots(&run.spec.dataset).map_err(|e| Miss::Failed(e.to_string()))?;
        let snapdir = |full: &str| {
            let short = full.rsplit_once('@').map_or(full, |(_, s)| s);
            mountpoint.join(".zfs/snapshot").join(short)
        };
        let (name, why) = chosen(decide::choose_snapshot_among(&snapshots, |n| turn.has_data(&snapdir(n))))?;
        Ok(Found { backup: snapdir(&name), snapshot: name, why })
    }

    fn stage(&self, _: &Turn, _: &Found<PathBuf>) -> Result<(), Miss> {
        Ok(())
    }

    fn verify(&self, turn: &Turn, found: &Found<PathBuf>, (): &()) -> Result<(), Miss> {
        turn.run.unlocked(|| turn.verify_command(&found.backup))?.map_err(Miss::Failed)
    }

    fn swap(&self, turn: &Turn, found: &Found<PathBuf>, (): ()) -> Result<Restored, Miss> {
        let (run, name) = (turn.run, &found.snapshot);
        // Marked first, so a run killed right after the rollback leaves a rerun what to record.
        let failed = |e: crate::zfs::ZfsError| Miss::Failed(e.to_string());
        run.zfs.set(&run.spec.dataset, &[(PROP_ROLLING_BACK.to_string(), name.clone())]).map_err(failed)?;
        if let Err(e) = run.zfs.rollback(name) {
            if let Err(unmark) = run.zfs.inherit(PROP_ROLLING_BACK, &run.spec.dataset, false) {
                tracing::error!("{unmark}");
            }
            return Err(failed(e));
        }
        // The data is back whatever happens next: a failed property write is reported, not a failed source.
        let note = record_rollback(run, name).err().map(|e| {
            tracing::error!("{e:#}");
            format!("the data was rolled back but its provenance was not recorded: {e:#}")
        });
        Ok(Restored { detail: format!("rolled back to {name}"), snapshot: name.clone(), note })
    }
}

/// Provenance of a rollback, then its mark goes.
fn record_rollback(run: &Run, snapshot: &str) -> anyhow::Result<()> {
    run.set_provenance("snapshot", snapshot)?;
    run.zfs.inherit(PROP_ROLLING_BACK, &run.spec.dataset, false).map_err(Into::into)
}

/// The data is present and the dataset still carries a rollback mark: a killed run rolled back and did
/// not record it. Recorded now, and reported (and notified) as the restore it was.
pub(super) fn settle_rollback(run: &Run, snapshot: &str, reason: &str) -> anyhow::Result<Report> {
    tracing::warn!(dataset = %run.spec.dataset, "recording the rollback to {snapshot} a killed run made");
    record_rollback(run, snapshot)?;
    let detail = format!("{reason}; a killed run had rolled back to {snapshot}: recorded it");
    Ok(run.report(Event::Restored, Some("snapshot".into()), Some(snapshot.to_string()), detail, Vec::new(), None))
}
