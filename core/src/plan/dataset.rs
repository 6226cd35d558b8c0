//! Planning one service dataset: create it, or compare it with what is there (properties, mountpoint,
//! owner and mode).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{DatasetSpec, OwnershipSpec};
use crate::zfs::props::{self, PropertyClass};
use crate::zfs::{LiveDataset, PropertySource};

use super::model::{
    Action, Change, DEFENSIVE_CREATE_PROPERTIES, DatasetPlan, Finding, LiveState, OwnershipTarget, PathProbe,
};
use super::mount_blocker;

pub(super) fn skipped(spec: &DatasetSpec, reason: &str) -> DatasetPlan {
    let mut dp = new_dataset_plan(spec);
    dp.skipped = Some(reason.to_string());
    dp.status = "skipped";
    dp
}

fn new_dataset_plan(spec: &DatasetSpec) -> DatasetPlan {
    DatasetPlan {
        service: spec.service.clone(),
        dataset: spec.dataset.clone(),
        mountpoint: spec.mountpoint.clone(),
        status: "in-sync",
        actions: Vec::new(),
        findings: Vec::new(),
        problems: Vec::new(),
        skipped: None,
    }
}

pub(super) fn status_of(dp: &DatasetPlan) -> &'static str {
    if dp.skipped.is_some() {
        "skipped"
    } else if !dp.problems.is_empty() {
        "blocked"
    } else if dp.actions.iter().any(|a| matches!(a, Action::Create { .. })) {
        "create"
    } else if dp.actions.is_empty() {
        "in-sync"
    } else {
        "update"
    }
}

/// Why a mountpoint cannot take a new mount, or `None` when it can. `service`: whose new dataset it is
/// (then the files there can be migrated into it in place).
pub(super) fn occupied(path: &str, live: &LiveState, service: Option<&str>) -> Option<String> {
    let Some(probe) = live.paths.get(path) else {
        // Every path a step may mount on is probed (paths_to_probe); a missing probe is a bug, never "free".
        return Some(format!("{path} was not probed; refusing to mount there"));
    };
    let why = mount_blocker(path, probe)?;
    Some(match (probe, service) {
        (PathProbe::Directory { empty: false, .. }, Some(service)) => format!(
            "{why}; migrate them into it first (systemctl stop {service}; persistctl migrate {service} --from {path})"
        ),
        (PathProbe::Directory { empty: false, .. }, None) => format!("{why}; move them away first"),
        _ => why,
    })
}

fn resolve_ownership(spec: &OwnershipSpec, live: &LiveState, problems: &mut Vec<String>) -> Option<OwnershipTarget> {
    let resolve =
        |name: &Option<String>, table: &BTreeMap<String, Option<u32>>, kind: &str, problems: &mut Vec<String>| {
            let name = name.as_ref()?;
            if let Ok(id) = name.parse::<u32>() {
                return Some(id);
            }
            if let Some(Some(id)) = table.get(name) {
                Some(*id)
            } else {
                problems.push(format!("{kind} {name:?} does not exist"));
                None
            }
        };
    let before = problems.len();
    let uid = resolve(&spec.owner, &live.users, "user", problems);
    let gid = resolve(&spec.group, &live.groups, "group", problems);
    if problems.len() > before || spec.is_empty() {
        return None;
    }
    Some(OwnershipTarget { uid, gid, mode: spec.mode })
}

pub(super) fn plan_create(spec: &DatasetSpec, live: &LiveState) -> DatasetPlan {
    let mut dp = new_dataset_plan(spec);
    let ownership = resolve_ownership(&spec.ownership, live, &mut dp.problems);
    if let Some(why) = occupied(&spec.mountpoint, live, Some(&spec.service)) {
        dp.problems.push(why);
    }
    if !dp.problems.is_empty() {
        return dp;
    }
    let mut properties: Vec<(String, String)> =
        spec.properties.iter().map(|p| (p.name.clone(), p.value.clone())).collect();
    for (name, value) in DEFENSIVE_CREATE_PROPERTIES {
        if !properties.iter().any(|(k, _)| k == name) {
            properties.push((name.to_string(), value.to_string()));
        }
    }
    dp.actions.push(Action::Create { dataset: spec.dataset.clone(), properties });
    if let Some(target) = ownership {
        dp.actions.push(Action::Ownership { dataset: spec.dataset.clone(), path: spec.mountpoint.clone(), target });
    }
    dp
}

pub(super) fn plan_existing(spec: &DatasetSpec, live_ds: &LiveDataset, live: &LiveState) -> DatasetPlan {
    let mut dp = new_dataset_plan(spec);
    let mut changes = Vec::new();
    for wanted in &spec.properties {
        let current = live_ds.properties.get(&wanted.name);
        let in_sync =
            current.is_some_and(|c| props::in_sync(&wanted.name, &wanted.canonical, &c.value, live.zfs_version));
        if in_sync {
            continue;
        }
        if props::class_of(&wanted.name) == Some(PropertyClass::CreateOnly) {
            dp.findings.push(Finding::CreateOnlyDrift {
                property: wanted.name.clone(),
                wanted: wanted.value.clone(),
                actual: current.map_or_else(|| "unset".into(), |c| c.value.clone()),
                migration: format!(
                    "create a new dataset with -o {}={}, copy the data into it (rsync; zfs send keeps the old value), \
                     then rename it into place",
                    wanted.name, wanted.value
                ),
            });
            continue;
        }
        if wanted.name == "mountpoint" && wanted.canonical.starts_with('/') {
            // libzfs remounts a dataset whose mountpoint changes when it is mounted or canmount=on, even
            // one that was not mounted (the seed's legacy layout): that mount hides what is at the path.
            if live_ds.is_mounted() {
                if let Some(why) = occupied(&wanted.canonical, live, None) {
                    dp.problems.push(format!("cannot move the mountpoint: {why}"));
                    continue;
                }
            } else if live_ds.value("canmount").unwrap_or("on") == "on" {
                if let Some(why) = occupied(&wanted.canonical, live, None) {
                    dp.problems.push(format!(
                        "cannot set mountpoint={} on {} (not mounted now; setting it would mount it): {why}. Look at \
                         what the dataset holds first (mount -t zfs -o ro {} /mnt); if it is empty, migrate the files \
                         into it: systemctl stop {svc}; persistctl migrate {svc} --from {}",
                        wanted.canonical,
                        spec.dataset,
                        spec.dataset,
                        wanted.canonical,
                        svc = spec.service,
                    ));
                    continue;
                }
            }
        }
        changes.push(Change {
            property: wanted.name.clone(),
            value: wanted.value.clone(),
            was: current.map(|c| c.value.clone()),
            was_source: current.map(|c| c.source.display()),
        });
    }
    let wanted_names: BTreeSet<&str> = spec.properties.iter().map(|p| p.name.as_str()).collect();
    for (name, value) in &live_ds.properties {
        // Read-only counters (filesystem_count, ...) show as "local" once a pool tracks limits.
        let settable = props::class_of(name).is_some_and(|c| c != PropertyClass::ReadOnly);
        let defensive = DEFENSIVE_CREATE_PROPERTIES.iter().any(|(k, v)| k == name && *v == value.value);
        if value.source == PropertySource::Local
            && settable
            && !wanted_names.contains(name.as_str())
            && !name.starts_with("persistctl:")
            && !defensive
        {
            dp.findings.push(Finding::UnmanagedLocalProperty { property: name.clone(), value: value.value.clone() });
        }
    }
    let moving = changes.iter().any(|c| c.property == "mountpoint");
    if !changes.is_empty() {
        dp.actions.push(Action::Set { dataset: spec.dataset.clone(), changes });
    }
    let ownership = resolve_ownership(&spec.ownership, live, &mut dp.problems);
    if let Some(target) = ownership {
        // `zfs set mountpoint` remounts a mounted dataset at the new path and mounts an unmounted
        // `canmount=on` one there; an unmounted `noauto`/`off` one stays unmounted, with no root to fix.
        let mounted_after_move = live_ds.is_mounted() || live_ds.value("canmount").unwrap_or("on") == "on";
        if moving && mounted_after_move {
            // The root moves with the mount; check it where it lands.
            dp.actions.push(Action::Ownership { dataset: spec.dataset.clone(), path: spec.mountpoint.clone(), target });
        } else if live_ds.is_mounted() && !moving {
            plan_ownership(&mut dp, spec, live_ds, live, target);
        } else {
            dp.findings.push(Finding::NotMounted);
        }
    }
    dp
}

fn plan_ownership(
    dp: &mut DatasetPlan,
    spec: &DatasetSpec,
    live_ds: &LiveDataset,
    live: &LiveState,
    target: OwnershipTarget,
) {
    let path = live_ds
        .value("mountpoint")
        .map_or_else(|| spec.mountpoint.clone(), |mp| props::canonical_live("mountpoint", mp));
    match live.paths.get(&path) {
        Some(PathProbe::Directory { uid, gid, mode, .. }) => {
            let differs = target.uid.is_some_and(|u| u != *uid)
                || target.gid.is_some_and(|g| g != *gid)
                || target.mode.is_some_and(|m| m != *mode);
            if differs {
                dp.actions.push(Action::Ownership { dataset: spec.dataset.clone(), path, target });
            }
        }
        Some(PathProbe::Symlink) => {
            dp.problems.push(format!("{path} is (or passes through) a symlink; owner/mode not changed"));
        }
        Some(other) => dp.problems.push(format!("mounted root {path} is not a directory I can inspect ({other:?})")),
        None => dp.problems.push(format!("mounted root {path} was not probed")),
    }
}
