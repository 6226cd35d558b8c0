//! PURE: a service's dataset as `preseed` and `migrate` read it, from one `zfs get` of
//! [`TARGET_PROPERTIES`]: where it is mounted, the marks persistctl left on it, and which of its
//! top-level entries are data. The shell's `target.rs` reads; this says what the answer means.

#[cfg(doc)]
use crate::names::TARGET_PROPERTIES;
use crate::names::{
    PROP_EMPTY_ASIDE, PROP_RESTORED_FROM, PROP_RESTORED_SNAPSHOT, PROP_ROLLING_BACK, PROP_STAGING,
    PROP_STAGING_SNAPSHOT, STAGING_PREFIX, ZFS_CTLDIR,
};
use crate::zfs::{LiveDataset, PropertySource, props};

/// Whether a top-level entry counts as data: not ZFS's `.zfs`, not persistctl's staging, not ignored.
#[must_use]
pub fn is_data(entry: &str, ignore: &[String]) -> bool {
    entry != ZFS_CTLDIR && !entry.starts_with(STAGING_PREFIX) && !ignore.iter().any(|i| i == entry)
}

/// A property's value when it is set locally (persistctl's marks are never trusted when inherited).
#[must_use]
pub fn local_value<'a>(live: &'a LiveDataset, property: &str) -> Option<&'a str> {
    live.properties
        .get(property)
        .filter(|v| v.source == PropertySource::Local && v.value != "-")
        .map(|v| v.value.as_str())
}

/// persistctl's marks on a dataset: each `persistctl:*` property it reads, when set locally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// `persistctl:staging`: `received` or `verified` (a replica staging dataset, or one renamed into place).
    pub staging: Option<String>,
    /// `persistctl:staging-snapshot`: the replica snapshot a staging dataset holds.
    pub staging_snapshot: Option<String>,
    /// `persistctl:empty-aside`: the name an empty target is being moved aside to.
    pub empty_aside: Option<String>,
    /// `persistctl:rolling-back`: the snapshot an interrupted rollback was rolling back to.
    pub rolling_back: Option<String>,
    /// `persistctl:restored-from`: the provenance's source.
    pub restored_from: Option<String>,
    /// `persistctl:restored-snapshot`: the provenance's snapshot (or `migrate`'s path).
    pub restored_snapshot: Option<String>,
}

impl Marks {
    /// The marks set locally on `live`.
    #[must_use]
    pub fn of(live: &LiveDataset) -> Self {
        let local = |property| local_value(live, property).map(String::from);
        Self {
            staging: local(PROP_STAGING),
            staging_snapshot: local(PROP_STAGING_SNAPSHOT),
            empty_aside: local(PROP_EMPTY_ASIDE),
            rolling_back: local(PROP_ROLLING_BACK),
            restored_from: local(PROP_RESTORED_FROM),
            restored_snapshot: local(PROP_RESTORED_SNAPSHOT),
        }
    }

    /// The provenance, when both its source and its snapshot are set.
    #[must_use]
    pub fn provenance(&self) -> Option<(String, String)> {
        self.restored_from.clone().zip(self.restored_snapshot.clone())
    }
}

/// Where a dataset is, by its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// `mounted=yes` with a path mountpoint (canonical form). Still to be checked against the mount
    /// table: `mounted=yes` says nothing about a tmpfs or bind mount on top.
    At(String),
    /// Not mounted, or its mountpoint is not a path (`legacy`, `none`).
    Not {
        /// Where `zfs mount` would put it: its mountpoint, when that is a path and `canmount=on`.
        would_mount_at: Option<String>,
    },
}

impl Mount {
    /// Where `live` is.
    #[must_use]
    pub fn of(live: &LiveDataset) -> Self {
        let mountpoint = live.value("mountpoint").filter(|mp| mp.starts_with('/'));
        match (live.is_mounted(), mountpoint) {
            (true, Some(mountpoint)) => Self::At(props::canonical_live("mountpoint", mountpoint)),
            (_, mountpoint) => Self::Not {
                would_mount_at: mountpoint
                    .filter(|_| live.value("canmount") == Some("on"))
                    .map(|mp| props::canonical_live("mountpoint", mp)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zfs::PropertyValue;

    fn live(rows: &[(&str, &str, PropertySource)]) -> LiveDataset {
        let properties = rows
            .iter()
            .map(|(k, v, source)| ((*k).to_string(), PropertyValue { value: (*v).to_string(), source: source.clone() }))
            .collect();
        LiveDataset { properties }
    }

    #[test]
    fn where_a_dataset_is_comes_from_mounted_mountpoint_and_canmount() {
        let not = |at: Option<&str>| Mount::Not { would_mount_at: at.map(String::from) };
        let cases: [(&[(&str, &str)], Mount); 6] = [
            (&[("mounted", "yes"), ("mountpoint", "/srv/a/")], Mount::At("/srv/a".into())),
            (&[("mounted", "yes"), ("mountpoint", "legacy")], not(None)),
            (&[("mounted", "no"), ("mountpoint", "/srv/a"), ("canmount", "on")], not(Some("/srv/a"))),
            (&[("mounted", "no"), ("mountpoint", "/srv/a"), ("canmount", "noauto")], not(None)),
            (&[("mounted", "no"), ("mountpoint", "none"), ("canmount", "on")], not(None)),
            (&[("mountpoint", "/srv/a"), ("canmount", "on")], not(Some("/srv/a"))),
        ];
        for (rows, want) in cases {
            let rows: Vec<_> = rows.iter().map(|(k, v)| (*k, *v, PropertySource::Local)).collect();
            assert_eq!(Mount::of(&live(&rows)), want, "{rows:?}");
        }
        // Where the mountpoint comes from does not matter (a service's is local, a parent's inherited).
        let inherited =
            live(&[("mounted", "yes", PropertySource::Default), ("mountpoint", "/p/a", PropertySource::Default)]);
        assert_eq!(Mount::of(&inherited), Mount::At("/p/a".into()));
    }

    #[test]
    fn only_marks_set_locally_count() {
        use PropertySource::{Inherited, Local, Received};
        let found = live(&[
            (PROP_STAGING, "verified", Local),
            (PROP_STAGING_SNAPSHOT, "b/r@s", Received),
            (PROP_EMPTY_ASIDE, "t/p/a.persistctl-empty-x", Inherited("t/p".into())),
            (PROP_ROLLING_BACK, "-", Local),
            (PROP_RESTORED_FROM, "migrate", Local),
            (PROP_RESTORED_SNAPSHOT, "/old", Local),
        ]);
        let marks = Marks::of(&found);
        assert_eq!(
            marks,
            Marks {
                staging: Some("verified".into()),
                restored_from: Some("migrate".into()),
                restored_snapshot: Some("/old".into()),
                ..Marks::default()
            }
        );
        assert_eq!(marks.provenance(), Some(("migrate".into(), "/old".into())));
        assert_eq!(Marks { restored_from: Some("restic".into()), ..Marks::default() }.provenance(), None);
    }

    #[test]
    fn staging_control_and_ignored_entries_are_not_data() {
        let ignore = vec!["lost+found".to_string()];
        for (entry, want) in [
            ("db.sqlite", true),
            (".hidden", true),
            ("lost+found", false),
            (".zfs", false),
            (".persistctl-staging-restic-1", false),
            (".persistctl-stagin", true),
        ] {
            assert_eq!(is_data(entry, &ignore), want, "{entry}");
        }
    }
}
