//! `persistctl preseed SERVICE`: restore a service's missing data before it starts, and never let it
//! start on nothing.
//!
//! The shell here gathers facts (the dataset, its entries, its snapshots, restic's listing), asks the
//! pure [`decide`] functions what to do, and does it: roll back, or restore into a staging directory on
//! the dataset, verify, and swap in by `rename(2)` ([`staging`]). Every source's failure is recorded;
//! only "every source answered: no backup" plus `allowEmptyBootstrap` lets the service start empty.

pub use persistctl_core::preseed::decide;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::apply;
use crate::child;
use crate::config::{DatasetSpec, PreseedConfig, ResticConfig, SourceKind, Validated};
use crate::lock;
use crate::notify;
use crate::redact::Secrets;
use crate::restic::{self, Restic, ResticSnapshot};
use crate::staging::{self, SwapJournal};
use crate::target::{self, Place};
use crate::timestamp;
use crate::zfs::{TreeRead, Zfs};
use crate::{fsprobe, provenance};
use decide::{
    Attempt, Conclusion, DatasetFacts, PROP_EMPTY_ASIDE, PROP_ROLLING_BACK, PROP_STAGING, PROP_STAGING_SNAPSHOT, Probe,
    Resume, StagingFacts, StagingPlan, Start, TargetMark,
};

/// The default status file: one JSON object per line, one line per run that did something.
pub const DEFAULT_STATUS_FILE: &str = "/var/lib/persistctl/preseed.json";

/// How long a notify hook may run.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a notification may hold up the end of a run.
const NOTIFICATION_BUDGET: Duration = Duration::from_secs(120);

/// What the result says after a replica restore.
pub const REPLICA_LINEAGE_NOTE: &str = "restored by zfs send | zfs receive: ZFS send lineage is kept (the dataset \
now holds the replica's snapshot with the same GUID), so syncoid continues incrementally";

/// What the result says after a restic restore.
pub const LINEAGE_NOTE: &str = "restored from restic: ZFS send lineage is broken (the dataset shares no snapshot with \
its replica any more), so the next replication needs a full send; see docs/restore-procedures.md";

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

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// Data was present; nothing touched.
    Skipped,
    /// Restored.
    Restored,
    /// Started empty (allowEmptyBootstrap).
    EmptyBootstrap,
    /// Fail closed: the service must not start.
    Failed,
    /// Dry run: nothing changed.
    DryRun,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Self::Skipped => "skipped",
            Self::Restored => "restored",
            Self::EmptyBootstrap => "empty-bootstrap",
            Self::Failed => "failed",
            Self::DryRun => "dry-run",
        }
    }
}

/// The result of one run (also the status-file line and the `--json` output).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The service.
    pub service: String,
    /// Its dataset.
    pub dataset: String,
    /// What happened.
    pub event: Event,
    /// The source used (or, in a dry run, the one that would be).
    pub source: Option<String>,
    /// The snapshot used.
    pub snapshot: Option<String>,
    /// Why, in one line.
    pub detail: String,
    /// Each source tried, in order.
    pub attempts: Vec<AttemptRecord>,
    /// Anything the operator must do next (full resend after a restic restore).
    pub note: Option<String>,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// One source tried.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// The source.
    pub source: SourceKind,
    /// How it went.
    #[serde(flatten)]
    pub attempt: Attempt,
}

impl Report {
    /// The report with URL passwords and every secret in `secrets` masked in its texts: what is printed,
    /// written to the status file, notified and given to the notify hook.
    #[must_use]
    pub fn redacted(mut self, secrets: &Secrets) -> Self {
        self.detail = secrets.redact(&self.detail);
        self.note = self.note.map(|n| secrets.redact(&n));
        for a in &mut self.attempts {
            let (Attempt::Restored(text) | Attempt::NoBackup(text) | Attempt::Failed(text)) = &mut a.attempt;
            *text = secrets.redact(text);
        }
        self
    }

    /// Whether the service must be kept down.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.event == Event::Failed
    }
}

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
        secrets: preseed.restic.as_ref().map(restic::secrets).unwrap_or_default(),
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

fn source_name(kind: SourceKind) -> String {
    kind.to_string()
}

impl Run<'_> {
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

    /// The replica staging dataset as found (and whether it is mounted).
    fn staging_facts(&self) -> anyhow::Result<(StagingFacts, bool)> {
        let name = decide::staging_dataset(&self.spec.dataset);
        let found = target::read_marks(&self.zfs, &name)?;
        let mounted = found.as_ref().is_some_and(|(_, mounted)| *mounted);
        Ok((StagingFacts::of(found.as_ref().map(|(marks, _)| marks)), mounted))
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
            let (staging, _) = self.staging_facts()?;
            let resume = decide::resume(&facts, &mark, &staging, &self.preseed.ignore);
            if let Resume::Refuse(reason) = &resume {
                return Ok(self.report(Event::Failed, None, None, reason.clone(), Vec::new(), None));
            }
            let what = resume.what();
            if let (Some(what), true) = (what, self.opts.dry_run) {
                return Ok(self.report(Event::DryRun, None, None, format!("would {what}"), Vec::new(), None));
            }
            if let Some(what) = what {
                tracing::warn!(dataset = %self.spec.dataset, "{what}");
            }
            match resume {
                Resume::Settle => return self.replica_report(what.unwrap_or_default(), Vec::new()),
                Resume::SwapIn => {
                    self.replica_swap_in(&facts, &mark)?;
                    return self.replica_report(what.unwrap_or_default(), Vec::new());
                }
                Resume::Unmark => {
                    self.unmark_aside()?;
                    (facts, mountpoint, _) = self.target()?;
                }
                Resume::Nothing | Resume::Refuse(_) => {}
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
                    Some(snapshot) => self.settle_rollback(&snapshot, &reason),
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
    fn chain(&self, mut mountpoint: Option<PathBuf>, mut create: bool, reason: &str) -> anyhow::Result<Report> {
        let mut attempts: Vec<AttemptRecord> = Vec::new();
        let mut done: Option<(SourceKind, String, Option<String>)> = None;
        for &kind in &self.preseed.sources {
            if Instant::now() >= self.deadline {
                let why =
                    format!("the overall timeout ({} s) passed before this source was tried", self.preseed.timeout);
                attempts.push(AttemptRecord { source: kind, attempt: Attempt::Failed(why) });
                continue;
            }
            let deadline = self.source_deadline();
            if kind == SourceKind::Restic && create && !self.opts.dry_run {
                mountpoint = Some(self.create_dataset()?);
                create = false;
            }
            let attempt = match kind {
                SourceKind::Snapshot => self.try_snapshot(mountpoint.as_deref(), deadline),
                SourceKind::Replica => self.try_replica(deadline),
                SourceKind::Restic => self.try_restic(mountpoint.as_deref(), deadline),
            };
            match attempt {
                SourceTry::Would { snapshot, why } => {
                    attempts.push(AttemptRecord { source: kind, attempt: Attempt::Restored(why.clone()) });
                    let detail = format!("{reason}; would restore from {kind}: {why}");
                    return Ok(self.report(
                        Event::DryRun,
                        Some(source_name(kind)),
                        Some(snapshot),
                        detail,
                        attempts,
                        None,
                    ));
                }
                SourceTry::Restored { snapshot, detail, note } => {
                    attempts.push(AttemptRecord { source: kind, attempt: Attempt::Restored(detail.clone()) });
                    done = Some((kind, snapshot, note));
                    break;
                }
                SourceTry::NoBackup(why) => {
                    let why = self.secrets.redact(&why);
                    tracing::info!(source = %kind, "no backup: {why}");
                    attempts.push(AttemptRecord { source: kind, attempt: Attempt::NoBackup(why) });
                }
                SourceTry::Failed(why) => {
                    let why = self.secrets.redact(&why);
                    tracing::error!(source = %kind, "source failed: {why}");
                    attempts.push(AttemptRecord { source: kind, attempt: Attempt::Failed(why) });
                    if !self.opts.dry_run {
                        self.still_untouched(kind, create)?;
                    }
                }
            }
        }
        let pairs: Vec<(SourceKind, Attempt)> = attempts.iter().map(|a| (a.source, a.attempt.clone())).collect();
        match decide::conclude(&pairs, self.preseed.allow_empty_bootstrap) {
            Conclusion::Restored(kind) => {
                let (_, snapshot, note) = done.context("a restored source has its snapshot")?;
                let detail = format!("{reason}; restored from {kind} ({snapshot})");
                Ok(self.report(Event::Restored, Some(source_name(kind)), Some(snapshot), detail, attempts, note))
            }
            Conclusion::Empty if self.opts.dry_run => {
                let detail = format!("{reason}; no source holds a backup: would start empty (allowEmptyBootstrap)");
                Ok(self.report(Event::DryRun, Some("empty".into()), None, detail, attempts, None))
            }
            Conclusion::Empty => {
                if create {
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

    /// Provenance of a rollback, then its mark goes.
    fn record_rollback(&self, snapshot: &str) -> anyhow::Result<()> {
        self.set_provenance("snapshot", snapshot)?;
        self.zfs.inherit(PROP_ROLLING_BACK, &self.spec.dataset, false).map_err(Into::into)
    }

    /// The data is present and the dataset still carries a rollback mark: a killed run rolled back and
    /// did not record it. Recorded now, and reported (and notified) as the restore it was.
    fn settle_rollback(&self, snapshot: &str, reason: &str) -> anyhow::Result<Report> {
        tracing::warn!(dataset = %self.spec.dataset, "recording the rollback to {snapshot} a killed run made");
        self.record_rollback(snapshot)?;
        let detail = format!("{reason}; a killed run had rolled back to {snapshot}: recorded it");
        Ok(self.report(Event::Restored, Some("snapshot".into()), Some(snapshot.to_string()), detail, Vec::new(), None))
    }

    fn has_data(&self, path: &Path) -> Result<bool, String> {
        fsprobe::list_entries(path)
            .map(|entries| entries.iter().any(|e| decide::is_data(e, &self.preseed.ignore)))
            .map_err(|e| format!("{e:#}"))
    }

    fn try_snapshot(&self, mountpoint: Option<&Path>, deadline: Instant) -> SourceTry {
        let Some(mountpoint) = mountpoint else {
            return SourceTry::NoBackup("the dataset does not exist yet, so it has no snapshots".into());
        };
        let snapshots = match self.zfs.snapshots(&self.spec.dataset) {
            Ok(s) => s,
            Err(e) => return SourceTry::Failed(e.to_string()),
        };
        let snapdir = |full: &str| {
            let short = full.rsplit_once('@').map_or(full, |(_, s)| s);
            mountpoint.join(".zfs/snapshot").join(short)
        };
        let (name, why) = match decide::choose_snapshot_among(&snapshots, |n| self.has_data(&snapdir(n))) {
            Probe::NoBackup(why) => return SourceTry::NoBackup(why),
            Probe::Failed(why) => return SourceTry::Failed(why),
            Probe::Use { what, why } => (what, why),
        };
        if self.opts.dry_run {
            return SourceTry::Would { snapshot: name, why };
        }
        match self.unlocked(|| self.verify(&snapdir(&name), deadline)) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return SourceTry::Failed(why),
            Err(e) => return SourceTry::Failed(format!("{e:#}")),
        }
        // Marked first, so a run killed right after the rollback leaves a rerun what to record.
        if let Err(e) = self.zfs.set(&self.spec.dataset, &[(PROP_ROLLING_BACK.to_string(), name.clone())]) {
            return SourceTry::Failed(e.to_string());
        }
        if let Err(e) = self.zfs.rollback(&name) {
            if let Err(unmark) = self.zfs.inherit(PROP_ROLLING_BACK, &self.spec.dataset, false) {
                tracing::error!("{unmark}");
            }
            return SourceTry::Failed(e.to_string());
        }
        // The data is back whatever happens next: a failed property write is reported, not a failed source.
        let note = self.record_rollback(&name).err().map(|e| {
            tracing::error!("{e:#}");
            format!("the data was rolled back but its provenance was not recorded: {e:#}")
        });
        SourceTry::Restored { detail: format!("rolled back to {name}"), snapshot: name, note }
    }

    /// The replica source: the newest snapshot of the syncoid target, received beside the target into a
    /// staging dataset that never mounts on its own, verified at a private mountpoint, then renamed into place.
    fn try_replica(&self, deadline: Instant) -> SourceTry {
        let Some(config) = &self.preseed.replica else {
            return SourceTry::Failed("no replica settings in the config".into());
        };
        let remote = config.host.as_deref().map(|host| self.zfs.over_ssh(host, config.ssh_key.as_deref()));
        let source = remote.as_ref().unwrap_or(&self.zfs);
        let listing = source.snapshots_if_exists(&config.dataset).map_err(|e| e.to_string());
        let count = listing.as_ref().ok().and_then(Option::as_ref).map_or(0, Vec::len);
        let (newest, why) = match decide::choose_replica(&config.dataset, &listing) {
            Probe::NoBackup(why) => return SourceTry::NoBackup(why),
            Probe::Failed(why) => return SourceTry::Failed(why),
            Probe::Use { what, why } => (what, why),
        };
        if self.opts.dry_run {
            return SourceTry::Would { snapshot: newest, why };
        }
        let staging = decide::staging_dataset(&self.spec.dataset);
        match self.receive_replica(source, &newest, count, deadline) {
            Ok(None) => {}
            Ok(Some(SourceTry::NoBackup(why))) => {
                return SourceTry::NoBackup(format!("{why} (the staging dataset {staging} is kept)"));
            }
            Ok(Some(other)) => return other,
            Err(e) => {
                return SourceTry::Failed(format!(
                    "{e:#} (persistctl never destroys a dataset: a staging dataset {staging} it received is kept; \
                     a rerun re-verifies and uses it)"
                ));
            }
        }
        // Verified: from here on a failure is no longer "this source failed" but an interrupted swap that a
        // rerun finishes (the chain then stops: the target is no longer untouched).
        let swapped = (|| -> anyhow::Result<(String, Option<String>)> {
            let (facts, _, mark) = self.target()?;
            self.replica_swap_in(&facts, &mark)?;
            let snapshot = self.settle_replica()?;
            Ok((snapshot, Some(self.replica_note())))
        })();
        match swapped {
            Ok((snapshot, note)) => SourceTry::Restored {
                detail: format!("received replica snapshot {snapshot} beside the target and renamed it into place"),
                snapshot,
                note,
            },
            Err(e) => SourceTry::Failed(format!("{e:#}")),
        }
    }

    /// Receives `newest` into the staging dataset (or reuses the one a killed run received), checks that it
    /// holds data and runs the verify hook on it, then marks it verified. `Ok(Some(..))`: the source's
    /// verdict when it cannot be used; `Ok(None)`: verified.
    fn receive_replica(
        &self,
        source: &Zfs,
        newest: &str,
        count: usize,
        deadline: Instant,
    ) -> anyhow::Result<Option<SourceTry>> {
        let staging = decide::staging_dataset(&self.spec.dataset);
        let (facts, mounted) = self.staging_facts()?;
        match decide::plan_staging(&staging, &facts, newest) {
            StagingPlan::Blocked(why) => return Ok(Some(SourceTry::Failed(why))),
            StagingPlan::Reuse => tracing::warn!("reusing {staging}, received by a killed run from {newest}"),
            StagingPlan::Receive => {
                let props: Vec<(String, String)> = [
                    ("canmount", "noauto"),
                    ("mountpoint", "none"),
                    (PROP_STAGING, "received"),
                    (PROP_STAGING_SNAPSHOT, newest),
                ]
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect();
                tracing::info!("receiving {newest} into {staging}");
                if let Err(e) = self.unlocked(|| source.send_receive(newest, &self.zfs, &staging, &props, deadline))? {
                    return Ok(Some(SourceTry::Failed(e.to_string())));
                }
            }
        }
        if mounted {
            self.zfs.unmount(&staging)?;
        }
        let dir = private_dir()?;
        let checked = (|| -> anyhow::Result<Probe<()>> {
            self.zfs.set(&staging, &[("mountpoint".to_string(), dir.display().to_string())])?;
            self.zfs.mount(&staging)?;
            let probe = decide::replica_content(newest, &self.has_data(&dir), count);
            Ok(match probe {
                Probe::Use { what, why } => match self.unlocked(|| self.verify(&dir, deadline))? {
                    Ok(()) => Probe::Use { what, why },
                    Err(why) => Probe::Failed(why),
                },
                other => other,
            })
        })();
        // Always back to unmounted, mountpoint=none (checked: a failure here fails the source).
        let unmounted = self
            .zfs
            .unmount(&staging)
            .or_else(|e| if self.staging_facts().is_ok_and(|(_, mounted)| !mounted) { Ok(()) } else { Err(e) });
        let reset = unmounted.and_then(|()| self.zfs.set(&staging, &[("mountpoint".into(), "none".into())]));
        if let Err(e) = std::fs::remove_dir(&dir) {
            tracing::warn!("could not remove {}: {e}", dir.display());
        }
        let checked = checked?;
        reset?;
        match checked {
            Probe::Use { .. } => {}
            Probe::NoBackup(why) => return Ok(Some(SourceTry::NoBackup(why))),
            Probe::Failed(why) => return Ok(Some(SourceTry::Failed(why))),
        }
        self.zfs.set(&staging, &[(PROP_STAGING.to_string(), "verified".to_string())])?;
        Ok(None)
    }

    /// Moves the empty target aside (kept, never destroyed) and renames the verified staging dataset into
    /// place. Each step leaves a state a rerun recognises by the datasets' user properties.
    fn replica_swap_in(&self, facts: &DatasetFacts, mark: &TargetMark) -> anyhow::Result<()> {
        let target = &self.spec.dataset;
        let aside = match (facts, mark) {
            (DatasetFacts::Missing, _) => None,
            (_, TargetMark::Aside(name)) => Some(name.clone()),
            _ => {
                let name = decide::aside_dataset(target, &timestamp::utc_stamp(SystemTime::now()));
                self.zfs.set(target, &[(PROP_EMPTY_ASIDE.to_string(), name.clone())])?;
                Some(name)
            }
        };
        if let Some(aside) = &aside {
            if matches!(facts, DatasetFacts::Mounted { .. }) {
                self.zfs.unmount(target)?;
            }
            // Unmounted first, so this mounts nothing; the aside dataset never mounts on its own again.
            self.zfs.set(target, &[("canmount".into(), "noauto".into()), ("mountpoint".into(), "none".into())])?;
            tracing::warn!("moving the empty {target} aside to {aside} (kept: remove it by hand)");
            self.zfs.rename(target, aside)?;
        }
        let staging = decide::staging_dataset(target);
        self.zfs.rename(&staging, target)?;
        Ok(())
    }

    /// The restored dataset is in place: canmount back to its default, properties, mountpoint and root
    /// ownership exactly as `apply` sets them (which mounts it), provenance, then the staging marks go.
    fn settle_replica(&self) -> anyhow::Result<String> {
        let target = &self.spec.dataset;
        let Some((marks, _)) = target::read_marks(&self.zfs, target)? else { bail!("{target} disappeared") };
        let snapshot = decide::settled_snapshot(
            marks.staging_snapshot.as_deref(),
            marks.restored_from.as_deref(),
            marks.restored_snapshot.as_deref(),
        )
        .with_context(|| {
            format!("{target} is marked {PROP_STAGING} but names no replica snapshot ({PROP_STAGING_SNAPSHOT})")
        })?;
        self.zfs.inherit("canmount", target, true)?;
        self.apply_spec()?;
        if matches!(self.facts()?.0, DatasetFacts::NotMounted) {
            self.zfs.mount(target)?;
        }
        match self.facts()? {
            (facts, _) if facts.holds_data(&self.preseed.ignore) == Some(true) => {}
            (DatasetFacts::Mounted { .. }, Some(mp)) => {
                bail!("the restored {target} shows no data at {}", mp.display())
            }
            _ => bail!("the restored {target} is not mounted"),
        }
        self.set_provenance("replica", &snapshot)?;
        self.zfs.inherit(PROP_STAGING_SNAPSHOT, target, false)?;
        self.zfs.inherit(PROP_STAGING, target, false)?;
        Ok(snapshot)
    }

    /// Undoes a mark a killed run left on the empty target when there is no verified staging to swap in.
    fn unmark_aside(&self) -> anyhow::Result<()> {
        let target = &self.spec.dataset;
        self.zfs.inherit("canmount", target, true)?;
        self.apply_spec()?;
        if matches!(self.facts()?.0, DatasetFacts::NotMounted) {
            self.zfs.mount(target)?;
        }
        self.zfs.inherit(PROP_EMPTY_ASIDE, target, false).map_err(Into::into)
    }

    /// The lineage note plus every empty dataset a replica swap moved aside (found by their user property).
    fn replica_note(&self) -> String {
        let parent = &self.validated.config.datasets.parent_dataset;
        let prefix = format!("{}{}", self.spec.dataset, decide::ASIDE_INFIX);
        let asides: Vec<String> = match self.zfs.read_tree(parent, &[PROP_EMPTY_ASIDE]) {
            Ok(TreeRead::Found(tree)) => tree
                .into_iter()
                .filter(|(name, live)| {
                    name.starts_with(&prefix) && target::local_value(live, PROP_EMPTY_ASIDE).is_some()
                })
                .map(|(name, _)| name)
                .collect(),
            Ok(TreeRead::Missing) => Vec::new(),
            Err(e) => {
                tracing::error!("could not look for datasets moved aside: {e}");
                vec![format!("(unknown: {e})")]
            }
        };
        if asides.is_empty() {
            return REPLICA_LINEAGE_NOTE.to_string();
        }
        format!(
            "{REPLICA_LINEAGE_NOTE}. The empty dataset that was in place is kept as {} (canmount=noauto, \
             mountpoint=none); remove it when satisfied: zfs destroy <name>",
            asides.join(", ")
        )
    }

    /// The report of a replica restore finished on a rerun.
    fn replica_report(&self, what: &str, attempts: Vec<AttemptRecord>) -> anyhow::Result<Report> {
        let snapshot = self.settle_replica()?;
        let detail = format!("{what}: restored from replica ({snapshot})");
        let note = Some(self.replica_note());
        Ok(self.report(Event::Restored, Some("replica".into()), Some(snapshot), detail, attempts, note))
    }

    fn restic_config(&self) -> Result<&ResticConfig, String> {
        self.preseed.restic.as_ref().ok_or_else(|| "no restic settings in the config".to_string())
    }

    fn try_restic(&self, mountpoint: Option<&Path>, deadline: Instant) -> SourceTry {
        let config = match self.restic_config() {
            Ok(c) => c,
            Err(why) => return SourceTry::Failed(why),
        };
        let restic = match Restic::new(config) {
            Ok(r) => r,
            Err(e) => return SourceTry::Failed(format!("{e:#}")),
        };
        let tags = if config.tags.is_empty() { vec![self.spec.service.clone()] } else { config.tags.clone() };
        let listing =
            match self.unlocked(|| restic.snapshots(&tags, config.path.as_deref(), config.host.as_deref(), deadline)) {
                Ok(listing) => listing,
                Err(e) => return SourceTry::Failed(format!("{e:#}")),
            };
        let (snap, why) = match decide::choose_restic(&listing) {
            Probe::NoBackup(why) => return SourceTry::NoBackup(why),
            Probe::Failed(why) => return SourceTry::Failed(why),
            Probe::Use { what, why } => (what, why),
        };
        if self.opts.dry_run {
            return SourceTry::Would { snapshot: snap.id, why };
        }
        let Some(mountpoint) = mountpoint else {
            return SourceTry::Failed("the dataset is not mounted".into());
        };
        match self.restore_restic(&restic, config, &snap, mountpoint, deadline) {
            Ok(()) => SourceTry::Restored {
                detail: format!("restored restic snapshot {} ({})", snap.short_id(), snap.time),
                snapshot: snap.id,
                note: Some(LINEAGE_NOTE.to_string()),
            },
            Err(e) => SourceTry::Failed(format!("{e:#}")),
        }
    }

    fn restore_restic(
        &self,
        restic: &Restic,
        config: &ResticConfig,
        snap: &ResticSnapshot,
        mountpoint: &Path,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let path = config.path.clone().unwrap_or_else(|| self.spec.mountpoint.clone());
        if !restic::is_literal_pattern(&path) {
            bail!("restic path {path:?} contains a pattern character (* ? [ ] \\); restic cannot select it literally");
        }
        let staging = staging::create(mountpoint, "restic")?;
        let data_root = staging::data_root_for(&path);
        let staged = self
            .unlocked(|| -> anyhow::Result<()> {
                restic.restore(&snap.id, &path, &staging.join("data"), deadline)?;
                let root = staging.join(&data_root);
                if !std::fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir()) {
                    bail!("restic snapshot {} does not contain the directory {path}", snap.short_id());
                }
                if !self.has_data(&root).map_err(anyhow::Error::msg)? {
                    bail!("restic snapshot {} holds nothing at {path}", snap.short_id());
                }
                self.verify(&root, deadline).map_err(anyhow::Error::msg)?;
                staging::sync_filesystem(&staging)
            })
            .and_then(|staged| staged);
        if let Err(e) = staged {
            if let Err(cleanup) = staging::remove(&staging) {
                tracing::error!("{cleanup:#}");
            }
            return Err(e);
        }
        let journal = SwapJournal { source: "restic".into(), snapshot: snap.id.clone(), data_root };
        staging::write_journal(&staging, &journal)?;
        self.swap(mountpoint, &staging, &journal)
    }

    fn swap(&self, mountpoint: &Path, staging: &Path, journal: &SwapJournal) -> anyhow::Result<()> {
        provenance::swap_and_record(&self.zfs, self.spec, &self.preseed.ignore, mountpoint, staging, journal)
    }

    fn finish_swap(&self, mountpoint: &Path, staging: &Path, attempts: Vec<AttemptRecord>) -> anyhow::Result<Report> {
        let journal = staging::read_journal(staging)?;
        self.swap(mountpoint, staging, &journal)?;
        let note = (journal.source == "restic").then(|| LINEAGE_NOTE.to_string());
        let detail = format!(
            "finished the swap of {} snapshot {} that a killed run had verified",
            journal.source, journal.snapshot
        );
        Ok(self.report(Event::Restored, Some(journal.source.clone()), Some(journal.snapshot), detail, attempts, note))
    }

    /// Runs `verifyCommand` with the staged path appended. `Err`: why the source is rejected.
    fn verify(&self, path: &Path, deadline: Instant) -> Result<(), String> {
        let Some(argv) = &self.preseed.verify_command else { return Ok(()) };
        let Some((program, rest)) = argv.split_first() else { return Ok(()) };
        let mut cmd = Command::new(program);
        child::scrub_env(&mut cmd);
        cmd.args(rest).arg(path);
        match child::run(cmd, None, deadline) {
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

    /// Appends the status line, sends the notification and calls the notify hook; failures are logged,
    /// never change the result.
    fn record(&self, report: &Report) {
        if let Err(e) = append_status(&self.opts.status_file, report) {
            tracing::error!("{e:#}");
        }
        if let Some((template, vars)) = notification(report, self.started.elapsed()) {
            let config = self.validated.config.notifications.as_ref();
            let budget = config.map_or(Duration::ZERO, notify::worst_case).min(NOTIFICATION_BUDGET);
            let sent = notify::send_logged(config, template, &vars, budget);
            if config.is_some() && !sent.delivered() && sent.skipped.is_none() {
                tracing::error!("notification {template} was not delivered to every backend (the result stands)");
            }
        }
        notify(&self.opts.notify_command, report);
    }
}

/// A fresh private (0700) directory to mount a staging dataset at for verification.
fn private_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("persistctl-verify-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("Failed to create the verification mountpoint {}", dir.display()))?;
    Ok(dir)
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

/// How one source went, before the conclusion.
enum SourceTry {
    Would { snapshot: String, why: String },
    Restored { snapshot: String, detail: String, note: Option<String> },
    NoBackup(String),
    Failed(String),
}

/// Appends one JSON line to the status file (creating its directory), made 0600 (an older one too):
/// its details quote what sources and hooks said, and only root (`persistctl status`) reads it. A symlink
/// or anything but a regular file there is refused, never written through.
pub fn append_status(path: &Path, report: &Report) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
    }
    let mut line = serde_json::to_vec(report).context("Failed to render the status line")?;
    line.push(b'\n');
    crate::safe_write::append_no_follow(path, &line, crate::status::render::PRIVATE_MODE)
        .context("Failed to append to the preseed status file")
}

/// The built-in template and its variables for a run's outcome (`None` for a dry run).
#[must_use]
pub fn notification(report: &Report, duration: Duration) -> Option<(&'static str, notify::Vars)> {
    let template = match report.event {
        Event::Restored => "preseed-success",
        Event::Skipped => "preseed-skipped",
        Event::Failed => "preseed-failure",
        Event::EmptyBootstrap => "preseed-empty-bootstrap",
        Event::DryRun => return None,
    };
    let mut vars = notify::Vars::new();
    vars.insert("serviceName".into(), report.service.clone());
    vars.insert("dataset".into(), report.dataset.clone());
    vars.insert("duration".into(), format!("{} s", duration.as_secs()));
    if let Some(source) = &report.source {
        vars.insert("restoreSource".into(), source.clone());
    }
    if let Some(snapshot) = &report.snapshot {
        vars.insert("snapshot".into(), snapshot.clone());
    }
    if let Some(note) = &report.note {
        vars.insert("note".into(), note.clone());
    }
    if report.event == Event::Failed {
        vars.insert("errorMessage".into(), report.detail.clone());
    }
    Some((template, vars))
}

/// The notify hook's arguments after its argv prefix: the event, then `key=value` pairs.
#[must_use]
pub fn notify_args(report: &Report) -> Vec<String> {
    let mut args = vec![
        format!("preseed-{}", report.event.name()),
        format!("service={}", report.service),
        format!("dataset={}", report.dataset),
    ];
    if let Some(source) = &report.source {
        args.push(format!("source={source}"));
    }
    if let Some(snapshot) = &report.snapshot {
        args.push(format!("snapshot={snapshot}"));
    }
    args.push(format!("message={}", report.detail));
    if let Some(note) = &report.note {
        args.push(format!("note={note}"));
    }
    args
}

fn notify(prefix: &[String], report: &Report) {
    let Some((program, fixed)) = prefix.split_first() else { return };
    let mut cmd = Command::new(program);
    child::scrub_env(&mut cmd);
    cmd.args(fixed).args(notify_args(report));
    match child::run(cmd, None, Instant::now() + NOTIFY_TIMEOUT) {
        Ok(done) if done.status.success() => {}
        Ok(done) => tracing::error!("notify command failed (exit {:?}): {}", done.status.code(), done.stderr_text()),
        Err(e) => tracing::error!("notify command: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_template_and_variables() {
        let mut report = Report {
            service: "my app".into(),
            dataset: "tank/persist/my app".into(),
            event: Event::Restored,
            source: Some("replica".into()),
            snapshot: Some("b/r@s".into()),
            detail: "restored".into(),
            attempts: vec![],
            note: Some("lineage kept".into()),
            at: "x".into(),
        };
        let (template, vars) = notification(&report, Duration::from_secs(75)).unwrap();
        assert_eq!(template, "preseed-success");
        assert_eq!(vars["serviceName"], "my app");
        assert_eq!(vars["restoreSource"], "replica");
        assert_eq!(vars["snapshot"], "b/r@s");
        assert_eq!(vars["duration"], "75 s");
        assert_eq!(vars["note"], "lineage kept");
        assert!(!vars.contains_key("errorMessage"));
        for (event, want) in [
            (Event::Skipped, "preseed-skipped"),
            (Event::EmptyBootstrap, "preseed-empty-bootstrap"),
            (Event::Failed, "preseed-failure"),
        ] {
            report.event = event;
            assert_eq!(notification(&report, Duration::ZERO).unwrap().0, want);
        }
        assert_eq!(notification(&report, Duration::ZERO).unwrap().1["errorMessage"], "restored");
        report.event = Event::DryRun;
        assert!(notification(&report, Duration::ZERO).is_none());
    }

    #[test]
    fn notify_arguments_carry_event_and_keys() {
        let report = Report {
            service: "my app".into(),
            dataset: "tank/persist/my app".into(),
            event: Event::Restored,
            source: Some("restic".into()),
            snapshot: Some("abc".into()),
            detail: "restored".into(),
            attempts: vec![],
            note: Some("full send".into()),
            at: "x".into(),
        };
        assert_eq!(
            notify_args(&report),
            [
                "preseed-restored",
                "service=my app",
                "dataset=tank/persist/my app",
                "source=restic",
                "snapshot=abc",
                "message=restored",
                "note=full send"
            ]
        );
    }
}
