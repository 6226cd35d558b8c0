//! `persistctl preseed SERVICE`: restore a service's missing data before it starts, and never let it
//! start on nothing.
//!
//! The run (this file) reads the target ([`crate::target`]), finishes what a killed run left (a
//! journaled swap, a replica swap, a rollback), asks the pure [`decide`] functions whether to restore,
//! and if so tries the configured sources in order, each behind one interface (`sources.rs`: probe →
//! stage → verify → swap), one file each: `snapshot.rs`, `replica.rs`, `restic.rs`. Every source's failure
//! is recorded; only "every source answered: no backup" plus `allowEmptyBootstrap` lets the service
//! start empty. `report.rs` says what happened (status file, notification, notify hook).

pub use persistctl_core::preseed::decide;
mod barman;
mod replica;
mod report;
mod restic;
mod snapshot;
mod sources;

pub use replica::REPLICA_LINEAGE_NOTE;
pub use report::{AttemptRecord, Event, Report, append_status, notification, notify_args};
pub use restic::LINEAGE_NOTE;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};

use crate::apply;
use crate::child;
use crate::config::{DatasetSpec, PreseedConfig, SourceKind, Validated};
use crate::lock;
use crate::names::PROP_ROLLING_BACK;
use crate::redact::Secrets;
use crate::staging;
use crate::target::{self, Place};
use crate::timestamp;
use crate::zfs::Zfs;
use crate::{provenance, restic as restic_cli};
use decide::{Attempt, Conclusion, DatasetFacts, Start, TargetMark};
use replica::Resumed;
use sources::{ChainTarget, Miss, Outcome, Restored};

/// The default status file: one JSON object per line, one line per run that did something.
pub const DEFAULT_STATUS_FILE: &str = "/var/lib/persistctl/preseed.json";

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The service (a key of `datasets.services`).
    pub service: String,
    /// Decide and print, change nothing.
    pub dry_run: bool,
    /// Where to append the JSON line.
    pub status_file: PathBuf,
    /// argv prefix of the notification hook (empty: none).
    pub notify_command: Vec<String>,
    /// The lock shared with `apply`.
    pub lock_path: PathBuf,
    /// The zfs runner (its per-call timeout; the run caps it at `preseed.timeout`).
    pub zfs: Zfs,
    /// How long to wait for it.
    pub lock_timeout: Duration,
}

/// One run: the service, its settings, the zfs runner and the locks. The sources get it through their `Turn`.
struct Run<'a> {
    zfs: Zfs,
    validated: &'a Validated,
    spec: &'a DatasetSpec,
    preseed: &'a PreseedConfig,
    opts: &'a Options,
    started: Instant,
    deadline: Instant,
    /// The global lock, held except while a source works for long without touching ZFS' namespace
    /// (restic restoring, a `zfs receive` into our own staging name, a verify hook): other services'
    /// restores and `apply` go on meanwhile. The per-dataset lock is held for the whole run.
    global: std::cell::RefCell<Option<lock::Lock>>,
    /// The restic source's secrets (password file, `environmentFile` values), masked in everything logged
    /// and reported.
    secrets: Secrets,
}

/// Runs `preseed` for one service. An `Err` is an error before any decision (bad service name, ...);
/// a fail-closed decision is an `Ok` report with [`Event::Failed`]. Either way the caller exits non-zero.
pub fn run(validated: &Validated, opts: &Options) -> anyhow::Result<Report> {
    let spec = validated.spec(&opts.service)?;
    let preseed = validated
        .preseed(&opts.service)
        .filter(|p| p.enable)
        .with_context(|| format!("preseed is not enabled for service {:?}", opts.service))?;
    let run = Run {
        zfs: opts.zfs.clone().capped_at(child::deadline_in(Duration::from_secs(preseed.timeout))),
        validated,
        spec,
        preseed,
        opts,
        started: Instant::now(),
        deadline: child::deadline_in(Duration::from_secs(preseed.timeout)),
        global: std::cell::RefCell::new(None),
        secrets: {
            let mut secrets = preseed.restic.as_ref().map(restic_cli::secrets).unwrap_or_default();
            if let Some(pg) = validated.config.postgresql.get(&opts.service) {
                secrets.extend(&crate::barman::secrets(&pg.archive));
            }
            secrets
        },
    };
    // A lock that cannot be had is a failure like any other: recorded, notified, the service kept down.
    let locked = if opts.dry_run {
        Ok(None)
    } else {
        lock::acquire(&lock::dataset_lock_path(&opts.lock_path, &spec.dataset), opts.lock_timeout).and_then(|own| {
            *run.global.borrow_mut() = Some(lock::acquire(&opts.lock_path, opts.lock_timeout)?);
            Ok(Some(own))
        })
    };
    let report = match locked.and_then(|_own| run.execute()) {
        Ok(report) => report,
        Err(e) => run.report(Event::Failed, None, None, format!("{e:#}"), Vec::new(), None),
    };
    // The one point every report passes before it is printed, stored, notified or given to the hook.
    let report = report.redacted(&run.secrets);
    drop(run.global.borrow_mut().take());
    if !opts.dry_run {
        run.record(&report);
    }
    Ok(report)
}

impl Run<'_> {
    /// How a swap treats the target's entries: `preseed.ignore` may exist, `dataMarkers` go in last.
    fn entry_rules(&self) -> staging::EntryRules<'_> {
        staging::EntryRules { ignore: &self.preseed.ignore, markers: &self.preseed.data_markers }
    }

    /// Runs `work` without the global lock (a long step that changes nothing another run looks at), then
    /// takes it back. Failing to take it back fails the run, which is recorded like any failure.
    fn unlocked<T>(&self, work: impl FnOnce() -> T) -> anyhow::Result<T> {
        let held = self.global.borrow_mut().take();
        if held.is_none() {
            return Ok(work());
        }
        drop(held);
        let out = work();
        *self.global.borrow_mut() = Some(lock::acquire(&self.opts.lock_path, self.opts.lock_timeout)?);
        Ok(out)
    }

    fn report(
        &self,
        event: Event,
        source: Option<String>,
        snapshot: Option<String>,
        detail: String,
        attempts: Vec<AttemptRecord>,
        note: Option<String>,
    ) -> Report {
        Report {
            service: self.spec.service.clone(),
            dataset: self.spec.dataset.clone(),
            event,
            source,
            snapshot,
            detail,
            attempts,
            note,
            at: timestamp::rfc3339_utc(SystemTime::now()),
        }
    }

    /// The dataset as it is now; the mountpoint when mounted.
    fn facts(&self) -> anyhow::Result<(DatasetFacts, Option<PathBuf>)> {
        self.target().map(|(facts, mountpoint, _)| (facts, mountpoint))
    }

    /// The dataset as it is now, its mountpoint when mounted, and what an interrupted replica swap left on it.
    fn target(&self) -> anyhow::Result<(DatasetFacts, Option<PathBuf>, TargetMark)> {
        self.read_target().map(|t| (t.facts, t.mountpoint, t.mark))
    }

    /// The dataset as it is now, with every mark a killed run can leave on it (one `zfs get`).
    fn read_target(&self) -> anyhow::Result<Target> {
        let found = target::read(&self.zfs, &self.spec.dataset)?;
        let mark = TargetMark::of(&found.marks);
        let rolling_back = found.marks.rolling_back.clone();
        Ok(match found.place {
            Place::Missing => {
                Target { facts: DatasetFacts::Missing, mountpoint: None, mark, rolling_back, unmounted_at: None }
            }
            Place::NotMounted { would_mount_at } => Target {
                facts: DatasetFacts::NotMounted,
                mountpoint: None,
                mark,
                rolling_back,
                unmounted_at: would_mount_at,
            },
            Place::Mounted(root) => Target {
                facts: DatasetFacts::Mounted { entries: root.entries, complete_staging: root.complete_staging },
                mountpoint: Some(root.mountpoint),
                mark,
                rolling_back,
                unmounted_at: None,
            },
        })
    }

    /// The target, first mounted if it exists unmounted (a run killed inside `zfs create`, which creates,
    /// then mounts) and mounting hides nothing; otherwise it stays as found and is refused later.
    /// `Err`: the dry run's report.
    fn read_target_mounted(&self) -> anyhow::Result<Result<Target, Report>> {
        let target = self.read_target()?;
        let Some(at) = decide::remount_at(&target.mark, target.unmounted_at.as_deref()) else { return Ok(Ok(target)) };
        let why = "it exists but is not mounted";
        if !target::mount_where_free(&self.zfs, &self.spec.dataset, at, why, self.opts.dry_run)? {
            return Ok(Ok(target));
        }
        if self.opts.dry_run {
            let detail = format!("{} exists but is not mounted: would mount it at {}", self.spec.dataset, at.display());
            return Ok(Err(self.report(Event::DryRun, None, None, detail, Vec::new(), None)));
        }
        self.read_target().map(Ok)
    }

    /// What `preseed.dataMarkers` shows in the mounted dataset at `root`.
    fn markers(&self, root: Option<&Path>) -> decide::Markers {
        match (root, self.preseed.data_markers.is_empty()) {
            (_, true) | (None, false) => decide::Markers::NotConfigured,
            (Some(root), false) => self
                .preseed
                .data_markers
                .iter()
                // lstat: a marker that is a symlink counts as present, and is never followed.
                .find(|m| std::fs::symlink_metadata(root.join(m)).is_ok())
                .map_or(decide::Markers::Absent, |m| decide::Markers::Present(m.clone())),
        }
    }

    fn execute(&self) -> anyhow::Result<Report> {
        let (mut facts, mut mountpoint, mark, rolling_back) = match self.read_target_mounted()? {
            Ok(t) => (t.facts, t.mountpoint, t.mark, t.rolling_back),
            Err(dry_run) => return Ok(dry_run),
        };
        // An interrupted replica swap is finished first (the skip path never looks: no extra zfs call).
        if self.preseed.replica.is_some() && decide::look_for_interrupted_swap(&facts, &mark, &self.preseed.ignore) {
            match replica::resume(self, &facts, &mark)? {
                Resumed::Done(report) => return Ok(report),
                Resumed::Unmarked => (facts, mountpoint, _) = self.target()?,
                Resumed::Nothing => {}
            }
        }
        match decide::start_with_markers(&facts, &self.preseed.ignore, &self.markers(mountpoint.as_deref())) {
            Start::Skip { reason, stale_staging } => {
                if !self.opts.dry_run {
                    if let Some(mp) = &mountpoint {
                        for name in &stale_staging {
                            tracing::warn!("removing staging {name} that a killed run left after its swap");
                            staging::remove(&mp.join(name))?;
                        }
                    }
                }
                match rolling_back {
                    Some(snapshot) if self.opts.dry_run => {
                        let detail = format!("{reason}; would record the rollback to {snapshot} a killed run made");
                        Ok(self.report(
                            Event::DryRun,
                            Some("snapshot".into()),
                            Some(snapshot),
                            detail,
                            Vec::new(),
                            None,
                        ))
                    }
                    Some(snapshot) => snapshot::settle_rollback(self, &snapshot, &reason),
                    None => Ok(self.report(Event::Skipped, None, None, reason, Vec::new(), None)),
                }
            }
            Start::Refuse { reason } => Ok(self.report(Event::Failed, None, None, reason, Vec::new(), None)),
            Start::FinishSwap { staging } => {
                let mountpoint = mountpoint.context("a mounted dataset has a mountpoint")?;
                if self.opts.dry_run {
                    let detail =
                        format!("would finish the interrupted swap of {}", mountpoint.join(&staging).display());
                    return Ok(self.report(Event::DryRun, None, None, detail, Vec::new(), None));
                }
                tracing::warn!(dataset = %self.spec.dataset, "finishing the swap a killed run left in {staging}");
                self.finish_swap(&mountpoint, &mountpoint.join(&staging), Vec::new())
            }
            Start::Restore { create, stale_staging, reason } => {
                tracing::info!(dataset = %self.spec.dataset, "{reason}: restoring");
                if !self.opts.dry_run {
                    if let Some(snapshot) = &rolling_back {
                        // Still empty: that rollback never took effect (only a snapshot with data is used).
                        tracing::warn!("clearing the mark of a rollback to {snapshot} a killed run never made");
                        self.zfs.inherit(PROP_ROLLING_BACK, &self.spec.dataset, false)?;
                    }
                    if let Some(mp) = &mountpoint {
                        for name in &stale_staging {
                            tracing::warn!("removing unverified staging {name} left by a killed run");
                            staging::remove(&mp.join(name))?;
                        }
                    }
                }
                // A missing dataset is created (as apply would) only when a source needs it mounted: the
                // replica source renames its received dataset into place instead.
                self.chain(mountpoint, create, &reason)
            }
        }
    }

    /// Creates the dataset exactly as `apply` would (only this service's spec), then checks it is mounted and empty.
    fn create_dataset(&self) -> anyhow::Result<PathBuf> {
        self.apply_spec()?;
        match self.facts()? {
            (facts, Some(mp)) if facts.holds_data(&self.preseed.ignore) == Some(true) => {
                bail!("the new dataset {} is not empty at {}", self.spec.dataset, mp.display())
            }
            (DatasetFacts::Mounted { .. }, Some(mp)) => Ok(mp),
            _ => bail!("the new dataset {} is not mounted", self.spec.dataset),
        }
    }

    /// `apply` for this service's spec only.
    fn apply_spec(&self) -> anyhow::Result<()> {
        apply::apply_service(&self.zfs, self.validated, &self.spec.service)
    }

    fn source_deadline(&self) -> Instant {
        let per = self.preseed.source_timeout.unwrap_or(self.preseed.timeout);
        child::deadline_in(Duration::from_secs(per)).min(self.deadline)
    }

    /// Tries the sources in order. `create`: the dataset does not exist yet (created when a source needs it).
    fn chain(&self, mountpoint: Option<PathBuf>, create: bool, reason: &str) -> anyhow::Result<Report> {
        let mut place = ChainTarget { mountpoint, missing: create };
        let mut attempts: Vec<AttemptRecord> = Vec::new();
        let mut done: Option<(SourceKind, String, Option<String>)> = None;
        for &kind in &self.preseed.sources {
            if Instant::now() >= self.deadline {
                let why =
                    format!("the overall timeout ({} s) passed before this source was tried", self.preseed.timeout);
                attempts.push(AttemptRecord { source: kind, attempt: Attempt::Failed(why) });
                continue;
            }
            let attempt = sources::source_for(kind).attempt(self, &mut place)?;
            match attempt {
                Outcome::Would { snapshot, why } => {
                    attempts.push(AttemptRecord { source: kind, attempt: Attempt::Restored(why.clone()) });
                    let detail = format!("{reason}; would restore from {kind}: {why}");
                    return Ok(self.report(
                        Event::DryRun,
                        Some(kind.to_string()),
                        Some(snapshot),
                        detail,
                        attempts,
                        None,
                    ));
                }
                Outcome::Restored(Restored { snapshot, detail, note }) => {
                    attempts.push(AttemptRecord { source: kind, attempt: Attempt::Restored(detail.clone()) });
                    done = Some((kind, snapshot, note));
                    break;
                }
                Outcome::Missed(Miss::NoBackup(why)) => {
                    let why = self.secrets.redact(&why);
                    tracing::info!(source = %kind, "no backup: {why}");
                    attempts.push(AttemptRecord { source: kind, attempt: Attempt::NoBackup(why) });
                }
                Outcome::Missed(Miss::Failed(why)) => {
                    let why = self.secrets.redact(&why);
                    tracing::error!(source = %kind, "source failed: {why}");
                    attempts.push(AttemptRecord { source: kind, attempt: Attempt::Failed(why) });
                    if !self.opts.dry_run {
                        self.still_untouched(kind, place.missing)?;
                    }
                }
            }
        }
        let pairs: Vec<(SourceKind, Attempt)> = attempts.iter().map(|a| (a.source, a.attempt.clone())).collect();
        match decide::conclude(&pairs, self.preseed.allow_empty_bootstrap) {
            Conclusion::Restored(kind) => {
                let (_, snapshot, note) = done.context("a restored source has its snapshot")?;
                let detail = format!("{reason}; restored from {kind} ({snapshot})");
                Ok(self.report(Event::Restored, Some(kind.to_string()), Some(snapshot), detail, attempts, note))
            }
            Conclusion::Empty if self.opts.dry_run => {
                let detail = format!("{reason}; no source holds a backup: would start empty (allowEmptyBootstrap)");
                Ok(self.report(Event::DryRun, Some("empty".into()), None, detail, attempts, None))
            }
            Conclusion::Empty => {
                if place.missing {
                    self.create_dataset()?;
                }
                let detail = format!("{reason}; no source holds a backup: starting empty (allowEmptyBootstrap)");
                self.set_provenance("empty", "-")?;
                Ok(self.report(Event::EmptyBootstrap, Some("empty".into()), None, detail, attempts, None))
            }
            Conclusion::FailClosed(why) => {
                let event = Event::Failed;
                Ok(self.report(event, None, None, format!("{reason}; {why}"), attempts, None))
            }
        }
    }

    /// After a failed source: the dataset must still be empty with no verified staging, or no further source
    /// may write into it (a rerun finishes or cleans up what the failed one left).
    fn still_untouched(&self, kind: SourceKind, missing: bool) -> anyhow::Result<()> {
        let t = self.read_target()?;
        if decide::untouched(&t.facts, &t.mark, t.rolling_back.as_deref(), missing, &self.preseed.ignore) {
            return Ok(());
        }
        bail!(
            "the {kind} source failed after it had changed the dataset; not trying further sources \
             (rerun persistctl preseed to finish or clean up)"
        )
    }

    fn set_provenance(&self, source: &str, snapshot: &str) -> anyhow::Result<()> {
        provenance::record(&self.zfs, &self.spec.dataset, source, snapshot)
    }

    /// Finishes the journaled swap a killed run had begun (restic, or a migration), from its journal.
    fn finish_swap(&self, mountpoint: &Path, staging: &Path, attempts: Vec<AttemptRecord>) -> anyhow::Result<Report> {
        let journal = staging::read_journal(staging)?;
        provenance::swap_and_record(&self.zfs, self.spec, &self.entry_rules(), mountpoint, staging, &journal)?;
        if journal.source == SourceKind::Barman.to_string() {
            barman::swapped_in(self, &journal.snapshot, None)?;
        }
        let note = sources::finished_swap_note(&journal.source);
        let detail = format!(
            "finished the swap of {} snapshot {} that a killed run had verified",
            journal.source, journal.snapshot
        );
        Ok(self.report(Event::Restored, Some(journal.source.clone()), Some(journal.snapshot), detail, attempts, note))
    }
}

/// The target as read at the start of a run.
struct Target {
    facts: DatasetFacts,
    mountpoint: Option<PathBuf>,
    /// What an interrupted replica swap left on it.
    mark: TargetMark,
    /// The snapshot an interrupted rollback was rolling back to (`persistctl:rolling-back`).
    rolling_back: Option<String>,
    /// Not mounted, though `canmount=on` and its mountpoint is a path: where it would mount.
    unmounted_at: Option<PathBuf>,
}
