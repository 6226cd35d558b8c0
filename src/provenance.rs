//! Where a dataset's data came from, and the journaled swap that puts a staged copy in place and says so.
//!
//! Provenance is three user properties written in one `zfs set` once the data is in: `persistctl:restored-from`
//! (`snapshot`, `replica`, `restic`, `migrate`, `empty`), `persistctl:restored-at` (RFC 3339 UTC) and
//! `persistctl:restored-snapshot`. A rerun finding data with it knows the data is a restore's (or a
//! migration's) and never restores over it. Used by `preseed` (every source) and `migrate`.

use std::path::Path;
use std::time::SystemTime;

use anyhow::Context as _;

use crate::config::DatasetSpec;
use crate::names::{PROP_RESTORED_AT, PROP_RESTORED_FROM, PROP_RESTORED_SNAPSHOT};
use crate::staging::{self, CopyOwnership, EntryRules, SwapJournal};
use crate::timestamp;
use crate::zfs::Zfs;

/// Provenance, in one `zfs set`: `persistctl:restored-from`, `-at` (now) and `-snapshot`.
pub fn record(zfs: &Zfs, dataset: &str, source: &str, snapshot: &str) -> anyhow::Result<()> {
    let props = [
        (PROP_RESTORED_FROM.to_string(), source.to_string()),
        (PROP_RESTORED_AT.to_string(), timestamp::rfc3339_utc(SystemTime::now())),
        (PROP_RESTORED_SNAPSHOT.to_string(), snapshot.to_string()),
    ];
    zfs.set(dataset, &props).context("Failed to record where the data came from")
}

/// The last step of a journaled staging (restic restore, migration): moves its entries into the mounted
/// dataset (root owner/group/mode copied where the spec leaves them open), records the journal's source
/// and snapshot as provenance, removes the staging. Restartable at every point.
pub fn swap_and_record(
    zfs: &Zfs,
    spec: &DatasetSpec,
    rules: &EntryRules,
    mountpoint: &Path,
    staging: &Path,
    journal: &SwapJournal,
) -> anyhow::Result<()> {
    let own = &spec.ownership;
    let copy = CopyOwnership { owner: own.owner.is_none(), group: own.group.is_none(), mode: own.mode.is_none() };
    let moved = staging::swap_in(mountpoint, staging, journal, rules, copy)?;
    tracing::info!("moved {moved} entries into {}", mountpoint.display());
    record(zfs, &spec.dataset, &journal.source, &journal.snapshot)?;
    staging::remove(staging)
}
