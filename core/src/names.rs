//! persistctl's own names, in ZFS and on disk: staging directories and datasets, moved-aside datasets,
//! and the `persistctl:*` user properties it marks datasets with. Shared by preseed, migrate and the
//! config checks (a configured name must leave room for them).

/// Every staging directory persistctl makes starts with this; nothing else with it is ever removed.
pub const STAGING_PREFIX: &str = ".persistctl-staging-";

/// ZFS's control directory (`.zfs`, listed when `snapdir=visible`): never data.
pub const ZFS_CTLDIR: &str = ".zfs";

/// The dataset a replica is received into, beside the target (same parent, so the swap is a rename).
pub const STAGING_DATASET_SUFFIX: &str = ".persistctl-staging";
/// An empty target moved aside by a replica swap is renamed `<target>.persistctl-empty-<UTC stamp>` and kept.
pub const ASIDE_INFIX: &str = ".persistctl-empty-";
/// On a staging dataset (and on the target between the swap and the end of the run): `received`, then
/// `verified` once the verify step passed.
pub const PROP_STAGING: &str = "persistctl:staging";
/// What preseed and migrate read of a dataset, by name (one `zfs get`): its mount state and every
/// mark persistctl leaves on it. Nobody else's user properties are read.
pub const TARGET_PROPERTIES: &[&str] = &[
    "mountpoint",
    "mounted",
    "canmount",
    PROP_STAGING,
    PROP_STAGING_SNAPSHOT,
    PROP_EMPTY_ASIDE,
    PROP_ROLLING_BACK,
    PROP_RESTORED_FROM,
    PROP_RESTORED_AT,
    PROP_RESTORED_SNAPSHOT,
];
/// On a staging dataset: the replica snapshot it was received from.
pub const PROP_STAGING_SNAPSHOT: &str = "persistctl:staging-snapshot";
/// On an empty target about to be moved aside (and on the aside dataset afterwards): its new name.
pub const PROP_EMPTY_ASIDE: &str = "persistctl:empty-aside";
/// On a dataset while it is rolled back to one of its snapshots (the snapshot): a run killed after the
/// rollback leaves it, and the rerun, finding the data back, records the provenance.
pub const PROP_ROLLING_BACK: &str = "persistctl:rolling-back";
/// Provenance, on a restored dataset: the source (`snapshot`, `replica`, `restic`, `empty-bootstrap`).
pub const PROP_RESTORED_FROM: &str = "persistctl:restored-from";
/// Provenance: when (RFC 3339, UTC).
pub const PROP_RESTORED_AT: &str = "persistctl:restored-at";
/// Provenance: the snapshot restored from.
pub const PROP_RESTORED_SNAPSHOT: &str = "persistctl:restored-snapshot";

/// The staging dataset of `target`.
#[must_use]
pub fn staging_dataset(target: &str) -> String {
    format!("{target}{STAGING_DATASET_SUFFIX}")
}

/// The name an empty `target` is moved aside to; `stamp` is a UTC time like `20240501T120000Z`.
#[must_use]
pub fn aside_dataset(target: &str, stamp: &str) -> String {
    format!("{target}{ASIDE_INFIX}{stamp}")
}
