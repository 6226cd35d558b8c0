//! Rendering: aligned tables for people, JSON (documented in `docs/json-output.md`) for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::apply::{Outcome, Report};
use crate::plan::{Action, Plan};
use crate::zfs::LiveDataset;

/// The longest cell a table shows, in characters; a longer one (a huge property value) is cut, and says
/// so. The `--json` output always carries the whole value.
pub const MAX_CELL_CHARS: usize = 1024;

/// A cell as shown: at most [`MAX_CELL_CHARS`] characters.
fn shown(cell: &str) -> std::borrow::Cow<'_, str> {
    let count = cell.chars().count();
    if count <= MAX_CELL_CHARS {
        return cell.into();
    }
    let kept: String = cell.chars().take(MAX_CELL_CHARS).collect();
    format!("{kept}… ({} more characters; see --json)", count - MAX_CELL_CHARS).into()
}

/// Lays rows out in columns separated by two spaces; the last column is not padded. Never panics,
/// whatever the cells hold: padding is written by hand (`format!`'s width is limited to 65535).
#[must_use]
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = headers.iter().map(ToString::to_string).collect();
    let cells: Vec<Vec<std::borrow::Cow<'_, str>>> =
        std::iter::once(&header).chain(rows).map(|row| row.iter().map(|c| shown(c)).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    for row in &cells {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i != last {
                let width = widths.get(i).copied().unwrap_or(0);
                line.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.chars().count())));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

fn plan_rows(plan: &Plan, outcome_of: &dyn Fn(&Action) -> Option<String>) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for action in &plan.parent_actions {
        let mut row = vec!["(parent)".into(), plan.parent_dataset.clone(), "create".into(), action.describe()];
        row.extend(outcome_of(action));
        rows.push(row);
    }
    for d in &plan.datasets {
        let detail = |i: usize| {
            if i == 0 {
                (d.service.clone(), d.dataset.clone(), d.status.to_string())
            } else {
                (String::new(), String::new(), String::new())
            }
        };
        if d.actions.is_empty() {
            let (s, n, st) = detail(0);
            let note = d.skipped.clone().unwrap_or_default();
            let mut row = vec![s, n, st, note];
            if outcome_of(&Action::CreateParent { dataset: String::new(), mountpoint: String::new() }).is_some() {
                row.push(String::new());
            }
            rows.push(row);
        }
        for (i, action) in d.actions.iter().enumerate() {
            let (s, n, st) = detail(i);
            let mut row = vec![s, n, st, action.describe()];
            row.extend(outcome_of(action));
            rows.push(row);
        }
    }
    rows
}

fn notes(plan: &Plan) -> String {
    let mut out = String::new();
    let problems: Vec<String> = plan
        .parent_problems
        .iter()
        .cloned()
        .chain(plan.datasets.iter().flat_map(|d| d.problems.iter().map(move |p| format!("{}: {p}", d.dataset))))
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\nproblems (nothing was done about these):");
        for p in problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    let findings: Vec<String> = plan
        .datasets
        .iter()
        .flat_map(|d| d.findings.iter().map(move |f| format!("{}: {}", d.dataset, f.describe())))
        .collect();
    if !findings.is_empty() {
        let _ = writeln!(out, "\nfindings:");
        for f in findings {
            let _ = writeln!(out, "  {f}");
        }
    }
    if !plan.unmanaged.is_empty() {
        let _ = writeln!(out, "\nunmanaged datasets under {} (not in the config, untouched):", plan.parent_dataset);
        for u in &plan.unmanaged {
            let _ = writeln!(out, "  {u}");
        }
    }
    out
}

/// The plan as a table, with problems, findings and unmanaged datasets after it.
#[must_use]
pub fn plan_text(plan: &Plan) -> String {
    let mut out = table(&["SERVICE", "DATASET", "STATUS", "ACTION"], &plan_rows(plan, &|_| None));
    out.push_str(&notes(plan));
    let pending = plan.actions().count();
    let _ = writeln!(
        out,
        "\n{}",
        if pending == 0 { "in sync: nothing to do".to_string() } else { format!("{pending} change(s) pending") }
    );
    out
}

/// An apply report as a table with a RESULT column and a summary line.
#[must_use]
pub fn report_text(report: &Report) -> String {
    let outcome_of = |action: &Action| -> Option<String> {
        report.results.iter().find(|r| &r.action == action).map(|r| match &r.outcome {
            Outcome::Done => "done".to_string(),
            Outcome::Unchanged => "unchanged".to_string(),
            Outcome::Failed(e) => format!("FAILED: {e}"),
            Outcome::NotRun(why) => format!("not run: {why}"),
            Outcome::Deferred(why) => format!("left alone: {why}"),
        })
    };
    let mut out = table(&["SERVICE", "DATASET", "STATUS", "ACTION", "RESULT"], &plan_rows(&report.plan, &outcome_of));
    out.push_str(&notes(&report.plan));
    let count = |f: &dyn Fn(&Outcome) -> bool| report.results.iter().filter(|r| f(&r.outcome)).count();
    let done = count(&|o| matches!(o, Outcome::Done | Outcome::Unchanged));
    let failed = count(&|o| matches!(o, Outcome::Failed(_)));
    let not_run = count(&|o| matches!(o, Outcome::NotRun(_) | Outcome::Deferred(_)));
    let in_sync = report.plan.datasets.iter().filter(|d| d.status == "in-sync").count();
    let skipped = report.plan.datasets.iter().filter(|d| d.skipped.is_some()).count();
    let blocked = report.plan.datasets.iter().filter(|d| !d.problems.is_empty()).count();
    let _ = writeln!(
        out,
        "\nsummary: {done} action(s) done, {failed} failed, {not_run} not run; {in_sync} dataset(s) in sync, {blocked} blocked, {skipped} skipped"
    );
    out
}

/// JSON for `plan --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanJson<'a> {
    /// Shape version of this output.
    pub format: u32,
    /// No actions pending.
    pub in_sync: bool,
    /// Problems need a person.
    pub has_problems: bool,
    /// The plan.
    pub plan: &'a Plan,
}

/// JSON for `apply --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyJson<'a> {
    /// Shape version of this output.
    pub format: u32,
    /// `--dry-run` / dry-activate: nothing executed, `results` empty.
    pub dry_run: bool,
    /// Any action failed or a dataset is blocked.
    pub failed: bool,
    /// The plan and results.
    #[serde(flatten)]
    pub report: &'a Report,
}

/// One row of `show`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShowRow {
    /// Dataset.
    pub dataset: String,
    /// Declared in the config (or the parent).
    pub managed: bool,
    /// Property.
    pub property: String,
    /// Value (`zfs get -p` form).
    pub value: String,
    /// Source column as ZFS prints it.
    pub source: String,
}

/// Rows for `show`: the chosen properties of every dataset in the tree.
#[must_use]
pub fn show_rows(
    tree: &BTreeMap<String, LiveDataset>,
    managed: &dyn Fn(&str) -> bool,
    properties: &[String],
) -> Vec<ShowRow> {
    let mut rows = Vec::new();
    for (name, ds) in tree {
        for property in properties {
            if let Some(v) = ds.properties.get(property) {
                rows.push(ShowRow {
                    dataset: name.clone(),
                    managed: managed(name),
                    property: property.clone(),
                    value: v.value.clone(),
                    source: v.source.display(),
                });
            }
        }
    }
    rows
}

/// `show` as a table.
#[must_use]
pub fn show_text(rows: &[ShowRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let name = if r.managed { r.dataset.clone() } else { format!("{} (unmanaged)", r.dataset) };
            vec![name, r.property.clone(), r.value.clone(), r.source.clone()]
        })
        .collect();
    table(&["DATASET", "PROPERTY", "VALUE", "SOURCE"], &cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_by_width() {
        let out = table(&["A", "BB"], &[vec!["long".into(), "x".into()], vec!["s".into(), "yy".into()]]);
        assert_eq!(out, "A     BB\nlong  x\ns     yy\n");
    }
    #[test]
    fn a_huge_cell_is_cut_and_never_panics() {
        let huge = "x".repeat(70_000);
        let text = table(&["A", "B"], &[vec![huge.clone(), "y".into()], vec!["z".into(), huge]]);
        assert!(text.contains("more characters; see --json"), "{}", &text[..200]);
        assert!(text.lines().all(|l| l.chars().count() < 2 * MAX_CELL_CHARS + 200));
        let small = table(&["A", "B"], &[vec!["1".into(), "2".into()], vec!["long".into(), "3".into()]]);
        assert_eq!(small, "A     B\n1     2\nlong  3\n");
    }
}
