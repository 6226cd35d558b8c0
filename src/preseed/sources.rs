//! The restore sources behind one interface, and the one list of them: [`source_for`].
//!
//! Every source goes through the same four steps, run by [`Restore::attempt`]: `probe` (reads only:
//! which backup, and why; in a dry run the last step), `stage` (a copy next to the target's data, never
//! over it: a staging directory on it, a staging dataset beside it, the snapshot itself), `verify` (it
//! holds data, the `verifyCommand` accepts it) and `swap` (into place, with provenance). Any step may
//! end the attempt with [`Miss::NoBackup`] ("this source holds no backup": the next one is tried) or
//! [`Miss::Failed`] (it could not answer, or its copy is unusable: never an empty start). What a step
//! does is the source's own business; where a failed source leaves the target changed, the run's "stop
//! the chain" check (`decide::untouched`) sees it.
//!
//! Adding a source (say PostgreSQL through barman-cloud) is a new file implementing [`Source`] and its
//! arm in [`source_for`], next to its `config::SourceKind`. A source staging a directory on the target
//! sets `STAGES_IN_TARGET` and ends its `swap` with `staging::write_journal` and
//! `provenance::swap_and_record`: the run then finishes a swap a killed run left on its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Deserialize as _;
use serde::de::IntoDeserializer as _;

use super::{Run, barman, decide, replica, restic, snapshot};
use crate::child;
use crate::config::SourceKind;
use crate::fsprobe;

/// Every source, by the kind configured in `preseed.sources`: the one list a new source is added to.
pub(super) fn source_for(kind: SourceKind) -> &'static dyn Restore {
    match kind {
        SourceKind::Snapshot => &snapshot::Snapshot,
        SourceKind::Replica => &replica::Replica,
        SourceKind::Restic => &restic::ResticSource,
        SourceKind::Barman => &barman::Barman,
    }
}

/// The note a rerun reports when it finishes the journaled swap of `source` (a journal's `source`: a
/// source kind's name, or `migrate`).
pub(super) fn finished_swap_note(source: &str) -> Option<String> {
    // By the names `preseed.sources` uses (a journal names its source by that name).
    let kind: Result<SourceKind, serde::de::value::Error> = SourceKind::deserialize(source.into_deserializer());
    let kind = kind.ok()?;
    source_for(kind).finished_swap_note().map(String::from)
}

/// Why an attempt ended without a restore.
#[derive(Debug)]
pub(super) enum Miss {
    /// The source answered: it holds no backup.
    NoBackup(String),
    /// It could not answer, or what it holds cannot be used.
    Failed(String),
}

impl From<anyhow::Error> for Miss {
    fn from(e: anyhow::Error) -> Self {
        Self::Failed(format!("{e:#}"))
    }
}

/// A core probe's verdict as a step's result: the chosen backup and why, or the miss.
pub(super) fn chosen<T>(probe: decide::Probe<T>) -> Result<(T, String), Miss> {
    match probe {
        decide::Probe::Use { what, why } => Ok((what, why)),
        decide::Probe::NoBackup(why) => Err(Miss::NoBackup(why)),
        decide::Probe::Failed(why) => Err(Miss::Failed(why)),
    }
}

/// What a probe chose.
pub(super) struct Found<T> {
    /// The snapshot (or backup id) reported.
    pub snapshot: String,
    /// Why this one.
    pub why: String,
    /// Whatever the later steps need of it.
    pub backup: T,
}

/// A restore in place.
pub(super) struct Restored {
    /// The snapshot restored, as recorded in the provenance.
    pub snapshot: String,
    /// What was done, in one line.
    pub detail: String,
    /// What the operator must know next.
    pub note: Option<String>,
}

/// What one attempt is given.
pub(super) struct Turn<'r, 'a> {
    /// The run: the dataset, its spec and preseed settings, the zfs runner, the lock.
    pub run: &'r Run<'a>,
    /// The target's mountpoint, when it exists (mounted).
    pub mountpoint: Option<&'r Path>,
    /// When this source's time is up.
    pub deadline: Instant,
}

impl Turn<'_, '_> {
    /// Whether `path` holds a data entry (`preseed.ignore`, `.zfs` and our staging do not count).
    pub fn has_data(&self, path: &Path) -> Result<bool, String> {
        fsprobe::list_entries(path)
            .map(|entries| entries.iter().any(|e| decide::is_data(e, &self.run.preseed.ignore)))
            .map_err(|e| format!("{e:#}"))
    }

    /// Runs `verifyCommand` with the staged path appended. `Err`: why the source is rejected.
    pub fn verify_command(&self, path: &Path) -> Result<(), String> {
        let Some(argv) = &self.run.preseed.verify_command else { return Ok(()) };
        let Some((program, rest)) = argv.split_first() else { return Ok(()) };
        let mut cmd = Command::new(program);
        child::scrub_env(&mut cmd);
        cmd.args(rest).arg(path);
        match child::run(cmd, None, self.deadline) {
            Ok(done) if done.status.success() => Ok(()),
            Ok(done) => Err(format!(
                "verify command rejected {} (exit {}): {}",
                path.display(),
                done.status.code().map_or_else(|| "by signal".to_string(), |c| c.to_string()),
                done.stderr_text()
            )),
            Err(e) => Err(format!("verify command: {e}")),
        }
    }
}

/// One place preseed restores from: probe → stage → verify → swap.
pub(super) trait Source {
    /// What the probe found that the later steps need (a snapshot name, a restic listing entry, ...).
    type Backup;
    /// What staging made: the copy beside the target.
    type Staged;

    /// The source stages into the target's own root, so the target must exist, mounted, first: a
    /// missing one is created as `apply` would before the probe (not in a dry run).
    const STAGES_IN_TARGET: bool = false;

    /// The note a rerun reports when it finishes a journaled swap this source began.
    fn finished_swap_note(&self) -> Option<&'static str> {
        None
    }

    /// Looks, changing nothing: the backup to restore, and why.
    fn probe(&self, turn: &Turn) -> Result<Found<Self::Backup>, Miss>;

    /// Makes the copy beside the target.
    fn stage(&self, turn: &Turn, found: &Found<Self::Backup>) -> Result<Self::Staged, Miss>;

    /// Checks the copy: it holds data, and the verify command accepts it.
    fn verify(&self, turn: &Turn, found: &Found<Self::Backup>, staged: &Self::Staged) -> Result<(), Miss>;

    /// Puts the verified copy in place and records where it came from.
    fn swap(&self, turn: &Turn, found: &Found<Self::Backup>, staged: Self::Staged) -> Result<Restored, Miss>;
}

/// How one attempt went.
pub(super) enum Outcome {
    /// Dry run: this backup would be restored.
    Would {
        /// The snapshot.
        snapshot: String,
        /// Why.
        why: String,
    },
    /// Restored.
    Restored(Restored),
    /// It ended without a restore.
    Missed(Miss),
}

/// A source as the run sees it: every [`Source`] is one.
pub(super) trait Restore {
    /// Runs the steps, creating the target first when the source stages into it. `Err`: the target
    /// could not be created, which fails the run.
    fn attempt(&self, run: &Run<'_>, place: &mut ChainTarget) -> anyhow::Result<Outcome>;

    /// See [`Source::finished_swap_note`].
    fn finished_swap_note(&self) -> Option<&'static str>;
}

/// The target as the chain goes: its mountpoint, and whether it is still to be created.
pub(super) struct ChainTarget {
    /// Where it is mounted, when it exists.
    pub mountpoint: Option<PathBuf>,
    /// It does not exist yet.
    pub missing: bool,
}

impl<S: Source> Restore for S {
    fn attempt(&self, run: &Run<'_>, place: &mut ChainTarget) -> anyhow::Result<Outcome> {
        let deadline = run.source_deadline();
        if S::STAGES_IN_TARGET && place.missing && !run.opts.dry_run {
            place.mountpoint = Some(run.create_dataset()?);
            place.missing = false;
        }
        let turn = Turn { run, mountpoint: place.mountpoint.as_deref(), deadline };
        let steps = || -> Result<Outcome, Miss> {
            let found = self.probe(&turn)?;
            if run.opts.dry_run {
                return Ok(Outcome::Would { snapshot: found.snapshot, why: found.why });
            }
            let staged = self.stage(&turn, &found)?;
            self.verify(&turn, &found, &staged)?;
            self.swap(&turn, &found, staged).map(Outcome::Restored)
        };
        Ok(steps().unwrap_or_else(Outcome::Missed))
    }

    fn finished_swap_note(&self) -> Option<&'static str> {
        Source::finished_swap_note(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_restic_journal_finished_by_a_rerun_carries_the_lineage_note() {
        assert_eq!(finished_swap_note("restic").as_deref(), Some(restic::LINEAGE_NOTE));
        for source in ["snapshot", "replica", "migrate", "Restic", ""] {
            assert_eq!(finished_swap_note(source), None, "{source:?}");
        }
    }
}
