//! The thin shell around `plan`: gathers live state (one `zfs get` for the whole tree, a probe per
//! mountpoint, account look-ups), then executes a plan action by action, checking every exit status
//! and carrying on with the other datasets after a failure.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Validated;
use crate::fsprobe;
use crate::plan::{self, Action, LiveState, ParentState, Plan};
use crate::zfs::parse::pool_of;
use crate::zfs::{TreeRead, Zfs};

/// Reads everything `plan` needs.
pub fn gather(zfs: &Zfs, config: &Validated) -> anyhow::Result<LiveState> {
    let parent_name = &config.config.datasets.parent_dataset;
    // Only what planning looks at is asked for, by name: mount state, the configured properties and
    // every settable native one (for the "set locally but not in the config" report). Nobody else's
    // user properties are printed, so their values (free text) cannot forge rows or fail the run.
    let parent = match zfs.read_tree(parent_name, &planner_properties(config))? {
        TreeRead::Found(tree) => ParentState::Present(tree),
        // Only on this path does a second process run: is it the pool or just the parent?
        TreeRead::Missing => {
            let ancestors = ancestors_of(parent_name);
            let existing = zfs.existing(&ancestors)?;
            ParentState::Missing {
                pool_imported: existing.contains(pool_of(parent_name)),
                missing_ancestors: ancestors.into_iter().filter(|a| !existing.contains(a)).collect(),
            }
        }
    };
    let pool_missing = matches!(parent, ParentState::Missing { pool_imported: false, .. });
    let paths = if pool_missing {
        BTreeMap::new()
    } else {
        plan::paths_to_probe(&config.specs, &parent, &config.config.datasets.parent_mount)
            .into_iter()
            .map(|p| {
                let probe = fsprobe::probe(&p);
                (p, probe)
            })
            .collect()
    };
    let (user_names, group_names) = plan::accounts_to_resolve(&config.specs);
    let mut users = BTreeMap::new();
    for name in user_names {
        let id = fsprobe::lookup_user(&name)?;
        users.insert(name, id);
    }
    let mut groups = BTreeMap::new();
    for name in group_names {
        let id = fsprobe::lookup_group(&name)?;
        groups.insert(name, id);
    }
    Ok(LiveState { parent, paths, users, groups, zfs_version: loaded_zfs_version() })
}

/// What the planner's one `zfs get` asks for: the configured properties, mount state, and every
/// settable native property (for the "set locally but not in the config" report).
#[must_use]
pub fn planner_properties(config: &Validated) -> Vec<&str> {
    let mut asked: Vec<&str> = config.specs.iter().flat_map(|s| s.properties.iter().map(|p| p.name.as_str())).collect();
    asked.extend(["mountpoint", "canmount", "mounted"]);
    for native in crate::zfs::props::settable_native() {
        asked.push(native);
    }
    asked
}

/// `tank/a/b/persist` → `[tank, tank/a, tank/a/b]`: the pool first, the parent itself not included.
fn ancestors_of(dataset: &str) -> Vec<String> {
    let parts: Vec<&str> = dataset.split('/').collect();
    (1..parts.len()).map(|n| parts[..n].join("/")).collect()
}

/// The loaded kernel module's version, from `/sys/module/zfs/version` (`2.3.2-2~bpo12+2`).
fn loaded_zfs_version() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/sys/module/zfs/version").ok()?;
    parse_version(&text)
}

/// `2.1.11-1+deb12u1` → (2, 1).
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_run_from_the_pool_down() {
        assert_eq!(ancestors_of("tank/a/b/persist"), ["tank", "tank/a", "tank/a/b"]);
        assert_eq!(ancestors_of("tank/persist"), ["tank"]);
        assert!(ancestors_of("tank").is_empty());
    }

    #[test]
    fn module_versions_parse() {
        assert_eq!(parse_version("2.3.2-2~bpo12+2\n"), Some((2, 3)));
        assert_eq!(parse_version("2.1.11-1+deb12u1"), Some((2, 1)));
        assert_eq!(parse_version("garbage"), None);
    }
}

/// Gathers live state and plans.
pub fn make_plan(zfs: &Zfs, config: &Validated) -> anyhow::Result<Plan> {
    let live = gather(zfs, config)?;
    let d = &config.config.datasets;
    Ok(plan::plan(&d.parent_dataset, &d.parent_mount, d.create_parent, &config.specs, &live))
}

/// What happened to one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "detail")]
pub enum Outcome {
    /// Done.
    Done,
    /// Nothing needed doing after all (ownership already right).
    Unchanged,
    /// Failed, with the error.
    Failed(String),
    /// Not attempted because an earlier step failed.
    NotRun(String),
    /// Left to the persistctl run that owns the dataset now (a restore or migration holds its lock; it
    /// applies the dataset's spec itself). Not a failure.
    Deferred(String),
}

/// One executed action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionResult {
    /// The dataset it concerns.
    pub dataset: String,
    /// The action.
    pub action: Action,
    /// How it went: `"outcome"` (`done`, `unchanged`, `failed`, `not-run`) and `"detail"`.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// A plan and what executing it did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The plan executed.
    pub plan: Plan,
    /// One entry per action, in order.
    pub results: Vec<ActionResult>,
}

impl Report {
    /// Whether any action failed or was not run.
    #[must_use]
    pub fn has_failures(&self) -> bool {
        self.results.iter().any(|r| matches!(r.outcome, Outcome::Failed(_) | Outcome::NotRun(_)))
    }
}

fn dataset_of(action: &Action) -> &str {
    match action {
        Action::CreateAncestor { dataset }
        | Action::CreateParent { dataset, .. }
        | Action::Create { dataset, .. }
        | Action::Set { dataset, .. }
        | Action::Ownership { dataset, .. } => dataset,
    }
}

fn run_action(zfs: &Zfs, action: &Action) -> Outcome {
    // The probes were taken before earlier steps changed the world (a dataset mounted above this path, a
    // service writing into it): look again right before mounting anything.
    if let Some(path) = action.mount_target() {
        if let Some(why) = plan::mount_blocker(path, &fsprobe::probe(path)) {
            return Outcome::Failed(format!("refused just before running it: {why}"));
        }
    }
    let result = match action {
        Action::CreateAncestor { dataset } => zfs
            .create(dataset, &[("canmount".to_string(), "off".to_string())])
            .map(|()| true)
            .map_err(|e| e.to_string()),
        Action::CreateParent { dataset, mountpoint } => {
            let mut props = vec![("mountpoint".to_string(), mountpoint.clone())];
            props.extend(plan::DEFENSIVE_CREATE_PROPERTIES.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())));
            zfs.create(dataset, &props).map(|()| true).map_err(|e| e.to_string())
        }
        Action::Create { dataset, properties } => {
            zfs.create(dataset, properties).map(|()| true).map_err(|e| e.to_string())
        }
        Action::Set { dataset, changes } => {
            let props: Vec<(String, String)> = changes.iter().map(|c| (c.property.clone(), c.value.clone())).collect();
            zfs.set(dataset, &props).map(|()| true).map_err(|e| e.to_string())
        }
        Action::Ownership { path, target, .. } => {
            fsprobe::enforce_ownership(path, target).map_err(|e| format!("{e:#}"))
        }
    };
    match result {
        Ok(true) => Outcome::Done,
        Ok(false) => Outcome::Unchanged,
        Err(e) => Outcome::Failed(e),
    }
}

/// Executes every action of a plan. A failure stops the rest of that dataset's actions, never the others'.
#[must_use]
pub fn execute(zfs: &Zfs, plan: Plan) -> Report {
    execute_owning(zfs, plan, None)
}

/// As [`execute`], and a dataset whose per-dataset lock (beside `lock_base`) another run holds — a
/// `preseed` restoring it, a `migrate` moving data in — is left alone this time: its steps are "not run".
#[must_use]
pub fn execute_owning(zfs: &Zfs, plan: Plan, lock_base: Option<&std::path::Path>) -> Report {
    let mut results = Vec::new();
    let mut parent_failed = false;
    for action in &plan.parent_actions {
        let outcome = run_action(zfs, action);
        parent_failed |= matches!(outcome, Outcome::Failed(_));
        log_outcome(action, &outcome);
        results.push(ActionResult { dataset: dataset_of(action).to_string(), action: action.clone(), outcome });
    }
    for dataset in plan::execution_order(&plan).into_iter().map(|i| &plan.datasets[i]) {
        let mut blocked_by: Option<String> =
            parent_failed.then(|| format!("parent {} was not created", plan.parent_dataset));
        let mut deferred = None;
        let _owned = match (lock_base, dataset.actions.is_empty(), &blocked_by) {
            (Some(base), false, None) => {
                match crate::lock::try_acquire(&crate::lock::dataset_lock_path(base, &dataset.dataset)) {
                    Ok(Some(held)) => Some(held),
                    Ok(None) => {
                        deferred = Some(
                            "a persistctl preseed or migrate owns this dataset now (its lock is held) and applies \
                             its spec itself"
                                .to_string(),
                        );
                        None
                    }
                    Err(e) => {
                        blocked_by = Some(format!("{e:#}"));
                        None
                    }
                }
            }
            _ => None,
        };
        if let Some(why) = deferred {
            for action in &dataset.actions {
                let outcome = Outcome::Deferred(why.clone());
                log_outcome(action, &outcome);
                results.push(ActionResult { dataset: dataset.dataset.clone(), action: action.clone(), outcome });
            }
            continue;
        }
        for action in &dataset.actions {
            let outcome = match &blocked_by {
                Some(why) => Outcome::NotRun(why.clone()),
                None => run_action(zfs, action),
            };
            if matches!(outcome, Outcome::Failed(_)) {
                blocked_by = Some("an earlier step for this dataset failed".into());
            }
            log_outcome(action, &outcome);
            results.push(ActionResult { dataset: dataset.dataset.clone(), action: action.clone(), outcome });
        }
    }
    Report { plan, results }
}

fn log_outcome(action: &Action, outcome: &Outcome) {
    let dataset = dataset_of(action);
    match outcome {
        Outcome::Done => tracing::info!(%dataset, "{}", action.describe()),
        Outcome::Unchanged => tracing::debug!(%dataset, "already right: {}", action.describe()),
        Outcome::Failed(e) => tracing::error!(%dataset, "{}: {e}", action.describe()),
        Outcome::NotRun(why) => tracing::warn!(%dataset, "not run ({why}): {}", action.describe()),
        Outcome::Deferred(why) => tracing::warn!(%dataset, "left alone ({why}): {}", action.describe()),
    }
}

/// Plans and executes `apply` for one service's spec only: creates the dataset or sets its properties
/// (mountpoint included) and its root's owner and mode, exactly as `apply` would. Used by `preseed` and
/// `migrate` before they put data in.
///
/// # Errors
/// The pool is not imported, the plan has problems (each named), or a step failed.
pub fn apply_service(zfs: &Zfs, config: &Validated, service: &str) -> anyhow::Result<()> {
    let mut one = config.clone();
    one.specs.retain(|s| s.service == service);
    let Some(spec) = one.specs.first() else { anyhow::bail!("service {service:?} is not in the config") };
    let dataset = spec.dataset.clone();
    let plan = make_plan(zfs, &one)?;
    if plan.has_skipped() {
        anyhow::bail!("the pool of {} is not imported; cannot create {dataset}", plan.parent_dataset);
    }
    if plan.has_problems() {
        let problems: Vec<String> =
            plan.parent_problems.iter().chain(plan.datasets.iter().flat_map(|d| d.problems.iter())).cloned().collect();
        anyhow::bail!("cannot create {dataset}: {}", problems.join("; "));
    }
    if execute(zfs, plan).has_failures() {
        anyhow::bail!("Failed to create or set up {dataset} as apply would (see the errors above)");
    }
    Ok(())
}
