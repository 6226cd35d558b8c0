//! `persistctl preseed SERVICE`: restore a service's missing data before it starts, and never let it
//! start on nothing.
//!
//! The shell here gathers facts (the dataset, its entries, its snapshots, restic's listing), asks the
//! pure [`decide`] functions what to do, and does it: roll back, or restore into a staging directory on
//! the dataset, verify, and swap in by `rename(2)` ([`staging`]). Every source's failure is recorded;
//! only "every source answered: no backup" plus `allowEmptyBootstrap` lets the service start empty.

pub mod child;
pub mod decide;
pub mod staging;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::apply;
use crate::config::{DatasetSpec, PreseedConfig, ResticConfig, SourceKind, Validated};
use crate::lock;
use crate::restic::{self, Restic, ResticSnapshot};
use crate::zfs::{TreeRead, Zfs, props};
use decide::{Attempt, Conclusion, DatasetFacts, Probe, STAGING_PREFIX, Start};
use staging::{CopyOwnership, SwapJournal};

/// The default status file: one JSON object per line, one line per run that did something.
pub const DEFAULT_STATUS_FILE: &str = "/var/lib/persistctl/preseed.json";

/// How long a notify hook may run.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Whether the service must be kept down.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.event == Event::Failed
    }
}

/// Formats a time as RFC 3339 UTC (`2024-05-01T12:00:00Z`).
#[must_use]
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil_from_days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

struct Run<'a> {
    zfs: Zfs,
    validated: &'a Validated,
    spec: &'a DatasetSpec,
    preseed: &'a PreseedConfig,
    opts: &'a Options,
    deadline: Instant,
}

/// Runs `preseed` for one service. An `Err` is an error before any decision (bad service name, ...);
/// a fail-closed decision is an `Ok` report with [`Event::Failed`]. Either way the caller exits non-zero.
pub fn run(validated: &Validated, opts: &Options) -> anyhow::Result<Report> {
    let spec = validated
        .specs
        .iter()
        .find(|s| s.service == opts.service)
        .with_context(|| format!("Service {:?} is not in the config", opts.service))?;
    let preseed = validated
        .config
        .datasets
        .services
        .get(&opts.service)
        .and_then(|s| s.preseed.as_ref())
        .filter(|p| p.enable)
        .with_context(|| format!("preseed is not enabled for service {:?}", opts.service))?;
    let _guard = if opts.dry_run { None } else { Some(lock::acquire(&opts.lock_path, opts.lock_timeout)?) };
    let run = Run {
        zfs: Zfs::new(),
        validated,
        spec,
        preseed,
        opts,
        deadline: Instant::now() + Duration::from_secs(preseed.timeout),
    };
    let report = match run.execute() {
        Ok(report) => report,
        Err(e) => run.report(Event::Failed, None, None, format!("{e:#}"), Vec::new(), None),
    };
    if !opts.dry_run {
        run.record(&report);
    }
    Ok(report)
}

fn source_name(kind: SourceKind) -> String {
    kind.to_string()
}

impl Run<'_> {
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
            at: rfc3339_utc(SystemTime::now()),
        }
    }

    /// The dataset as it is now; the mountpoint when mounted.
    fn facts(&self) -> anyhow::Result<(DatasetFacts, Option<PathBuf>)> {
        let tree = self.zfs.get_tree(&self.spec.dataset)?;
        let TreeRead::Found(tree) = tree else { return Ok((DatasetFacts::Missing, None)) };
        let Some(live) = tree.get(&self.spec.dataset) else { return Ok((DatasetFacts::Missing, None)) };
        let mountpoint = live.value("mountpoint").filter(|mp| mp.starts_with('/'));
        let (true, Some(mountpoint)) = (live.is_mounted(), mountpoint) else {
            return Ok((DatasetFacts::NotMounted, None));
        };
        let mountpoint = PathBuf::from(props::canonical_live("mountpoint", mountpoint));
        let entries = staging::list_entries(&mountpoint)?;
        let complete_staging = entries
            .iter()
            .filter(|e| e.starts_with(STAGING_PREFIX) && staging::is_complete(&mountpoint.join(e)))
            .cloned()
            .collect();
        Ok((DatasetFacts::Mounted { entries, complete_staging }, Some(mountpoint)))
    }

    fn execute(&self) -> anyhow::Result<Report> {
        let (facts, mountpoint) = self.facts()?;
        match decide::start(&facts, &self.preseed.ignore) {
            Start::Skip { reason } => Ok(self.report(Event::Skipped, None, None, reason, Vec::new(), None)),
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
                let mut mountpoint = mountpoint;
                if !self.opts.dry_run {
                    if let Some(mp) = &mountpoint {
                        for name in &stale_staging {
                            tracing::warn!("removing unverified staging {name} left by a killed run");
                            staging::remove(&mp.join(name))?;
                        }
                    }
                    if create {
                        mountpoint = Some(self.create_dataset()?);
                    }
                }
                self.chain(mountpoint.as_deref(), &reason)
            }
        }
    }

    /// Creates the dataset exactly as `apply` would (only this service's spec), then checks it is mounted and empty.
    fn create_dataset(&self) -> anyhow::Result<PathBuf> {
        let mut one = self.validated.clone();
        one.specs.retain(|s| s.service == self.spec.service);
        let plan = apply::make_plan(&self.zfs, &one)?;
        if plan.has_skipped() {
            bail!("the pool of {} is not imported; cannot create {}", plan.parent_dataset, self.spec.dataset);
        }
        if plan.has_problems() {
            let problems: Vec<String> = plan
                .parent_problems
                .iter()
                .chain(plan.datasets.iter().flat_map(|d| d.problems.iter()))
                .cloned()
                .collect();
            bail!("cannot create {}: {}", self.spec.dataset, problems.join("; "));
        }
        let report = apply::execute(&self.zfs, plan);
        if report.has_failures() {
            bail!("Failed to create {} (see the errors above)", self.spec.dataset);
        }
        match self.facts()? {
            (DatasetFacts::Mounted { entries, .. }, Some(mp)) => {
                if entries.iter().any(|e| decide::is_data(e, &self.preseed.ignore)) {
                    bail!("the new dataset {} is not empty at {}", self.spec.dataset, mp.display());
                }
                Ok(mp)
            }
            _ => bail!("the new dataset {} is not mounted", self.spec.dataset),
        }
    }

    fn source_deadline(&self) -> Instant {
        let per = self.preseed.source_timeout.unwrap_or(self.preseed.timeout);
        (Instant::now() + Duration::from_secs(per)).min(self.deadline)
    }

    /// Tries the sources in order.
    fn chain(&self, mountpoint: Option<&Path>, reason: &str) -> anyhow::Result<Report> {
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
            let attempt = match kind {
                SourceKind::Snapshot => self.try_snapshot(mountpoint, deadline),
                SourceKind::Replica => {
                    SourceTry::Failed("the replica source is not implemented in this persistctl yet".into())
                }
                SourceKind::Restic => self.try_restic(mountpoint, deadline),
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
                    tracing::info!(source = %kind, "no backup: {why}");
                    attempts.push(AttemptRecord { source: kind, attempt: Attempt::NoBackup(why) });
                }
                SourceTry::Failed(why) => {
                    tracing::error!(source = %kind, "source failed: {why}");
                    attempts.push(AttemptRecord { source: kind, attempt: Attempt::Failed(why) });
                    if !self.opts.dry_run && mountpoint.is_some() {
                        self.still_untouched(kind)?;
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
    fn still_untouched(&self, kind: SourceKind) -> anyhow::Result<()> {
        match self.facts()? {
            (DatasetFacts::Mounted { entries, complete_staging }, _)
                if complete_staging.is_empty() && !entries.iter().any(|e| decide::is_data(e, &self.preseed.ignore)) =>
            {
                Ok(())
            }
            _ => bail!(
                "the {kind} source failed after it had changed the dataset; not trying further sources \
                 (rerun persistctl preseed to finish or clean up)"
            ),
        }
    }

    fn set_provenance(&self, source: &str, snapshot: &str) -> anyhow::Result<()> {
        let props = [
            ("persistctl:restored-from".to_string(), source.to_string()),
            ("persistctl:restored-at".to_string(), rfc3339_utc(SystemTime::now())),
            ("persistctl:restored-snapshot".to_string(), snapshot.to_string()),
        ];
        self.zfs.set(&self.spec.dataset, &props).context("Failed to record where the data came from")
    }

    fn has_data(&self, path: &Path) -> Result<bool, String> {
        staging::list_entries(path)
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
        let newest = snapshots.last().map(|n| (n.as_str(), self.has_data(&snapdir(n))));
        let older_with_data = match &newest {
            Some((_, Ok(false))) => {
                snapshots.iter().rev().skip(1).find(|n| self.has_data(&snapdir(n)) == Ok(true)).map(String::as_str)
            }
            _ => None,
        };
        let probe = decide::choose_snapshot(newest.as_ref().map(|(n, r)| (*n, r)), older_with_data);
        let (name, why) = match probe {
            Probe::NoBackup(why) => return SourceTry::NoBackup(why),
            Probe::Failed(why) => return SourceTry::Failed(why),
            Probe::Use { what, why } => (what, why),
        };
        if self.opts.dry_run {
            return SourceTry::Would { snapshot: name, why };
        }
        if let Err(why) = self.verify(&snapdir(&name), deadline) {
            return SourceTry::Failed(why);
        }
        if let Err(e) = self.zfs.rollback(&name) {
            return SourceTry::Failed(e.to_string());
        }
        // The data is back whatever happens next: a failed property write is reported, not a failed source.
        let note = self.set_provenance("snapshot", &name).err().map(|e| {
            tracing::error!("{e:#}");
            format!("the data was rolled back but its provenance was not recorded: {e:#}")
        });
        SourceTry::Restored { detail: format!("rolled back to {name}"), snapshot: name, note }
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
        let listing = restic.snapshots(&tags, config.path.as_deref(), config.host.as_deref(), deadline);
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
        let data_root = Path::new("data").join(path.trim_start_matches('/'));
        let staged = (|| -> anyhow::Result<()> {
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
        })();
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
        let own = &self.spec.ownership;
        let copy = CopyOwnership { owner: own.owner.is_none(), group: own.group.is_none(), mode: own.mode.is_none() };
        let moved = staging::swap_in(mountpoint, staging, journal, &self.preseed.ignore, copy)?;
        tracing::info!("moved {moved} entries into {}", mountpoint.display());
        self.set_provenance(&journal.source, &journal.snapshot)?;
        staging::remove(staging)
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
        cmd.args(rest).arg(path);
        match child::run(cmd, deadline) {
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

    /// Appends the status line and calls the notify hook; failures are logged, never change the result.
    fn record(&self, report: &Report) {
        if let Err(e) = append_status(&self.opts.status_file, report) {
            tracing::error!("{e:#}");
        }
        notify(&self.opts.notify_command, report);
    }
}

/// How one source went, before the conclusion.
enum SourceTry {
    Would { snapshot: String, why: String },
    Restored { snapshot: String, detail: String, note: Option<String> },
    NoBackup(String),
    Failed(String),
}

/// Appends one JSON line to the status file (creating its directory).
pub fn append_status(path: &Path, report: &Report) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
    }
    let mut line = serde_json::to_vec(report).context("Failed to render the status line")?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("Failed to open status file {}", path.display()))?;
    file.write_all(&line).with_context(|| format!("Failed to append to status file {}", path.display()))
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
    cmd.args(fixed).args(notify_args(report));
    match child::run(cmd, Instant::now() + NOTIFY_TIMEOUT) {
        Ok(done) if done.status.success() => {}
        Ok(done) => tracing::error!("notify command failed (exit {:?}): {}", done.status.code(), done.stderr_text()),
        Err(e) => tracing::error!("notify command: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_rfc3339_utc() {
        let at = |secs| rfc3339_utc(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(at(1_714_564_800 + 3661), "2024-05-01T13:01:01Z");
        assert_eq!(restic::parse_rfc3339(&at(1_709_164_799)), Some(1_709_164_799_000_000_000));
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
