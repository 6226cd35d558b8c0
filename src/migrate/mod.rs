//! `persistctl migrate SERVICE --from PATH`: moves a service's existing data into its declared dataset
//! (seed phases 2.3 and 3.4, done safely), from a directory elsewhere (`/persist/var/lib/sonarr` into
//! `tank/persist/sonarr`) or from the very directory the dataset is to be mounted on (in place).
//!
//! Never destroys and never overwrites: the old data is kept (in place: renamed to
//! `<path>.persistctl-migrated`), a dataset that already holds other data is refused, and a directory
//! any process is using is refused. The copy (`cp -a`) lands in a staging directory on the dataset, is
//! compared with its source entry by entry and byte by byte, then swapped in with preseed's journaled
//! rename swap, so a `kill -9` anywhere leaves a state that a rerun (of `migrate`, or a `preseed` at
//! boot) finishes. Provenance: `persistctl:restored-from=migrate`, `persistctl:restored-snapshot=<PATH>`.

pub mod compare;
pub mod copy;
pub use persistctl_core::migrate::decide;

use crate::busy;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::apply;
use crate::config::{DatasetSpec, Validated};
use crate::lock;
use crate::staging::{self, SwapJournal};
use crate::target::{self, Place, Root, is_data};
use crate::zfs::Zfs;
use crate::{fsprobe, provenance};
use decide::{Decision, Entry, Found, SOURCE_NAME, Target};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The service (a key of `datasets.services`).
    pub service: String,
    /// Where its data is now.
    pub from: PathBuf,
    /// Say what would happen; change nothing.
    pub dry_run: bool,
    /// The lock shared with `apply` and `preseed`.
    pub lock_path: PathBuf,
    /// The zfs runner.
    pub zfs: Zfs,
    /// How long to wait for it.
    pub lock_timeout: Duration,
    /// How long the copy may take.
    pub timeout: Duration,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// The data was copied, checked and swapped in.
    Migrated,
    /// The dataset already held this migration's data.
    AlreadyMigrated,
    /// Dry run: nothing changed.
    DryRun,
    /// Refused or failed; see the detail.
    Failed,
}

/// The result (also the `--json` output).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The service.
    pub service: String,
    /// Its dataset.
    pub dataset: String,
    /// `--from`.
    pub from: PathBuf,
    /// What happened.
    pub event: Event,
    /// One line.
    pub detail: String,
    /// Entries copied and checked.
    pub entries: Option<u64>,
    /// Bytes of regular files copied and checked.
    pub bytes: Option<u64>,
    /// Where the old data is kept.
    pub kept: Option<PathBuf>,
    /// What to do next.
    pub note: Option<String>,
}

impl Report {
    /// Whether the command must exit non-zero.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.event == Event::Failed
    }
}

/// Runs one migration. `Err` only for a bad invocation (unknown service); every other failure is a
/// `Failed` report, and nothing was changed that a rerun does not finish.
///
/// # Errors
/// The service is not in the config.
pub fn run(validated: &Validated, opts: &Options) -> anyhow::Result<Report> {
    let spec = validated.spec(&opts.service)?;
    let ignore = validated.preseed(&opts.service).map_or_else(|| vec!["lost+found".to_string()], |p| p.ignore.clone());
    let opts = &Options { from: plain_path(&opts.from), ..opts.clone() };
    let run = Run { zfs: opts.zfs.clone(), validated, spec, opts, ignore };
    // The dataset is ours for the whole run (a copy may take hours); the global lock only around ZFS changes.
    let own = if opts.dry_run {
        Ok(None)
    } else {
        lock::acquire(&lock::dataset_lock_path(&opts.lock_path, &spec.dataset), opts.lock_timeout).map(Some)
    };
    Ok(own.and_then(|_own| run.execute()).unwrap_or_else(|e| run.report(Event::Failed, format!("{e:#}"))))
}

struct Run<'a> {
    zfs: Zfs,
    validated: &'a Validated,
    spec: &'a DatasetSpec,
    opts: &'a Options,
    ignore: Vec<String>,
}

/// The dataset as read: what `decide` needs, its mountpoint when mounted, staging left on it.
struct Read {
    target: Target,
    mountpoint: Option<PathBuf>,
    complete_staging: Vec<String>,
    stale_staging: Vec<String>,
}

impl Run<'_> {
    fn report(&self, event: Event, detail: String) -> Report {
        Report {
            service: self.spec.service.clone(),
            dataset: self.spec.dataset.clone(),
            from: self.opts.from.clone(),
            event,
            detail,
            entries: None,
            bytes: None,
            kept: None,
            note: None,
        }
    }

    fn read(&self) -> anyhow::Result<Read> {
        let none = |target| Read { target, mountpoint: None, complete_staging: Vec::new(), stale_staging: Vec::new() };
        let found = target::read(&self.zfs, &self.spec.dataset)?;
        let root = match found.place {
            Place::Missing => return Ok(none(Target::Missing)),
            Place::NotMounted { .. } => return Ok(none(Target::NotMounted)),
            Place::Mounted(root) => root,
        };
        let has_data = root.entries.iter().any(|e| is_data(e, &self.ignore));
        let target = Target::Mounted { has_data, provenance: found.marks.provenance() };
        let Root { mountpoint, complete_staging, stale_staging, .. } = root;
        Ok(Read { target, mountpoint: Some(mountpoint), complete_staging, stale_staging })
    }

    fn execute(&self) -> anyhow::Result<Report> {
        let from = &self.opts.from;
        let wanted = Path::new(&self.spec.mountpoint);
        decide::check_paths(from, wanted).map_err(anyhow::Error::msg)?;
        let in_place = from == wanted;
        let aside = decide::aside_of(from);
        let read = self.read()?;
        // A killed run's verified copy, swap begun: finished before anything is judged (the entries it
        // already moved in look like data that is not this migration's until provenance is written).
        if let (Some(name), Some(mountpoint)) = (read.complete_staging.first(), read.mountpoint.as_deref()) {
            let journal = staging::read_journal(&mountpoint.join(name))?;
            if journal.source == SOURCE_NAME && Path::new(&journal.snapshot) == from.as_path() {
                if self.opts.dry_run {
                    let detail =
                        format!("would finish the swap a killed run left in {}", mountpoint.join(name).display());
                    return Ok(self.report(Event::DryRun, detail));
                }
                let _guard = lock::acquire(&self.opts.lock_path, self.opts.lock_timeout)?;
                let source = if in_place { aside } else { from.clone() };
                return self.finish(mountpoint, &mountpoint.join(name), &source);
            }
        }
        let found = Found { from: entry(from)?, aside: entry(&aside)?, target: read.target.clone() };
        let (source, rename_aside) = match decide::decide(from, in_place, &found) {
            Decision::Done if read.complete_staging.is_empty() && read.stale_staging.is_empty() => {
                return Ok(self.done());
            }
            Decision::Done => return self.tidy(&read),
            Decision::Refuse { reason } => return Ok(self.report(Event::Failed, reason)),
            Decision::Copy { source, rename_aside } => (source, rename_aside),
        };
        let current = if rename_aside { from } else { &source };
        if !fsprobe::list_entries(current)?.iter().any(|e| is_data(e, &self.ignore)) {
            return Ok(self.report(
                Event::Failed,
                format!("{} holds no data; nothing to migrate (is --from the right path?)", current.display()),
            ));
        }
        let in_use = busy::users_of(current);
        if !in_use.is_empty() {
            let users: Vec<String> = in_use.iter().take(5).map(ToString::to_string).collect();
            return Ok(self.report(
                Event::Failed,
                format!(
                    "{} is in use ({}); stop the service first (systemctl stop {}), then rerun",
                    current.display(),
                    users.join("; "),
                    self.spec.service
                ),
            ));
        }
        if self.opts.dry_run {
            let how = if rename_aside {
                format!(
                    "would move {} aside to {}, then create the dataset there and copy",
                    from.display(),
                    aside.display()
                )
            } else {
                format!(
                    "would copy {} into {} (created or mounted as apply would)",
                    source.display(),
                    self.spec.dataset
                )
            };
            return Ok(self.report(Event::DryRun, how));
        }
        let _guard = lock::acquire(&self.opts.lock_path, self.opts.lock_timeout)?;
        if rename_aside {
            tracing::warn!("moving {} aside to {} (kept)", from.display(), aside.display());
            // RENAME_NOREPLACE: whatever is already at the aside name is never replaced.
            crate::safe_write::rename_no_replace(nix::fcntl::AT_FDCWD, from, nix::fcntl::AT_FDCWD, &aside)
                .with_context(|| format!("Failed to rename {} to {}", from.display(), aside.display()))?;
            sync_parent(&aside)?;
        }
        let read = self.set_up_target()?;
        let Some(mountpoint) = read.mountpoint.clone() else {
            bail!("{} is not mounted after apply", self.spec.dataset);
        };
        if let Some(name) = read.complete_staging.first() {
            return self.finish(&mountpoint, &mountpoint.join(name), &source);
        }
        match &read.target {
            Target::Mounted { has_data: true, provenance } => {
                let ours = provenance.as_ref().is_some_and(|(by, p)| by == SOURCE_NAME && Path::new(p) == from);
                if ours {
                    return Ok(self.done());
                }
                bail!("{} holds data once mounted; nothing is copied over it (check it by hand)", self.spec.dataset);
            }
            Target::Mounted { .. } => {}
            _ => bail!("{} is not mounted after apply", self.spec.dataset),
        }
        for name in &read.stale_staging {
            tracing::warn!("removing unverified staging {name} left by a killed run");
            staging::remove(&mountpoint.join(name))?;
        }
        self.copy_in(&mountpoint, &source)
    }

    /// Creates or sets up the dataset exactly as `apply` would, mounted; reads it back.
    fn set_up_target(&self) -> anyhow::Result<Read> {
        apply::apply_service(&self.zfs, self.validated, &self.spec.service)?;
        let mut read = self.read()?;
        if read.target == Target::NotMounted {
            // `apply` never mounts an existing dataset; a run killed inside `zfs create` (which creates,
            // then mounts) leaves one. Mounted here, and only on a free path: nothing is ever hidden.
            let wanted = Path::new(&self.spec.mountpoint);
            let why = "created but not mounted by a killed run";
            if !target::mount_where_free(&self.zfs, &self.spec.dataset, wanted, why, false)? {
                bail!("{} is not mounted and {} is not an empty directory", self.spec.dataset, wanted.display());
            }
            read = self.read()?;
        }
        Ok(read)
    }

    /// Copies `source` into a staging directory, compares, journals, swaps in.
    fn copy_in(&self, mountpoint: &Path, source: &Path) -> anyhow::Result<Report> {
        let staging = staging::create(mountpoint, SOURCE_NAME)?;
        let data = staging.join("data");
        let deadline = crate::child::deadline_in(self.opts.timeout);
        let checked = copy::copy_tree(source, &data, deadline).and_then(|()| {
            tracing::info!("comparing the copy with {}", source.display());
            compare::compare(source, &data)
        });
        let comparison = match checked {
            Ok(c) if c.differences.is_empty() => c,
            other => {
                if let Err(e) = staging::remove(&staging) {
                    tracing::error!("{e:#}");
                }
                return match other {
                    Ok(c) => Ok(self.report(
                        Event::Failed,
                        format!(
                            "the copy of {} differs from it (is something still writing to it?); nothing was \
                             swapped in: {}",
                            source.display(),
                            c.differences.join("; ")
                        ),
                    )),
                    Err(e) => Err(e),
                };
            }
        };
        staging::sync_filesystem(&staging)?;
        let journal = SwapJournal {
            source: SOURCE_NAME.into(),
            snapshot: self.opts.from.display().to_string(),
            data_root: PathBuf::from("data"),
        };
        staging::write_journal(&staging, &journal)?;
        self.swap(mountpoint, &staging, &journal)?;
        let mut report = self.migrated(source, format!("copied and checked {}, then swapped it in", source.display()));
        report.entries = Some(comparison.entries);
        report.bytes = Some(comparison.bytes);
        Ok(report)
    }

    /// The data is in, but staging is left beside it: an unverified one of ours (removed) or a verified
    /// one that is not this migration's (`finish` refuses it and names `preseed`). Our own verified
    /// staging never gets here: `execute` finishes it first.
    fn tidy(&self, read: &Read) -> anyhow::Result<Report> {
        let mountpoint = read.mountpoint.as_deref().context("a dataset with data is mounted")?;
        if let Some(name) = read.complete_staging.first() {
            return self.finish(mountpoint, &mountpoint.join(name), &self.opts.from);
        }
        if self.opts.dry_run {
            return Ok(self.report(Event::DryRun, "would remove the staging a killed run left".into()));
        }
        let _guard = lock::acquire(&self.opts.lock_path, self.opts.lock_timeout)?;
        for name in &read.stale_staging {
            tracing::warn!("removing staging {name} that a killed run left");
            staging::remove(&mountpoint.join(name))?;
        }
        Ok(self.done())
    }

    /// A killed run had verified its copy and begun the swap: finish it.
    fn finish(&self, mountpoint: &Path, staging: &Path, source: &Path) -> anyhow::Result<Report> {
        let journal = staging::read_journal(staging)?;
        if journal.source != SOURCE_NAME || Path::new(&journal.snapshot) != self.opts.from {
            bail!(
                "{} holds a {} restore of {} that a killed run was swapping in; run persistctl preseed {} to \
                 finish it first",
                mountpoint.display(),
                journal.source,
                journal.snapshot,
                self.spec.service
            );
        }
        tracing::warn!("finishing the swap a killed run left in {}", staging.display());
        self.swap(mountpoint, staging, &journal)?;
        Ok(self.migrated(source, format!("finished the swap of {} that a killed run had checked", source.display())))
    }

    fn swap(&self, mountpoint: &Path, staging: &Path, journal: &SwapJournal) -> anyhow::Result<()> {
        let rules = crate::staging::EntryRules { ignore: &self.ignore, markers: &[] };
        provenance::swap_and_record(&self.zfs, self.spec, &rules, mountpoint, staging, journal)
    }

    fn migrated(&self, source: &Path, detail: String) -> Report {
        let mut report = self.report(Event::Migrated, detail);
        report.kept = Some(source.to_path_buf());
        report.note = Some(format!(
            "the old data is kept at {}: start the service, check it, then remove that by hand (the seed waits \
             24-48 h). A ZFS snapshot or restic backup of the new dataset is the next thing to take",
            source.display()
        ));
        report
    }

    fn done(&self) -> Report {
        let aside = decide::aside_of(&self.opts.from);
        let mut report = self.report(
            Event::AlreadyMigrated,
            format!("{} already holds the data migrated from {}", self.spec.dataset, self.opts.from.display()),
        );
        report.kept =
            Some(if Path::new(&self.spec.mountpoint) == self.opts.from { aside } else { self.opts.from.clone() })
                .filter(|p| p.exists());
        report
    }
}

/// `--from` as the kernel names it: `/a/b/` and `/a//b` are `/a/b` (the aside name and the provenance are
/// built from it), and symlinks in its parent directories are resolved, so that `/proc`'s paths of the
/// processes using it compare. The last component is never followed; a relative path or one with
/// `.`/`..` is left for `decide::check_paths` to refuse.
fn plain_path(from: &Path) -> PathBuf {
    use std::path::Component;
    let from: PathBuf = from.components().collect();
    if !from.is_absolute() || from.components().any(|c| matches!(c, Component::CurDir | Component::ParentDir)) {
        return from;
    }
    match (from.parent(), from.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent).map_or(from.clone(), |p| p.join(name)),
        _ => from,
    }
}

/// What is at `path`, without following a symlink.
fn entry(path: &Path) -> anyhow::Result<Entry> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(Entry::Dir),
        Ok(_) => Ok(Entry::Other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Entry::Missing),
        Err(e) => Err(e).with_context(|| format!("Failed to stat {}", path.display())),
    }
}

/// Makes a rename in `path`'s directory durable.
fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dir = std::fs::File::open(parent).with_context(|| format!("Failed to open {}", parent.display()))?;
    dir.sync_all().with_context(|| format!("Failed to sync {}", parent.display()))
}
