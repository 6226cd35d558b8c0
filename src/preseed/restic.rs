//! The restic source: the newest restic snapshot matching the service's tags (and path/host filters),
//! restored into a staging directory on the mounted target (`.persistctl-staging-restic-<pid>/data/...`,
//! same filesystem), verified, journaled, then swapped in by `rename(2)` ([`crate::staging`]). restic's exit
//! codes tell "no repository / wrong password" (failed) from "no snapshot matches" (no backup).

use std::path::PathBuf;

use anyhow::bail;

use super::decide;
use super::sources::{Found, Miss, Restored, Source, Turn, chosen};
use crate::provenance;
use crate::restic::{self, Restic, ResticSnapshot};
use crate::staging::{self, SwapJournal};

/// What the result says after a restic restore.
pub const LINEAGE_NOTE: &str = "restored from restic: ZFS send lineage is broken (the dataset shares no snapshot with \
its replica any more), so the next replication needs a full send; see docs/restore-procedures.md";

/// The service's restic repository.
pub(super) struct ResticSource;

/// The snapshot chosen, and the repository it is in.
pub(super) struct Chosen {
    restic: Restic,
    snap: ResticSnapshot,
    /// `restic.path`: the path inside the snapshot (default: the dataset's mountpoint).
    path: Option<String>,
}

/// A restored, not yet verified copy.
pub(super) struct Staged {
    /// The target's mountpoint.
    mountpoint: PathBuf,
    /// The staging directory on it.
    dir: PathBuf,
    /// The restored path inside the snapshot.
    path: String,
    /// Where the data's root is, relative to `dir`.
    data_root: PathBuf,
}

/// Removes a staging directory whose restore failed or was rejected (the failure is what is reported).
fn discard(dir: &std::path::Path) {
    if let Err(cleanup) = staging::remove(dir) {
        tracing::error!("{cleanup:#}");
    }
}

impl Source for ResticSource {
    type Backup = Chosen;
    type Staged = Staged;

    const STAGES_IN_TARGET: bool = true;

    fn finished_swap_note(&self) -> Option<&'static str> {
        Some(LINEAGE_NOTE)
    }

    fn probe(&self, turn: &Turn) -> Result<Found<Chosen>, Miss> {
        let run = turn.run;
        let config =
            run.preseed.restic.as_ref().ok_or_else(|| Miss::Failed("no restic settings in the config".into()))?;
        let restic = Restic::new(config)?;
        let tags = if config.tags.is_empty() { vec![run.spec.service.clone()] } else { config.tags.clone() };
        let (path, host) = (config.path.as_deref(), config.host.as_deref());
        let listing = run.unlocked(|| restic.snapshots(&tags, path, host, turn.deadline))?;
        let (snap, why) = chosen(decide::choose_restic(&listing))?;
        Ok(Found { snapshot: snap.id.clone(), why, backup: Chosen { restic, snap, path: config.path.clone() } })
    }

    fn stage(&self, turn: &Turn, found: &Found<Chosen>) -> Result<Staged, Miss> {
        let Some(mountpoint) = turn.mountpoint else {
            return Err(Miss::Failed("the dataset is not mounted".into()));
        };
        let Chosen { restic: repository, snap, path } = &found.backup;
        let path = path.clone().unwrap_or_else(|| turn.run.spec.mountpoint.clone());
        if !restic::is_literal_pattern(&path) {
            return Err(Miss::Failed(format!(
                "restic path {path:?} contains a pattern character (* ? [ ] \\); restic cannot select it literally"
            )));
        }
        let dir = staging::create(mountpoint, "restic")?;
        let data_root = staging::data_root_for(&path);
        let restored = turn.run.unlocked(|| repository.restore(&snap.id, &path, &dir.join("data"), turn.deadline));
        if let Err(e) = restored.and_then(|r| r.map_err(anyhow::Error::from)) {
            discard(&dir);
            return Err(e.into());
        }
        Ok(Staged { mountpoint: mountpoint.to_path_buf(), dir, path, data_root })
    }

    fn verify(&self, turn: &Turn, found: &Found<Chosen>, staged: &Staged) -> Result<(), Miss> {
        let (snap, path) = (&found.backup.snap, &staged.path);
        let checked = turn.run.unlocked(|| -> anyhow::Result<()> {
            let root = staged.dir.join(&staged.data_root);
            if !std::fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir()) {
                bail!("restic snapshot {} does not contain the directory {path}", snap.short_id());
            }
            if !turn.has_data(&root).map_err(anyhow::Error::msg)? {
                bail!("restic snapshot {} holds nothing at {path}", snap.short_id());
            }
            turn.verify_command(&root).map_err(anyhow::Error::msg)?;
            staging::sync_filesystem(&staged.dir)
        });
        if let Err(e) = checked.and_then(|checked| checked) {
            discard(&staged.dir);
            return Err(e.into());
        }
        Ok(())
    }

    fn swap(&self, turn: &Turn, found: &Found<Chosen>, staged: Staged) -> Result<Restored, Miss> {
        let (run, snap) = (turn.run, &found.backup.snap);
        let journal = SwapJournal { source: "restic".into(), snapshot: snap.id.clone(), data_root: staged.data_root };
        staging::write_journal(&staged.dir, &journal)?;
        provenance::swap_and_record(&run.zfs, run.spec, &run.entry_rules(), &staged.mountpoint, &staged.dir, &journal)?;
        Ok(Restored {
            detail: format!("restored restic snapshot {} ({})", snap.short_id(), snap.time),
            snapshot: snap.id.clone(),
            note: Some(LINEAGE_NOTE.to_string()),
        })
    }
}
