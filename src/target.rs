//! The one reader of a service's dataset, shared by `preseed` and `migrate`: one `zfs get` of
//! `TARGET_PROPERTIES` and, when it is mounted, the mount-table check (only ever the dataset's own root,
//! never a tmpfs or bind mount over it), its top-level entries and persistctl's own staging among them.
//! And the one place a dataset found unmounted is mounted: only where that hides nothing. What the
//! answer means is `persistctl_core::target`, re-exported here.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use persistctl_core::target::*;

use crate::fsprobe;
use crate::names::TARGET_PROPERTIES;
use crate::staging;
use crate::zfs::{LiveDataset, TreeRead, Zfs};

/// A service's dataset as found.
#[derive(Debug, Clone)]
pub struct Found {
    /// persistctl's marks on it (none when it is missing).
    pub marks: Marks,
    /// Whether it exists, and where.
    pub place: Place,
}

/// Whether the dataset exists, and where.
#[derive(Debug, Clone)]
pub enum Place {
    /// No such dataset.
    Missing,
    /// It exists, not mounted (or not at a path).
    NotMounted {
        /// Where `zfs mount` would put it (`canmount=on`, a path mountpoint).
        would_mount_at: Option<PathBuf>,
    },
    /// Mounted, and checked to be the dataset's own root in the mount table.
    Mounted(Root),
}

/// A mounted dataset's root as found.
#[derive(Debug, Clone)]
pub struct Root {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// Every top-level name, sorted (staging directories included).
    pub entries: Vec<String>,
    /// persistctl's staging directories whose restore was verified and whose swap had begun (a journal).
    pub complete_staging: Vec<String>,
    /// persistctl's staging directories without a journal: an unverified, possibly partial restore.
    pub stale_staging: Vec<String>,
}

/// One dataset's properties ([`TARGET_PROPERTIES`]), `None` when it does not exist.
pub fn read_live(zfs: &Zfs, name: &str) -> anyhow::Result<Option<LiveDataset>> {
    let TreeRead::Found(mut tree) = zfs.read_tree(name, TARGET_PROPERTIES)? else { return Ok(None) };
    tree.remove(name).with_context(|| format!("zfs did not list {name}")).map(Some)
}

/// A dataset's marks and whether ZFS says it is mounted, `None` when it does not exist.
pub fn read_marks(zfs: &Zfs, name: &str) -> anyhow::Result<Option<(Marks, bool)>> {
    Ok(read_live(zfs, name)?.map(|live| (Marks::of(&live), live.is_mounted())))
}

/// Reads `dataset`: one `zfs get`; when mounted, the mount-table check and its entries. A
/// staging-named entry persistctl did not make (the service user owns the root) fails the read.
pub fn read(zfs: &Zfs, dataset: &str) -> anyhow::Result<Found> {
    let Some(live) = read_live(zfs, dataset)? else {
        return Ok(Found { marks: Marks::default(), place: Place::Missing });
    };
    let marks = Marks::of(&live);
    let mountpoint = match Mount::of(&live) {
        Mount::At(mountpoint) => PathBuf::from(mountpoint),
        Mount::Not { would_mount_at } => {
            return Ok(Found { marks, place: Place::NotMounted { would_mount_at: would_mount_at.map(PathBuf::from) } });
        }
    };
    // "Data present", a restore, a rollback, a migration: only ever about the dataset's own root as
    // every process sees it, never a tmpfs or bind mount over it, never a directory above a hidden mount.
    fsprobe::verify_dataset_mount(dataset, &mountpoint.display().to_string())?;
    let entries = fsprobe::list_entries(&mountpoint)?;
    let (complete_staging, stale_staging) = staging::our_staging(&mountpoint, &entries)?
        .into_iter()
        .partition(|e| staging::is_complete(&mountpoint.join(e)));
    Ok(Found { marks, place: Place::Mounted(Root { mountpoint, entries, complete_staging, stale_staging }) })
}

/// Mounts `dataset`, which exists unmounted, at `at` (where it mounts) — only when nothing is there or an
/// empty directory: `zfs mount` mounts over files and hides them. `Ok(false)`: something is there, nothing
/// was mounted. `why` says how it came to be unmounted (logged); in a dry run it only looks.
pub fn mount_where_free(zfs: &Zfs, dataset: &str, at: &Path, why: &str, dry_run: bool) -> anyhow::Result<bool> {
    if !fsprobe::is_free_mountpoint(at)? {
        return Ok(false);
    }
    if !dry_run {
        tracing::warn!(dataset = %dataset, "mounting it at {}: {why}", at.display());
        zfs.mount(dataset)?;
    }
    Ok(true)
}
