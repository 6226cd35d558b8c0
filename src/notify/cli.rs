//! `persistctl notify`: what the subcommand does, so that `main.rs` only parses arguments.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use super::{
    BackendOutcome, Prepared, Priority, Rendered, deliver, is_unit, parse_vars, prepare, template_for, worst_case,
};
use crate::config;

/// Exit code: every backend the notification reaches took it (or the template is disabled).
pub const EXIT_DELIVERED: u8 = 0;
/// Exit code: nothing was sent: a bad config, an unknown template, a bad `--var`, `--strict`.
pub const EXIT_NOT_SENT: u8 = 1;
/// Exit code: at least one backend did not take it after every attempt (the others may have).
pub const EXIT_DELIVERY_FAILED: u8 = 2;

/// How long gathering a failed unit's journal lines may take.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The arguments of `persistctl notify`.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// A template name, or a unit name (it has a `.`) that failed.
    pub target: String,
    /// `name=value` pairs.
    pub vars: Vec<String>,
    /// A variable the template needs that is not given is an error (default: shown as `${name?}`).
    pub strict: bool,
    /// Render and print; send nothing.
    pub dry_run: bool,
    /// Overrides the template's priority (e.g. a status change's new state).
    pub priority: Option<Priority>,
    /// Machine-readable output.
    pub json: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Output<'a> {
    format: u32,
    template: &'a str,
    dry_run: bool,
    disabled: bool,
    rendered: Option<&'a Rendered>,
    /// `--dry-run`: where it would go.
    targets: Vec<String>,
    backends: &'a [BackendOutcome],
    delivered: bool,
}

/// Runs `persistctl notify`; returns the exit code.
pub fn run(config_path: &Path, args: &Args) -> anyhow::Result<u8> {
    let validated = config::load(config_path)?;
    let Some(n) = validated.config.notifications.as_ref() else {
        anyhow::bail!(
            "Failed to notify: {} has no `notifications` section (set modules.notifications.enable)",
            config_path.display()
        );
    };
    let given = parse_vars(&args.vars).map_err(anyhow::Error::msg).context("Failed to read --var")?;
    let template = template_for(n, &args.target);
    let vars = if is_unit(&args.target) {
        let mut vars = super::unit_variables(&args.target, Instant::now() + JOURNAL_TIMEOUT);
        vars.extend(given);
        vars
    } else {
        given
    };
    let prepared = prepare(n, &template, vars).map_err(anyhow::Error::msg).context("Failed to notify")?;
    let rendered = match prepared {
        Prepared::Disabled => {
            tracing::info!("template {template} is disabled (templates.{template}.enable = false): nothing sent");
            if args.json {
                print_json(&Output {
                    format: 1,
                    template: &template,
                    dry_run: args.dry_run,
                    disabled: true,
                    rendered: None,
                    targets: Vec::new(),
                    backends: &[],
                    delivered: false,
                })?;
            }
            return Ok(EXIT_DELIVERED);
        }
        Prepared::Ready(mut rendered) => {
            if let Some(priority) = args.priority {
                rendered.priority = priority;
            }
            rendered
        }
    };
    if !rendered.missing.is_empty() {
        let list = rendered.missing.join(", ");
        if args.strict {
            anyhow::bail!("Failed to notify: template {template} needs variables that were not given: {list}");
        }
        tracing::warn!("template {template}: variables not given (shown as ${{name?}}): {list}");
    }
    let targets = super::deliver::target_names(&n.backends, &rendered);
    if args.dry_run {
        if args.json {
            print_json(&Output {
                format: 1,
                template: &template,
                dry_run: true,
                disabled: false,
                rendered: Some(&rendered),
                targets,
                backends: &[],
                delivered: false,
            })?;
        } else {
            print!("{}", dry_run_text(&rendered, &targets));
        }
        return Ok(EXIT_DELIVERED);
    }
    if targets.is_empty() {
        tracing::warn!("no enabled backend takes priority {}: nothing sent", rendered.priority);
    }
    // Every backend's attempts and pauses fit in this; one more second for killing a program.
    let deadline = crate::child::deadline_in(worst_case(n).saturating_add(Duration::from_secs(1)));
    let outcomes = deliver(n, &rendered, deadline);
    let delivered = outcomes.iter().all(|o| o.delivered);
    if args.json {
        print_json(&Output {
            format: 1,
            template: &template,
            dry_run: false,
            disabled: false,
            rendered: Some(&rendered),
            targets: Vec::new(),
            backends: &outcomes,
            delivered,
        })?;
    } else {
        print!("{}", outcome_text(&rendered, &outcomes));
    }
    Ok(if delivered { EXIT_DELIVERED } else { EXIT_DELIVERY_FAILED })
}

/// Parses `--priority`.
pub fn parse_priority(text: &str) -> anyhow::Result<Priority> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .with_context(|| format!("Failed to read --priority {text:?} (min, low, medium, high, urgent)"))
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value).context("Failed to render JSON")?);
    Ok(())
}

/// `--dry-run`'s text.
#[must_use]
pub fn dry_run_text(r: &Rendered, targets: &[String]) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "template  {}", r.template);
    let _ = writeln!(text, "priority  {}", r.priority);
    let _ = writeln!(text, "title     {}", r.title);
    let _ = writeln!(text, "body");
    for line in r.body.lines() {
        let _ = writeln!(text, "          {line}");
    }
    let _ = writeln!(
        text,
        "to        {}",
        if targets.is_empty() { "(no enabled backend)".into() } else { targets.join(", ") }
    );
    text
}

/// One line per backend, aligned.
#[must_use]
pub fn outcome_text(r: &Rendered, outcomes: &[BackendOutcome]) -> String {
    let mut text = format!("{} ({}, {}): {}\n", r.template, r.priority, r.title, summary(outcomes));
    let width = outcomes.iter().map(|o| o.backend.len()).max().unwrap_or(0);
    for o in outcomes {
        let tries = if o.attempts == 1 { "1 attempt".to_string() } else { format!("{} attempts", o.attempts) };
        match &o.error {
            None => {
                let _ = writeln!(text, "  {:<width$}  delivered  ({tries})", o.backend);
            }
            Some(e) => {
                let _ = writeln!(text, "  {:<width$}  FAILED     ({tries}): {e}", o.backend);
            }
        }
    }
    text
}

fn summary(outcomes: &[BackendOutcome]) -> String {
    let ok = outcomes.iter().filter(|o| o.delivered).count();
    match (ok, outcomes.len()) {
        (_, 0) => "no enabled backend, nothing sent".into(),
        (ok, all) if ok == all => format!("delivered to {all} backend(s)"),
        (ok, all) => format!("delivered to {ok} of {all} backend(s)"),
    }
}

/// The longest `persistctl notify UNIT` waits with this config: the journal read, every attempt and
/// pause, and the second [`run`] allows for killing a program. A unit running it needs a longer
/// `TimeoutStartSec` (the NixOS module's is checked against this by `tests/nix_eval.rs`).
#[must_use]
pub fn longest_run(n: &super::NotificationsConfig) -> Duration {
    JOURNAL_TIMEOUT.saturating_add(worst_case(n)).saturating_add(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn outcome_lines_are_aligned_and_say_why() {
        let r = Rendered {
            template: "preseed-failure".into(),
            priority: Priority::High,
            title: "Restore Failed: sonarr".into(),
            body: "b".into(),
            variables: BTreeMap::new(),
            missing: vec![],
        };
        let outcomes = [
            BackendOutcome { backend: "ntfy/phone".into(), delivered: true, attempts: 1, error: None },
            BackendOutcome {
                backend: "webhook/ops".into(),
                delivered: false,
                attempts: 3,
                error: Some("HTTP 500".into()),
            },
        ];
        assert_eq!(
            outcome_text(&r, &outcomes),
            "preseed-failure (high, Restore Failed: sonarr): delivered to 1 of 2 backend(s)\n\
             \x20 ntfy/phone   delivered  (1 attempt)\n\
             \x20 webhook/ops  FAILED     (3 attempts): HTTP 500\n"
        );
        assert_eq!(
            outcome_text(&r, &[]),
            "preseed-failure (high, Restore Failed: sonarr): no enabled backend, nothing sent\n"
        );
        assert_eq!(
            dry_run_text(&r, &[]),
            "template  preseed-failure\npriority  high\ntitle     Restore Failed: sonarr\nbody\n          b\n\
             to        (no enabled backend)\n"
        );
    }
}
