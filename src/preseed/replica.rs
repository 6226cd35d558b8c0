//! The replica source: the newest snapshot of the syncoid target, received (`zfs send | zfs receive`)
//! beside the target into a staging dataset that never mounts on its own, verified at a private
//! mountpoint, then renamed into place, the empty target moved aside and kept. Never destroys a
//! dataset. Each step leaves marks (`persistctl:staging`, `-staging-snapshot`, `-empty-aside`) from which
//! [`resume`] finishes or undoes a killed run's swap before anything else is decided.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context as _, bail};

use super::sources::{Found, Miss, Restored, Source, Turn, chosen};
use super::{Event, Report, Run, decide};
use crate::names::{PROP_EMPTY_ASIDE, PROP_STAGING, PROP_STAGING_SNAPSHOT};
use crate::target;
use crate::timestamp;
use crate::zfs::{TreeRead, Zfs};
use decide::{DatasetFacts, Probe, Resume, StagingFacts, StagingPlan, TargetMark};

/// What the result says after a replica restore.
pub const REPLICA_LINEAGE_NOTE: &str = "restored by zfs send | zfs receive: ZFS send lineage is kept (the dataset \
now holds the replica's snapshot with the same GUID), so syncoid continues incrementally";

/// The syncoid target.
pub(super) struct Replica;

/// The replica's newest snapshot, as probed.
pub(super) struct Newest {
    /// The replica's host, for a remote one (`zfs` over ssh).
    remote: Option<Zfs>,
    /// How many snapshots the replica has.
    count: usize,
}

/// The staging dataset, received (or reused).
pub(super) struct Received {
    /// It was found mounted (a killed run's verification).
    mounted: bool,
}

/// A failure once a staging dataset may exist: it is kept, and says so.
fn kept(staging: &str) -> impl Fn(anyhow::Error) -> Miss + '_ {
    move |e| {
        Miss::Failed(format!(
            "{e:#} (persistctl never destroys a dataset: a staging dataset {staging} it received is kept; a rerun \
             re-verifies and uses it)"
        ))
    }
}

impl Source for Replica {
    type Backup = Newest;
    type Staged = Received;

    fn probe(&self, turn: &Turn) -> Result<Found<Newest>, Miss> {
        let run = turn.run;
        let Some(config) = &run.preseed.replica else {
            return Err(Miss::Failed("no replica settings in the config".into()));
        };
        let remote = config.host.as_deref().map(|host| run.zfs.over_ssh(host, config.ssh_key.as_deref()));
        let source = remote.as_ref().unwrap_or(&run.zfs);
        let listing = source.snapshots_if_exists(&config.dataset).map_err(|e| e.to_string());
        let count = listing.as_ref().ok().and_then(Option::as_ref).map_or(0, Vec::len);
        let (snapshot, why) = chosen(decide::choose_replica(&config.dataset, &listing))?;
        Ok(Found { snapshot, why, backup: Newest { remote, count } })
    }

    /// Receives the newest snapshot into the staging dataset, or reuses the one a killed run received.
    fn stage(&self, turn: &Turn, found: &Found<Newest>) -> Result<Received, Miss> {
        let (run, newest) = (turn.run, found.snapshot.as_str());
        let staging = decide::staging_dataset(&run.spec.dataset);
        let received = || -> anyhow::Result<Result<Received, Miss>> {
            let (facts, mounted) = staging_facts(run)?;
            match decide::plan_staging(&staging, &facts, newest) {
                StagingPlan::Blocked(why) => return Ok(Err(Miss::Failed(why))),
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
                    let source = found.backup.remote.as_ref().unwrap_or(&run.zfs);
                    let sent =
                        run.unlocked(|| source.send_receive(newest, &run.zfs, &staging, &props, turn.deadline))?;
                    if let Err(e) = sent {
                        return Ok(Err(Miss::Failed(e.to_string())));
                    }
                }
            }
            Ok(Ok(Received { mounted }))
        };
        received().unwrap_or_else(|e| Err(kept(&staging)(e)))
    }

    /// Mounts the staging dataset at a private directory, checks that it holds data and runs the verify
    /// hook on it, always unmounts it again, then marks it verified.
    fn verify(&self, turn: &Turn, found: &Found<Newest>, received: &Received) -> Result<(), Miss> {
        let run = turn.run;
        let staging = decide::staging_dataset(&run.spec.dataset);
        let checked = || -> anyhow::Result<Result<(), Miss>> {
            if received.mounted {
                run.zfs.unmount(&staging)?;
            }
            let dir = private_dir()?;
            let checked = (|| -> anyhow::Result<Probe<()>> {
                run.zfs.set(&staging, &[("mountpoint".to_string(), dir.display().to_string())])?;
                run.zfs.mount(&staging)?;
                let probe = decide::replica_content(&found.snapshot, &turn.has_data(&dir), found.backup.count);
                Ok(match probe {
                    Probe::Use { what, why } => match run.unlocked(|| turn.verify_command(&dir))? {
                        Ok(()) => Probe::Use { what, why },
                        Err(why) => Probe::Failed(why),
                    },
                    other => other,
                })
            })();
            // Always back to unmounted, mountpoint=none (checked: a failure here fails the source).
            let unmounted = run
                .zfs
                .unmount(&staging)
                .or_else(|e| if staging_facts(run).is_ok_and(|(_, mounted)| !mounted) { Ok(()) } else { Err(e) });
            let reset = unmounted.and_then(|()| run.zfs.set(&staging, &[("mountpoint".into(), "none".into())]));
            if let Err(e) = std::fs::remove_dir(&dir) {
                tracing::warn!("could not remove {}: {e}", dir.display());
            }
            let checked = checked?;
            reset?;
            match checked {
                Probe::Use { .. } => {}
                Probe::NoBackup(why) => {
                    return Ok(Err(Miss::NoBackup(format!("{why} (the staging dataset {staging} is kept)"))));
                }
                Probe::Failed(why) => return Ok(Err(Miss::Failed(why))),
            }
            run.zfs.set(&staging, &[(PROP_STAGING.to_string(), "verified".to_string())])?;
            Ok(Ok(()))
        };
        checked().unwrap_or_else(|e| Err(kept(&staging)(e)))
    }

    /// Verified: from here on a failure is no longer "this source failed" but an interrupted swap that a
    /// rerun finishes (the chain then stops: the target is no longer untouched).
    fn swap(&self, turn: &Turn, _: &Found<Newest>, _: Received) -> Result<Restored, Miss> {
        let run = turn.run;
        let (facts, _, mark) = run.target()?;
        swap_in(run, &facts, &mark)?;
        let snapshot = settle(run)?;
        Ok(Restored {
            detail: format!("received replica snapshot {snapshot} beside the target and renamed it into place"),
            snapshot,
            note: Some(note(run)),
        })
    }
}

/// What [`resume`] did.
pub(super) enum Resumed {
    /// Nothing was in flight.
    Nothing,
    /// A mark on the empty target was undone: decide as usual, on the target read again.
    Unmarked,
    /// The run is over: this is its report.
    Done(Report),
}

/// Finishes (or undoes) an interrupted replica swap, found by the marks a killed run left on the target
/// and the staging dataset.
pub(super) fn resume(run: &Run, facts: &DatasetFacts, mark: &TargetMark) -> anyhow::Result<Resumed> {
    let (staging, _) = staging_facts(run)?;
    let resume = decide::resume(facts, mark, &staging, &run.preseed.ignore);
    if let Resume::Refuse(reason) = &resume {
        return Ok(Resumed::Done(run.report(Event::Failed, None, None, reason.clone(), Vec::new(), None)));
    }
    let what = resume.what();
    if let (Some(what), true) = (what, run.opts.dry_run) {
        return Ok(Resumed::Done(run.report(Event::DryRun, None, None, format!("would {what}"), Vec::new(), None)));
    }
    if let Some(what) = what {
        tracing::warn!(dataset = %run.spec.dataset, "{what}");
    }
    match resume {
        Resume::Settle => Ok(Resumed::Done(settled_report(run, what.unwrap_or_default())?)),
        Resume::SwapIn => {
            swap_in(run, facts, mark)?;
            Ok(Resumed::Done(settled_report(run, what.unwrap_or_default())?))
        }
        Resume::Unmark => {
            unmark_aside(run)?;
            Ok(Resumed::Unmarked)
        }
        Resume::Nothing | Resume::Refuse(_) => Ok(Resumed::Nothing),
    }
}

/// The replica staging dataset as found (and whether it is mounted).
fn staging_facts(run: &Run) -> anyhow::Result<(StagingFacts, bool)> {
    let found = target::read_marks(&run.zfs, &decide::staging_dataset(&run.spec.dataset))?;
    let mounted = found.as_ref().is_some_and(|(_, mounted)| *mounted);
    Ok((StagingFacts::of(found.as_ref().map(|(marks, _)| marks)), mounted))
}

/// Moves the empty target aside (kept, never destroyed) and renames the verified staging dataset into
/// place. Each step leaves a state a rerun recognises by the datasets' user properties.
fn swap_in(run: &Run, facts: &DatasetFacts, mark: &TargetMark) -> anyhow::Result<()> {
    let target = &run.spec.dataset;
    let aside = match (facts, mark) {
        (DatasetFacts::Missing, _) => None,
        (_, TargetMark::Aside(name)) => Some(name.clone()),
        _ => {
            let name = decide::aside_dataset(target, &timestamp::utc_stamp(SystemTime::now()));
            run.zfs.set(target, &[(PROP_EMPTY_ASIDE.to_string(), name.clone())])?;
            Some(name)
        }
    };
    if let Some(aside) = &aside {
        if matches!(facts, DatasetFacts::Mounted { .. }) {
            run.zfs.unmount(target)?;
        }
        // Unmounted first, so this mounts nothing; the aside dataset never mounts on its own again.
        run.zfs.set(target, &[("canmount".into(), "noauto".into()), ("mountpoint".into(), "none".into())])?;
        tracing::warn!("moving the empty {target} aside to {aside} (kept: remove it by hand)");
        run.zfs.rename(target, aside)?;
    }
    run.zfs.rename(&decide::staging_dataset(target), target)?;
    Ok(())
}

/// The restored dataset is in place: canmount back to its default, properties, mountpoint and root
/// ownership exactly as `apply` sets them (which mounts it), provenance, then the staging marks go.
fn settle(run: &Run) -> anyhow::Result<String> {
    let target = &run.spec.dataset;
    let Some((marks, _)) = target::read_marks(&run.zfs, target)? else { bail!("{target} disappeared") };
    let snapshot = decide::settled_snapshot(
        marks.staging_snapshot.as_deref(),
        marks.restored_from.as_deref(),
        marks.restored_snapshot.as_deref(),
    )
    .with_context(|| {
        format!("{target} is marked {PROP_STAGING} but names no replica snapshot ({PROP_STAGING_SNAPSHOT})")
    })?;
    run.zfs.inherit("canmount", target, true)?;
    run.apply_spec()?;
    if matches!(run.facts()?.0, DatasetFacts::NotMounted) {
        run.zfs.mount(target)?;
    }
    match run.facts()? {
        (facts, _) if facts.holds_data(&run.preseed.ignore) == Some(true) => {}
        (DatasetFacts::Mounted { .. }, Some(mp)) => bail!("the restored {target} shows no data at {}", mp.display()),
        _ => bail!("the restored {target} is not mounted"),
    }
    run.set_provenance("replica", &snapshot)?;
    run.zfs.inherit(PROP_STAGING_SNAPSHOT, target, false)?;
    run.zfs.inherit(PROP_STAGING, target, false)?;
    Ok(snapshot)
}

/// Undoes a mark a killed run left on the empty target when there is no verified staging to swap in.
fn unmark_aside(run: &Run) -> anyhow::Result<()> {
    let target = &run.spec.dataset;
    run.zfs.inherit("canmount", target, true)?;
    run.apply_spec()?;
    if matches!(run.facts()?.0, DatasetFacts::NotMounted) {
        run.zfs.mount(target)?;
    }
    run.zfs.inherit(PROP_EMPTY_ASIDE, target, false).map_err(Into::into)
}

/// The lineage note plus every empty dataset a replica swap moved aside (found by their user property).
fn note(run: &Run) -> String {
    let parent = &run.validated.config.datasets.parent_dataset;
    let prefix = format!("{}{}", run.spec.dataset, decide::ASIDE_INFIX);
    let asides: Vec<String> = match run.zfs.read_tree(parent, &[PROP_EMPTY_ASIDE]) {
        Ok(TreeRead::Found(tree)) => tree
            .into_iter()
            .filter(|(name, live)| name.starts_with(&prefix) && target::local_value(live, PROP_EMPTY_ASIDE).is_some())
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
fn settled_report(run: &Run, what: &str) -> anyhow::Result<Report> {
    let snapshot = settle(run)?;
    let detail = format!("{what}: restored from replica ({snapshot})");
    Ok(run.report(Event::Restored, Some("replica".into()), Some(snapshot), detail, Vec::new(), Some(note(run))))
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
