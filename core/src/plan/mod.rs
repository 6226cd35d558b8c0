//! PURE: `plan(specs, live) -> Plan`. No I/O, no clock, no environment: the live state (ZFS tree,
//! mountpoint probes, resolved accounts) is gathered by `apply` and handed in.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::DatasetSpec;
use crate::zfs::LiveDataset;
use crate::zfs::parse::pool_of;
use crate::zfs::props;

mod dataset;
mod model;

pub use model::*;

use dataset::{occupied, plan_create, plan_existing, skipped, status_of};

/// Which paths `plan` needs probed: each spec's wanted mountpoint, the live mountpoint of each
/// mounted managed dataset, and `parent_mount` (a parent created with `createParent` mounts there).
#[must_use]
pub fn paths_to_probe(specs: &[DatasetSpec], parent: &ParentState, parent_mount: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    if matches!(parent, ParentState::Missing { .. }) {
        paths.insert(parent_mount.to_string());
    }
    for spec in specs {
        paths.insert(spec.mountpoint.clone());
        if let ParentState::Present(tree) = parent {
            if let Some(live) = tree.get(&spec.dataset) {
                if let Some(mp) = live.value("mountpoint").filter(|mp| mp.starts_with('/')) {
                    paths.insert(props::canonical_live("mountpoint", mp));
                }
            }
        }
    }
    paths
}

/// The user and group names the specs mention (numeric ids need no lookup).
#[must_use]
pub fn accounts_to_resolve(specs: &[DatasetSpec]) -> (BTreeSet<String>, BTreeSet<String>) {
    let is_name = |s: &&String| !s.chars().all(|c| c.is_ascii_digit());
    let users = specs.iter().filter_map(|s| s.ownership.owner.as_ref()).filter(is_name).cloned().collect();
    let groups = specs.iter().filter_map(|s| s.ownership.group.as_ref()).filter(is_name).cloned().collect();
    (users, groups)
}

/// Computes the plan.
#[must_use]
pub fn plan(
    parent_dataset: &str,
    parent_mount: &str,
    create_parent: bool,
    specs: &[DatasetSpec],
    live: &LiveState,
) -> Plan {
    let mut out = Plan {
        parent_dataset: parent_dataset.to_string(),
        parent_actions: Vec::new(),
        parent_problems: Vec::new(),
        pool_imported: true,
        datasets: Vec::new(),
        unmanaged: Vec::new(),
    };
    let empty = BTreeMap::new();
    let tree = match &live.parent {
        ParentState::Present(tree) => tree,
        ParentState::Missing { pool_imported: false, .. } => {
            out.pool_imported = false;
            let reason = format!("pool {} is not imported", pool_of(parent_dataset));
            out.datasets = specs.iter().map(|s| skipped(s, &reason)).collect();
            return out;
        }
        ParentState::Missing { pool_imported: true, missing_ancestors } => {
            if create_parent {
                if let Some(why) = occupied(parent_mount, live, None) {
                    out.parent_problems.push(format!("cannot create the parent {parent_dataset}: {why}"));
                } else {
                    out.parent_actions.extend(
                        missing_ancestors.iter().map(|dataset| Action::CreateAncestor { dataset: dataset.clone() }),
                    );
                    out.parent_actions.push(Action::CreateParent {
                        dataset: parent_dataset.to_string(),
                        mountpoint: parent_mount.to_string(),
                    });
                }
            } else {
                out.parent_problems.push(format!(
                    "parent dataset {parent_dataset} does not exist (its pool is imported); create it (e.g. in disko) \
                     or set createParent = true"
                ));
            }
            &empty
        }
    };
    let parent_blocked = !out.parent_problems.is_empty();
    let parent_missing = matches!(live.parent, ParentState::Missing { .. });
    let parent_unmounted = tree.get(parent_dataset).and_then(|p| unmounted_parent(parent_dataset, p));
    for spec in specs {
        let mut dp = match tree.get(&spec.dataset) {
            Some(live_ds) => plan_existing(spec, live_ds, live),
            None => plan_create(spec, live),
        };
        if parent_blocked {
            dp.actions.clear();
            let why = if parent_missing { "is missing" } else { "cannot be used" };
            dp.problems.push(format!("parent dataset {parent_dataset} {why}"));
        }
        if let Some(why) = &parent_unmounted {
            // A child mounted now would land on the directory below the parent's future mount and be
            // hidden by it (disko-zfs#9): create or move nothing until the parent is mounted.
            let before = dp.actions.len();
            dp.actions.retain(|a| !mounts_something(a));
            if dp.actions.len() != before {
                dp.actions.retain(|a| !matches!(a, Action::Ownership { .. }));
                dp.problems.push(why.clone());
            }
        }
        dp.status = status_of(&dp);
        out.datasets.push(dp);
    }
    let managed: BTreeSet<&str> = specs.iter().map(|s| s.dataset.as_str()).collect();
    out.unmanaged = tree
        .keys()
        .filter(|name| name.as_str() != parent_dataset && !managed.contains(name.as_str()))
        .cloned()
        .collect();
    out
}

/// Why the parent's children cannot be mounted yet: it should be mounted (canmount=on, a mountpoint or
/// legacy) but is not.
fn unmounted_parent(name: &str, parent: &LiveDataset) -> Option<String> {
    let canmount = parent.value("canmount").unwrap_or("on");
    let mountpoint = parent.value("mountpoint").unwrap_or("none");
    if parent.is_mounted() || canmount != "on" || mountpoint == "none" {
        return None;
    }
    Some(if mountpoint == "legacy" {
        format!(
            "parent dataset {name} (mountpoint=legacy) is not mounted; mount it (fileSystems) before creating datasets under it"
        )
    } else {
        format!(
            "parent dataset {name} is not mounted at {mountpoint}; mount it (zfs mount) before creating datasets under it"
        )
    })
}

/// Whether an action mounts a dataset somewhere (creating it, or moving its mountpoint).
fn mounts_something(action: &Action) -> bool {
    match action {
        Action::Create { .. } => true,
        Action::Set { changes, .. } => changes.iter().any(|c| c.property == "mountpoint"),
        Action::CreateAncestor { .. } | Action::CreateParent { .. } | Action::Ownership { .. } => false,
    }
}

/// The order datasets are worked on: outer mountpoints before the ones inside them (`/srv/media` before
/// `/srv/media/cache`), as `zfs mount -a` does, so no new mount lands over another; then by service name.
#[must_use]
pub fn execution_order(plan: &Plan) -> Vec<usize> {
    let mut order: Vec<usize> = (0..plan.datasets.len()).collect();
    let depth = |mp: &str| mp.split('/').filter(|c| !c.is_empty()).count();
    order.sort_by(|&a, &b| {
        let (a, b) = (&plan.datasets[a], &plan.datasets[b]);
        depth(&a.mountpoint).cmp(&depth(&b.mountpoint)).then_with(|| a.service.cmp(&b.service))
    });
    order
}

/// Why a probed path cannot take a new mount (it would hide something there), or `None` when it can.
#[must_use]
pub fn mount_blocker(path: &str, probe: &PathProbe) -> Option<String> {
    match probe {
        PathProbe::Absent | PathProbe::Directory { empty: true, .. } => None,
        PathProbe::Directory { empty: false, .. } => {
            Some(format!("{path} already holds files that mounting the dataset would hide"))
        }
        PathProbe::Symlink => Some(format!("{path} is (or passes through) a symlink; refusing to mount there")),
        PathProbe::NotADirectory => Some(format!("{path} exists and is not a directory")),
        PathProbe::Unreadable { error } => Some(format!("cannot inspect {path}: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::zfs::parse::parse_get;

    const PARENT: &str = "tank/persist";

    fn specs(services: &str) -> Vec<DatasetSpec> {
        let text = format!(
            r#"{{"version": 1, "datasets": {{"parentDataset": "tank/persist", "parentMount": "/persist", "services": {services}}}}}"#
        );
        config::parse(&text).unwrap().specs
    }

    /// Builds a live tree from `zfs get` lines written with `|` for tabs.
    fn tree(lines: &str) -> ParentState {
        let text: String = lines.lines().map(|l| l.trim().replace('|', "\t") + "\n").collect();
        ParentState::Present(parse_get(&text).unwrap())
    }

    /// `plan` under `tank/persist` at `/persist`, with every path it needs probed and not given by the
    /// test taken as absent (as a fresh machine would show).
    fn plan_t(create_parent: bool, specs: &[DatasetSpec], live: &LiveState) -> Plan {
        let mut live = live.clone();
        for path in paths_to_probe(specs, &live.parent, "/persist") {
            live.paths.entry(path).or_insert(PathProbe::Absent);
        }
        plan(PARENT, "/persist", create_parent, specs, &live)
    }

    fn missing(pool_imported: bool, ancestors: &[&str]) -> ParentState {
        ParentState::Missing { pool_imported, missing_ancestors: ancestors.iter().map(|a| (*a).to_string()).collect() }
    }

    fn live(parent: ParentState) -> LiveState {
        LiveState { parent, paths: BTreeMap::new(), users: BTreeMap::new(), groups: BTreeMap::new(), zfs_version: None }
    }

    fn dir(empty: bool, uid: u32, gid: u32, mode: u32) -> PathProbe {
        PathProbe::Directory { empty, uid, gid, mode }
    }

    const SONARR: &str =
        r#"{"sonarr": {"recordsize": "16K", "compression": "lz4", "properties": {"com.sun:auto-snapshot": "true"}}}"#;

    #[test]
    fn a_missing_dataset_is_created_with_all_properties_in_one_call() {
        let p = plan_t(
            false,
            &specs(SONARR),
            &live(tree("tank/persist|mountpoint|legacy|local\ntank/persist|mounted|yes|-")),
        );
        assert_eq!(p.datasets[0].status, "create");
        assert_eq!(
            p.datasets[0].actions,
            [Action::Create {
                dataset: "tank/persist/sonarr".into(),
                properties: vec![
                    ("recordsize".into(), "16K".into()),
                    ("compression".into(), "lz4".into()),
                    ("com.sun:auto-snapshot".into(), "true".into()),
                    ("mountpoint".into(), "/persist/sonarr".into()),
                    ("overlay".into(), "off".into()),
                ],
            }]
        );
    }

    #[test]
    fn equal_values_in_any_source_are_in_sync() {
        // inherited, default, received and local values that equal the wanted ones: nothing to do
        let t = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist/sonarr|recordsize|16384|received
             tank/persist/sonarr|compression|lz4|inherited from tank/persist
             tank/persist/sonarr|com.sun:auto-snapshot|true|inherited from tank/persist
             tank/persist/sonarr|mountpoint|/persist/sonarr|inherited from tank/persist
             tank/persist/sonarr|mounted|yes|-",
        );
        let p = plan_t(false, &specs(SONARR), &live(t));
        assert!(p.is_in_sync(), "{:?}", p.datasets[0]);
        assert_eq!(p.datasets[0].status, "in-sync");
    }

    #[test]
    fn changed_values_become_one_set_call() {
        let t = tree(
            "tank/persist|mountpoint|legacy|local
             tank/persist|mounted|yes|-
             tank/persist/sonarr|recordsize|131072|default
             tank/persist/sonarr|compression|lz4|local
             tank/persist/sonarr|com.sun:auto-snapshot|-|-
             tank/persist/sonarr|mountpoint|legacy|inherited from tank/persist
             tank/persist/sonarr|mounted|no|-",
        );
        let p = plan_t(false, &specs(SONARR), &live(t));
        let Action::Set { changes, .. } = &p.datasets[0].actions[0] else { panic!("{:?}", p.datasets[0]) };
        let set: Vec<(&str, &str, Option<&str>)> =
            changes.iter().map(|c| (c.property.as_str(), c.value.as_str(), c.was.as_deref())).collect();
        assert_eq!(
            set,
            [
                ("recordsize", "16K", Some("131072")),
                ("com.sun:auto-snapshot", "true", None),
                ("mountpoint", "/persist/sonarr", Some("legacy")),
            ]
        );
        assert_eq!(p.datasets[0].status, "update");
    }

    #[test]
    fn create_only_drift_is_reported_never_set() {
        let t = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist/a|casesensitivity|sensitive|-
             tank/persist/a|mountpoint|/persist/a|inherited from tank/persist",
        );
        let p = plan(
            PARENT,
            "/persist",
            false,
            &specs(r#"{"a": {"properties": {"casesensitivity": "insensitive"}}}"#),
            &live(t),
        );
        assert!(p.is_in_sync());
        assert!(
            matches!(&p.datasets[0].findings[0], Finding::CreateOnlyDrift { property, .. } if property == "casesensitivity")
        );
        assert!(p.datasets[0].findings[0].describe().contains("rename it into place"));
    }

    #[test]
    fn unmanaged_datasets_and_local_properties_are_reported_not_touched() {
        let t = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist/a|mountpoint|/persist/a|inherited from tank/persist
             tank/persist/a|atime|off|local
             tank/persist/a|filesystem_count|0|local
             tank/persist/a|persistctl:restored-from|restic|local
             tank/persist/old|mountpoint|/persist/old|inherited from tank/persist",
        );
        let p = plan_t(false, &specs(r#"{"a": {}}"#), &live(t));
        assert!(p.is_in_sync());
        assert_eq!(p.unmanaged, ["tank/persist/old"]);
        assert_eq!(
            p.datasets[0].findings,
            [Finding::UnmanagedLocalProperty { property: "atime".into(), value: "off".into() }]
        );
    }

    #[test]
    fn pool_not_imported_skips_everything() {
        let p = plan_t(false, &specs(SONARR), &live(missing(false, &[])));
        assert!(!p.pool_imported);
        assert!(p.has_skipped() && p.is_in_sync() && !p.has_problems());
        assert_eq!(p.datasets[0].skipped.as_deref(), Some("pool tank is not imported"));
    }

    #[test]
    fn missing_parent_fails_closed_unless_create_parent() {
        let l = live(missing(true, &[]));
        let p = plan_t(false, &specs(SONARR), &l);
        assert!(p.has_problems() && p.is_in_sync());
        assert_eq!(p.datasets[0].status, "blocked");
        let p = plan_t(true, &specs(SONARR), &l);
        assert!(!p.has_problems());
        assert_eq!(
            p.actions().map(Action::describe).collect::<Vec<_>>()[0],
            "create parent tank/persist (mountpoint=/persist)"
        );
    }

    #[test]
    fn never_mounts_over_existing_files() {
        let mut l = live(tree("tank/persist|mountpoint|/persist|local\ntank/persist|mounted|yes|-"));
        l.paths.insert("/persist/sonarr".into(), dir(false, 0, 0, 0o755));
        let p = plan_t(false, &specs(SONARR), &l);
        assert_eq!(p.datasets[0].status, "blocked");
        assert!(p.datasets[0].actions.is_empty());
        assert!(p.datasets[0].problems[0].contains("would hide"), "{:?}", p.datasets[0].problems);
        assert!(
            p.datasets[0].problems[0].contains("persistctl migrate sonarr --from /persist/sonarr"),
            "names the command that moves them in: {:?}",
            p.datasets[0].problems
        );
        for probe in [PathProbe::Symlink, PathProbe::NotADirectory] {
            l.paths.insert("/persist/sonarr".into(), probe);
            assert_eq!(plan_t(false, &specs(SONARR), &l).datasets[0].status, "blocked");
        }
        l.paths.insert("/persist/sonarr".into(), dir(true, 0, 0, 0o755));
        assert_eq!(plan_t(false, &specs(SONARR), &l).datasets[0].status, "create");
    }

    #[test]
    fn nothing_is_mounted_under_a_parent_that_is_not_mounted_yet() {
        let legacy = "tank/persist|mountpoint|legacy|local
             tank/persist|mounted|yes|-
                      tank/persist|canmount|on|default
                      tank/persist|mounted|no|-";
        let p = plan_t(false, &specs(SONARR), &live(tree(legacy)));
        assert_eq!(p.datasets[0].status, "blocked");
        assert!(p.datasets[0].actions.is_empty());
        assert!(p.datasets[0].problems[0].contains("(mountpoint=legacy) is not mounted"), "{:?}", p.datasets[0]);
        // mounted, or a pure container (canmount=off), is fine
        for ok in [
            "tank/persist|mountpoint|legacy|local\ntank/persist|mounted|yes|-",
            "tank/persist|mountpoint|/persist|local\ntank/persist|canmount|off|local\ntank/persist|mounted|no|-",
        ] {
            let p = plan_t(false, &specs(SONARR), &live(tree(ok)));
            assert_eq!(p.datasets[0].status, "create", "{ok}");
        }
        // property changes that mount nothing still go ahead
        let t = tree(&format!(
            "{legacy}\ntank/persist/sonarr|recordsize|131072|default\ntank/persist/sonarr|mountpoint|/persist/sonarr|local"
        ));
        let p = plan_t(false, &specs(SONARR), &live(t));
        assert_eq!(p.datasets[0].status, "update", "{:?}", p.datasets[0]);
    }

    #[test]
    fn ownership_is_fixed_only_when_it_differs() {
        let t = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist/a|mountpoint|/persist/a|inherited from tank/persist
             tank/persist/a|mounted|yes|-",
        );
        let s = specs(r#"{"a": {"owner": "sonarr", "group": "100", "mode": "0750"}}"#);
        let mut l = live(t);
        l.users.insert("sonarr".into(), Some(274));
        l.paths.insert("/persist/a".into(), dir(true, 274, 100, 0o750));
        assert!(plan_t(false, &s, &l).is_in_sync());
        l.paths.insert("/persist/a".into(), dir(true, 0, 100, 0o755));
        let p = plan_t(false, &s, &l);
        assert_eq!(
            p.datasets[0].actions,
            [Action::Ownership {
                dataset: "tank/persist/a".into(),
                path: "/persist/a".into(),
                target: OwnershipTarget { uid: Some(274), gid: Some(100), mode: Some(0o750) }
            }]
        );
        l.paths.insert("/persist/a".into(), PathProbe::Symlink);
        let p = plan_t(false, &s, &l);
        assert!(p.datasets[0].problems[0].contains("symlink"));
        l.users.insert("sonarr".into(), None);
        let p = plan_t(false, &s, &l);
        assert!(p.datasets[0].problems.iter().any(|e| e == "user \"sonarr\" does not exist"));
    }

    #[test]
    fn unmounted_dataset_reports_instead_of_touching_the_directory_below() {
        let t = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist/a|mountpoint|/persist/a|inherited from tank/persist
             tank/persist/a|mounted|no|-",
        );
        let p = plan_t(false, &specs(r#"{"a": {"mode": "0700"}}"#), &live(t));
        assert!(p.is_in_sync());
        assert_eq!(p.datasets[0].findings, [Finding::NotMounted]);
    }

    #[test]
    fn moving_an_unmounted_noauto_dataset_fixes_no_root_it_will_not_have() {
        // `zfs set mountpoint` leaves an unmounted canmount=noauto dataset unmounted: there is no root
        // at the new path to chown, and one at the old path is not its root either.
        let t = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist|mounted|yes|-
             tank/persist/a|mountpoint|/old/a|local
             tank/persist/a|canmount|noauto|local
             tank/persist/a|mounted|no|-",
        );
        let mut l = live(t);
        l.users.insert("sonarr".into(), Some(274));
        let p = plan_t(false, &specs(r#"{"a": {"owner": "sonarr", "mode": "0750"}}"#), &l);
        let actions = &p.datasets[0].actions;
        assert_eq!(actions.len(), 1, "{:?}", p.datasets[0]);
        assert!(
            matches!(&actions[0], Action::Set { changes, .. } if changes[0].property == "mountpoint"),
            "{actions:?}"
        );
        assert!(p.datasets[0].findings.contains(&Finding::NotMounted), "{:?}", p.datasets[0]);
    }

    #[test]
    fn moving_a_mounted_dataset_onto_files_is_refused() {
        let t = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist/a|mountpoint|/old/a|local
             tank/persist/a|mounted|yes|-",
        );
        let mut l = live(t);
        l.paths.insert("/persist/a".into(), dir(false, 0, 0, 0o755));
        let p = plan_t(false, &specs(r#"{"a": {}}"#), &l);
        assert_eq!(p.datasets[0].status, "blocked");
        assert!(p.datasets[0].actions.is_empty());
    }

    #[test]
    fn probes_cover_wanted_and_live_mountpoints() {
        let t = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist/a|mountpoint|/old/a/|local",
        );
        let paths = paths_to_probe(&specs(r#"{"a": {}, "b": {}}"#), &t, "/persist");
        assert_eq!(paths.into_iter().collect::<Vec<_>>(), ["/old/a", "/persist/a", "/persist/b"]);
        // a parent createParent would make mounts at parentMount: probed too
        let paths = paths_to_probe(&specs(r#"{"a": {}}"#), &missing(true, &[]), "/persist");
        assert_eq!(paths.into_iter().collect::<Vec<_>>(), ["/persist", "/persist/a"]);
    }

    #[test]
    fn an_unmounted_dataset_is_not_given_a_mountpoint_over_files() {
        // The seed's migration case: tank/persist/sonarr exists with mountpoint=legacy, not mounted, and the
        // old data is a plain directory at the new mountpoint. libzfs would mount it there on `zfs set`.
        let t = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist|mounted|yes|-
             tank/persist/sonarr|mountpoint|legacy|local
             tank/persist/sonarr|canmount|on|default
             tank/persist/sonarr|mounted|no|-",
        );
        let mut l = live(t);
        l.paths.insert("/persist/sonarr".into(), dir(false, 0, 0, 0o755));
        let p = plan_t(false, &specs(r#"{"sonarr": {}}"#), &l);
        assert_eq!(p.datasets[0].status, "blocked", "{:?}", p.datasets[0]);
        assert!(p.datasets[0].actions.is_empty());
        let why = &p.datasets[0].problems[0];
        assert!(
            why.contains("setting it would mount it")
                && why.contains("persistctl migrate sonarr --from /persist/sonarr"),
            "{why}"
        );
        // canmount=noauto: a mountpoint change does not mount it, so it goes ahead
        let t = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist|mounted|yes|-
             tank/persist/sonarr|mountpoint|legacy|local
             tank/persist/sonarr|canmount|noauto|local
             tank/persist/sonarr|mounted|no|-",
        );
        let mut l = live(t);
        l.paths.insert("/persist/sonarr".into(), dir(false, 0, 0, 0o755));
        assert_eq!(plan_t(false, &specs(r#"{"sonarr": {}}"#), &l).datasets[0].status, "update");
        // an empty directory hides nothing
        let mut l = l.clone();
        l.parent = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist|mounted|yes|-
             tank/persist/sonarr|mountpoint|legacy|local
             tank/persist/sonarr|mounted|no|-",
        );
        l.paths.insert("/persist/sonarr".into(), dir(true, 0, 0, 0o755));
        assert_eq!(plan_t(false, &specs(r#"{"sonarr": {}}"#), &l).datasets[0].status, "update");
    }

    #[test]
    fn create_parent_never_mounts_over_files_and_creates_ancestors_unmounted() {
        let mut l = live(missing(true, &["tank/a", "tank/a/b"]));
        l.paths.insert("/persist".into(), dir(false, 0, 0, 0o755));
        let p = plan_t(true, &specs(SONARR), &l);
        assert!(p.parent_actions.is_empty(), "{:?}", p.parent_actions);
        assert!(p.parent_problems[0].contains("/persist already holds files"), "{:?}", p.parent_problems);
        assert_eq!(p.datasets[0].status, "blocked");
        assert!(p.datasets[0].actions.is_empty());
        l.paths.insert("/persist".into(), PathProbe::Absent);
        let p = plan_t(true, &specs(SONARR), &l);
        assert_eq!(
            p.parent_actions,
            [
                Action::CreateAncestor { dataset: "tank/a".into() },
                Action::CreateAncestor { dataset: "tank/a/b".into() },
                Action::CreateParent { dataset: PARENT.into(), mountpoint: "/persist".into() },
            ]
        );
    }

    #[test]
    fn an_unprobed_mountpoint_is_never_taken_as_free() {
        let l = live(tree("tank/persist|mountpoint|/persist|local\ntank/persist|mounted|yes|-"));
        let p = plan(PARENT, "/persist", false, &specs(SONARR), &l);
        assert_eq!(p.datasets[0].status, "blocked");
        assert!(p.datasets[0].problems[0].contains("was not probed"), "{:?}", p.datasets[0].problems);
    }

    #[test]
    fn outer_mountpoints_are_worked_on_before_inner_ones() {
        let l = live(tree("tank/persist|mountpoint|/persist|local\ntank/persist|mounted|yes|-"));
        let services =
            r#"{"cache": {"mountpoint": "/srv/media/cache"}, "media": {"mountpoint": "/srv/media"}, "a": {}}"#;
        let p = plan_t(false, &specs(services), &l);
        let order: Vec<&str> = execution_order(&p).into_iter().map(|i| p.datasets[i].service.as_str()).collect();
        assert_eq!(order, ["a", "media", "cache"]);
        let names: Vec<&str> = p.datasets.iter().map(|d| d.service.as_str()).collect();
        assert_eq!(names, ["a", "cache", "media"], "reports stay sorted by name");
    }

    #[test]
    fn mount_targets_are_the_paths_a_step_may_mount_on() {
        let create = Action::Create { dataset: "t/a".into(), properties: vec![("mountpoint".into(), "/a".into())] };
        assert_eq!(create.mount_target(), Some("/a"));
        let change = |value: &str| Action::Set {
            dataset: "t/a".into(),
            changes: vec![Change { property: "mountpoint".into(), value: value.into(), was: None, was_source: None }],
        };
        assert_eq!(change("/b").mount_target(), Some("/b"));
        assert_eq!(change("legacy").mount_target(), None);
        assert_eq!(Action::CreateAncestor { dataset: "t/x".into() }.mount_target(), None);
        assert_eq!(mount_blocker("/a", &PathProbe::Absent), None);
        assert!(mount_blocker("/a", &dir(false, 0, 0, 0)).is_some_and(|w| w.contains("would hide")));
    }

    #[test]
    fn the_defensive_overlay_off_is_not_reported_as_unmanaged() {
        let t = tree(
            "tank/persist|mountpoint|/persist|local
             tank/persist/a|mountpoint|/persist/a|local
             tank/persist/a|overlay|off|local
             tank/persist/a|mounted|yes|-",
        );
        let mut l = live(t);
        l.paths.insert("/persist/a".into(), dir(false, 0, 0, 0o755));
        let p = plan_t(false, &specs(r#"{"a": {}}"#), &l);
        assert!(p.datasets[0].findings.is_empty(), "{:?}", p.datasets[0].findings);
    }
}
