//! The plan's vocabulary: what the planner is given (live state, path probes) and what it returns
//! (actions, findings, problems, per dataset and for the parent).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::zfs::LiveDataset;

/// What a path on disk is, as far as planning cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum PathProbe {
    /// Nothing there.
    Absent,
    /// A real directory (reached without following any symlink).
    Directory {
        /// No entries.
        empty: bool,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Permission bits (`& 0o7777`).
        mode: u32,
    },
    /// A symlink somewhere on the way (never followed).
    Symlink,
    /// A file, socket, ...
    NotADirectory,
    /// Could not be looked at.
    Unreadable {
        /// Why.
        error: String,
    },
}

/// The parent dataset as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentState {
    /// The parent exists; every filesystem under it (itself included).
    Present(BTreeMap<String, LiveDataset>),
    /// The parent does not exist.
    Missing {
        /// Whether its pool is imported (if not, everything waits for the boot unit).
        pool_imported: bool,
        /// The parent's ancestors below the pool that do not exist either, outermost first.
        missing_ancestors: Vec<String>,
    },
}

/// Everything `plan` looks at besides the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveState {
    /// The ZFS tree.
    pub parent: ParentState,
    /// Probes of mountpoint paths (see [`paths_to_probe`]).
    pub paths: BTreeMap<String, PathProbe>,
    /// Users by name: `Some(uid)`, or `None` when no such user exists.
    pub users: BTreeMap<String, Option<u32>>,
    /// Groups by name, likewise.
    pub groups: BTreeMap<String, Option<u32>>,
    /// The loaded ZFS module's (major, minor), when known: some values read back differently by version.
    pub zfs_version: Option<(u32, u32)>,
}

/// One property change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Property name.
    pub property: String,
    /// The value to set, as written in the config.
    pub value: String,
    /// What it was (`None`: not set at all).
    pub was: Option<String>,
    /// Where the old value came from.
    pub was_source: Option<String>,
}

/// Owner/group/mode to enforce on a mounted dataset's root directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnershipTarget {
    /// Numeric owner, if asked for.
    pub uid: Option<u32>,
    /// Numeric group, if asked for.
    pub gid: Option<u32>,
    /// Permission bits, if asked for.
    pub mode: Option<u32>,
}

/// Set on every dataset persistctl creates unless the config names `overlay`: OpenZFS on Linux mounts
/// over a non-empty directory by default (`overlay=on`) and hides its files; with `overlay=off` any
/// later mount over files (`zfs mount -a` at boot, a `zfs set mountpoint`) fails instead.
pub const DEFENSIVE_CREATE_PROPERTIES: [(&str, &str); 1] = [("overlay", "off")];

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Action {
    /// `zfs create -o canmount=off <ancestor>`: a missing ancestor of the parent (only with
    /// `createParent`), created one by one instead of by `zfs create -p`, which would mount each at its
    /// inherited mountpoint, over whatever is there.
    CreateAncestor {
        /// The ancestor dataset.
        dataset: String,
    },
    /// `zfs create -o mountpoint=<parentMount> -o overlay=off <parent>` (only with `createParent`).
    CreateParent {
        /// The parent dataset.
        dataset: String,
        /// Its mountpoint.
        mountpoint: String,
    },
    /// `zfs create -o k=v ... <dataset>`, every property at once (never `-p`: the parent exists).
    Create {
        /// The dataset.
        dataset: String,
        /// Properties as written in the config.
        properties: Vec<(String, String)>,
    },
    /// `zfs set a=1 b=2 <dataset>`, every change at once.
    Set {
        /// The dataset.
        dataset: String,
        /// The changes.
        changes: Vec<Change>,
    },
    /// Owner/group/mode of the mounted root directory, never through a symlink.
    Ownership {
        /// The dataset.
        dataset: String,
        /// Its mountpoint.
        path: String,
        /// What to enforce.
        target: OwnershipTarget,
    },
}

impl Action {
    /// Whether this action writes to ZFS (as opposed to the filesystem).
    #[must_use]
    pub fn writes_zfs(&self) -> bool {
        !matches!(self, Self::Ownership { .. })
    }

    /// The path this action may mount a dataset on, to be checked free right before it runs.
    #[must_use]
    pub fn mount_target(&self) -> Option<&str> {
        match self {
            Self::CreateParent { mountpoint, .. } => Some(mountpoint),
            Self::Create { properties, .. } => properties
                .iter()
                .find(|(k, _)| k == "mountpoint")
                .map(|(_, v)| v.as_str())
                .filter(|v| v.starts_with('/')),
            Self::Set { changes, .. } => changes
                .iter()
                .find(|c| c.property == "mountpoint")
                .map(|c| c.value.as_str())
                .filter(|v| v.starts_with('/')),
            Self::CreateAncestor { .. } | Self::Ownership { .. } => None,
        }
    }

    /// One line for humans.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::CreateAncestor { dataset } => format!("create ancestor {dataset} (canmount=off)"),
            Self::CreateParent { dataset, mountpoint } => format!("create parent {dataset} (mountpoint={mountpoint})"),
            Self::Create { properties, .. } => {
                let props: Vec<String> = properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("create {}", props.join(" "))
            }
            Self::Set { changes, .. } => {
                let props: Vec<String> = changes
                    .iter()
                    .map(|c| format!("{}={} (was {})", c.property, c.value, c.was.as_deref().unwrap_or("unset")))
                    .collect();
                format!("set {}", props.join(" "))
            }
            Self::Ownership { target, .. } => {
                let mut parts = Vec::new();
                if let Some(uid) = target.uid {
                    parts.push(format!("uid={uid}"));
                }
                if let Some(gid) = target.gid {
                    parts.push(format!("gid={gid}"));
                }
                if let Some(mode) = target.mode {
                    parts.push(format!("mode={mode:04o}"));
                }
                format!("chown/chmod {}", parts.join(" "))
            }
        }
    }
}

/// Something worth saying that the plan does not act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Finding {
    /// A create-time-only property differs; only a new dataset can fix it.
    CreateOnlyDrift {
        /// Property.
        property: String,
        /// Wanted value.
        wanted: String,
        /// Live value.
        actual: String,
        /// What to do about it.
        migration: String,
    },
    /// A property set locally that the config does not mention (left alone).
    UnmanagedLocalProperty {
        /// Property.
        property: String,
        /// Its value.
        value: String,
    },
    /// The dataset exists but is not mounted: owner/mode were not checked.
    NotMounted,
}

impl Finding {
    /// One line for humans.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::CreateOnlyDrift { property, wanted, actual, migration } => {
                format!("{property} is {actual}, config wants {wanted}: create-time only; {migration}")
            }
            Self::UnmanagedLocalProperty { property, value } => {
                format!("local property {property}={value} is not in the config (left alone)")
            }
            Self::NotMounted => "not mounted: owner/mode not checked".to_string(),
        }
    }
}

/// What happens to one service's dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetPlan {
    /// Service name.
    pub service: String,
    /// Dataset name.
    pub dataset: String,
    /// Wanted mountpoint.
    pub mountpoint: String,
    /// `in-sync`, `create`, `update`, `blocked` or `skipped`.
    pub status: &'static str,
    /// Steps, in order.
    pub actions: Vec<Action>,
    /// Reports (not errors).
    pub findings: Vec<Finding>,
    /// Errors: why some or all of the work cannot be done safely.
    pub problems: Vec<String>,
    /// Why the dataset was skipped (pool not imported).
    pub skipped: Option<String>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The parent dataset.
    pub parent_dataset: String,
    /// Parent-level steps (creating it).
    pub parent_actions: Vec<Action>,
    /// Parent-level problems (missing parent without createParent).
    pub parent_problems: Vec<String>,
    /// Whether the parent's pool is imported.
    pub pool_imported: bool,
    /// Per service, sorted by service name.
    pub datasets: Vec<DatasetPlan>,
    /// Datasets under the parent that the config does not declare (untouched).
    pub unmanaged: Vec<String>,
}

impl Plan {
    /// Every action, parent first, in execution order.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.parent_actions.iter().chain(self.datasets.iter().flat_map(|d| d.actions.iter()))
    }

    /// Whether nothing needs doing (skipped datasets count as pending elsewhere, not here).
    #[must_use]
    pub fn is_in_sync(&self) -> bool {
        self.actions().next().is_none()
    }

    /// Whether anything is wrong (a problem that needs a person).
    #[must_use]
    pub fn has_problems(&self) -> bool {
        !self.parent_problems.is_empty() || self.datasets.iter().any(|d| !d.problems.is_empty())
    }

    /// Whether some datasets wait for a pool that is not imported.
    #[must_use]
    pub fn has_skipped(&self) -> bool {
        self.datasets.iter().any(|d| d.skipped.is_some())
    }
}
