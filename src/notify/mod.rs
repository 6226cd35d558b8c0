//! Notifications (`docs/notifications.md`): templates rendered with variables and delivered to every
//! enabled backend (ntfy, webhook, Pushover, email through sendmail, a command), with timeouts and
//! retries.
//!
//! Two ways in:
//! - `persistctl notify TEMPLATE|UNIT --var k=v` ([`prepare`], [`unit_variables`], [`deliver`]), whose
//!   exit code says whether every backend took it;
//! - [`send_logged`] for code whose own result must never depend on a notification (preseed): it
//!   cannot fail, keeps to a time budget, and logs every problem.

pub mod cli;
pub mod deliver;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::child;

pub use persistctl_core::config::notifications as config;
pub use persistctl_core::notify::{message, template};

pub use config::NotificationsConfig;
pub use deliver::BackendOutcome;
pub use template::{Priority, Rendered};

/// Variables for a template: name → value.
pub type Vars = BTreeMap<String, String>;

/// The template used for a failed unit that `unitTemplates` does not name.
pub const UNIT_FAILURE_TEMPLATE: &str = "unit-failure";

/// Journal lines put into `errorMessage` for a failed unit.
const JOURNAL_LINES: &str = "20";

/// What a template name or unit resolved to, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// `templates.<name>.enable = false`: nothing is sent.
    Disabled,
    /// The rendered notification.
    Ready(Rendered),
}

/// Whether a `notify` argument names a unit (`sanoid.service`) rather than a template.
#[must_use]
pub fn is_unit(target: &str) -> bool {
    target.contains('.')
}

/// The template for `target`: itself, or for a unit its `unitTemplates` entry or `unit-failure`.
#[must_use]
pub fn template_for(n: &NotificationsConfig, target: &str) -> String {
    if is_unit(target) {
        n.unit_templates.get(target).cloned().unwrap_or_else(|| UNIT_FAILURE_TEMPLATE.to_string())
    } else {
        target.to_string()
    }
}

/// Parses `--var` arguments (`name=value`; a later one wins).
pub fn parse_vars(args: &[String]) -> Result<Vars, String> {
    let mut vars = Vars::new();
    for arg in args {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(format!("--var {arg:?}: expected name=value"));
        };
        if !template::valid_variable_name(name) {
            return Err(format!("--var {arg:?}: {name:?} is not a variable name (letters, digits, _ and -)"));
        }
        vars.insert(name.to_string(), value.to_string());
    }
    Ok(vars)
}

/// Renders `name` with `vars` (plus `hostname` when not given).
pub fn prepare(n: &NotificationsConfig, name: &str, mut vars: Vars) -> Result<Prepared, String> {
    let template = match n.template(name) {
        None => {
            return Err(format!("unknown template {name:?} (known: {})", n.template_names().join(", ")));
        }
        Some(config::Resolved::Disabled) => return Ok(Prepared::Disabled),
        Some(config::Resolved::Enabled(t)) => t,
    };
    vars.entry("hostname".into()).or_insert_with(hostname);
    template::render(name, &template, &vars).map(Prepared::Ready).map_err(|e| format!("template {name:?}: {e}"))
}

/// The variables of a failed unit: `unit`, `serviceName`, and from the environment systemd gives an
/// `OnFailure=` unit (`MONITOR_*`, systemd ≥ 251) `result`, `exitCode`, `exitStatus`, `invocationId`.
/// `env` looks a variable up (the process environment, or a table in tests).
#[must_use]
pub fn unit_environment(unit: &str, env: impl Fn(&str) -> Option<String>) -> Vars {
    let mut vars = Vars::new();
    let monitored = env("MONITOR_UNIT").filter(|u| !u.is_empty());
    // systemd unescapes `\x2d` and the like in the instance name; MONITOR_UNIT is the exact name.
    let name = monitored.unwrap_or_else(|| unit.to_string());
    let service = name.rsplit_once('.').map_or(name.as_str(), |(stem, _)| stem).to_string();
    vars.insert("unit".into(), name);
    vars.insert("serviceName".into(), service);
    for (key, var) in [
        ("MONITOR_SERVICE_RESULT", "result"),
        ("MONITOR_EXIT_CODE", "exitCode"),
        ("MONITOR_EXIT_STATUS", "exitStatus"),
        ("MONITOR_INVOCATION_ID", "invocationId"),
    ] {
        if let Some(value) = env(key).filter(|v| !v.is_empty()) {
            vars.insert(var.into(), value);
        }
    }
    vars
}

/// [`unit_environment`] plus `errorMessage`: the unit's last journal lines (of the failed run when
/// systemd said which), or why they could not be read. Never fails; never waits past `deadline`.
#[must_use]
pub fn unit_variables(unit: &str, deadline: Instant) -> Vars {
    let mut vars = unit_environment(unit, |k| std::env::var(k).ok());
    let mut cmd = std::process::Command::new("journalctl");
    cmd.args(["--no-pager", "--output=cat", "--lines", JOURNAL_LINES]);
    match vars.get("invocationId") {
        Some(id) => cmd.arg(format!("_SYSTEMD_INVOCATION_ID={id}")),
        None => cmd.arg(format!("--unit={}", vars["unit"])),
    };
    let message = match child::run(cmd, None, deadline) {
        // A failed restic job's lines may quote its repository URL with the password (restic 0.14).
        Ok(done) if done.status.success() && !done.stdout_text().trim().is_empty() => {
            crate::redact::url_userinfo(&child::tail(&done.stdout_text(), 3000))
        }
        Ok(done) if done.status.success() => format!("(no journal lines; see journalctl -u {})", vars["unit"]),
        Ok(done) => {
            format!(
                "(journalctl failed: {}; see journalctl -u {})",
                child::tail(&done.stderr_text(), 200),
                vars["unit"]
            )
        }
        Err(e) => format!("({e}; see journalctl -u {})", vars["unit"]),
    };
    vars.insert("errorMessage".into(), message);
    vars
}

/// Delivers a prepared notification to every backend its priority reaches, within `deadline`.
#[must_use]
pub fn deliver(n: &NotificationsConfig, rendered: &Rendered, deadline: Instant) -> Vec<BackendOutcome> {
    deliver::deliver(&n.backends, rendered, &deliver::Policy::from_config(n, deadline))
}

/// The longest [`deliver`] takes with this config.
#[must_use]
pub fn worst_case(n: &NotificationsConfig) -> Duration {
    deliver::Policy::worst_case(Duration::from_secs(n.timeout), n.attempts, Duration::from_secs(n.retry_delay))
}

/// What [`send_logged`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The template asked for.
    pub template: String,
    /// What was sent (absent when nothing could be rendered).
    pub rendered: Option<Rendered>,
    /// One entry per backend it went to.
    pub backends: Vec<BackendOutcome>,
    /// Why nothing was sent, when nothing was.
    pub skipped: Option<String>,
}

impl Report {
    /// Every backend took it (and there was at least one).
    #[must_use]
    pub fn delivered(&self) -> bool {
        !self.backends.is_empty() && self.backends.iter().all(|b| b.delivered)
    }
}

/// Renders and delivers `template`, for a caller whose own outcome must not depend on it (a
/// successful restore stays successful): never fails, never panics on a bad template or backend,
/// returns within `budget` (plus the time to kill a program), and logs every problem.
/// `config` is `Validated.config.notifications`; `None` (not configured) sends nothing.
#[must_use]
pub fn send_logged(config: Option<&NotificationsConfig>, template: &str, vars: &Vars, budget: Duration) -> Report {
    let deadline = crate::child::deadline_in(budget);
    let mut report = Report { template: template.to_string(), rendered: None, backends: Vec::new(), skipped: None };
    let Some(n) = config else {
        tracing::debug!("notification {template} not sent: notifications are not configured");
        report.skipped = Some("notifications are not configured".into());
        return report;
    };
    match prepare(n, template, vars.clone()) {
        Err(e) => {
            tracing::error!("notification {template} not sent: {e}");
            report.skipped = Some(e);
        }
        Ok(Prepared::Disabled) => {
            tracing::info!("notification {template} not sent: the template is disabled");
            report.skipped = Some("the template is disabled".into());
        }
        Ok(Prepared::Ready(rendered)) => {
            if !rendered.missing.is_empty() {
                tracing::warn!("notification {template}: variables not given: {}", rendered.missing.join(", "));
            }
            report.backends = deliver(n, &rendered, deadline);
            if report.backends.is_empty() {
                tracing::warn!(
                    "notification {template} not sent: no enabled backend takes priority {}",
                    rendered.priority
                );
                report.skipped = Some("no enabled backend".into());
            }
            report.rendered = Some(rendered);
        }
    }
    report
}

/// This machine's host name (`hostname` in every template).
#[must_use]
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> NotificationsConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn arguments_with_a_dot_are_units() {
        let n = config(r#"{"unitTemplates": {"sanoid.service": "sanoid-failure", "x.timer": "preseed-failure"}}"#);
        assert_eq!(template_for(&n, "sanoid.service"), "sanoid-failure");
        assert_eq!(template_for(&n, "syncoid-tank.service"), "unit-failure");
        assert_eq!(template_for(&n, "preseed@my\\x20app.service"), "unit-failure");
        assert_eq!(template_for(&n, "preseed-failure"), "preseed-failure");
    }

    #[test]
    fn vars_parse_and_bad_ones_are_rejected() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        let vars = parse_vars(&args(&["a=1", "msg=x=y", "a=2", "e="])).unwrap();
        assert_eq!(
            vars,
            Vars::from([("a".into(), "2".into()), ("msg".into(), "x=y".into()), ("e".into(), String::new())])
        );
        assert!(parse_vars(&args(&["novalue"])).unwrap_err().contains("expected name=value"));
        assert!(parse_vars(&args(&["bad name=1"])).unwrap_err().contains("not a variable name"));
    }

    #[test]
    fn unit_environment_uses_what_systemd_gives_on_failure() {
        let env = |table: &'static [(&'static str, &'static str)]| {
            move |k: &str| table.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_string())
        };
        let vars = unit_environment("sanoid.service", env(&[]));
        assert_eq!(
            vars,
            Vars::from([("unit".into(), "sanoid.service".into()), ("serviceName".into(), "sanoid".into())])
        );
        let vars = unit_environment(
            "persist-my-app.mount",
            env(&[
                ("MONITOR_UNIT", "persist-my\\x2dapp.mount"),
                ("MONITOR_SERVICE_RESULT", "exit-code"),
                ("MONITOR_EXIT_CODE", "exited"),
                ("MONITOR_EXIT_STATUS", "1"),
                ("MONITOR_INVOCATION_ID", "abc123"),
            ]),
        );
        assert_eq!(vars["unit"], "persist-my\\x2dapp.mount", "the exact name, not systemd's unescaped argument");
        assert_eq!(vars["serviceName"], "persist-my\\x2dapp");
        assert_eq!(vars["result"], "exit-code");
        assert_eq!(vars["exitStatus"], "1");
        assert_eq!(vars["invocationId"], "abc123");
    }

    #[test]
    fn prepare_renders_disables_and_names_unknown_templates() {
        let n = config(r#"{"templates": {"preseed-skipped": {"enable": false}}}"#);
        assert_eq!(prepare(&n, "preseed-skipped", Vars::new()), Ok(Prepared::Disabled));
        let err = prepare(&n, "nope", Vars::new()).unwrap_err();
        assert!(err.contains("unknown template \"nope\"") && err.contains("sanoid-failure"), "{err}");
        let Ok(Prepared::Ready(r)) = prepare(&n, "unit-failure", Vars::from([("unit".into(), "a.service".into())]))
        else {
            panic!()
        };
        assert_eq!(r.title, "Unit Failed: a.service");
        assert!(r.variables.contains_key("hostname"), "hostname is always there");
        assert!(r.missing.is_empty(), "{:?}", r.missing);
    }

    #[test]
    fn send_logged_never_fails() {
        let none = send_logged(None, "preseed-success", &Vars::new(), Duration::from_secs(1));
        assert!(!none.delivered() && none.skipped.is_some());
        let n = config("{}");
        let unknown = send_logged(Some(&n), "nope", &Vars::new(), Duration::from_secs(1));
        assert!(unknown.skipped.unwrap().contains("unknown template"));
        let no_backend = send_logged(Some(&n), "preseed-success", &Vars::new(), Duration::from_secs(1));
        assert_eq!(no_backend.skipped.as_deref(), Some("no enabled backend"));
        let n = config(r#"{"attempts": 5, "retryDelay": 1, "backends": {"command": {"f": {"command": ["false"]}}}}"#);
        let started = Instant::now();
        let failed = send_logged(Some(&n), "preseed-success", &Vars::new(), Duration::from_millis(1500));
        assert!(!failed.delivered());
        assert!(started.elapsed() < Duration::from_secs(5), "kept to its budget: {:?}", started.elapsed());
        assert!(failed.backends[0].attempts >= 1 && failed.backends[0].attempts < 5, "{failed:?}");
    }
}
