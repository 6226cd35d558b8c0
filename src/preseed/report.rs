//! What a preseed run says: the report (printed, `--json`, the status-file line), the notification
//! (template and variables) and the notify hook's arguments, and the delivery of all three.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use super::Run;
use super::decide::Attempt;
use crate::child;
use crate::config::SourceKind;
use crate::notify;
use crate::redact::Secrets;

/// How long a notify hook may run.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a notification may hold up the end of a run.
const NOTIFICATION_BUDGET: Duration = Duration::from_secs(120);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// Data was present; nothing touched.
    Skipped,
    /// Restored.
    Restored,
    /// Started empty (allowEmptyBootstrap).
    EmptyBootstrap,
    /// Fail closed: the service must not start.
    Failed,
    /// Dry run: nothing changed.
    DryRun,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Self::Skipped => "skipped",
            Self::Restored => "restored",
            Self::EmptyBootstrap => "empty-bootstrap",
            Self::Failed => "failed",
            Self::DryRun => "dry-run",
        }
    }
}

/// The result of one run (also the status-file line and the `--json` output).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The service.
    pub service: String,
    /// Its dataset.
    pub dataset: String,
    /// What happened.
    pub event: Event,
    /// The source used (or, in a dry run, the one that would be).
    pub source: Option<String>,
    /// The snapshot used.
    pub snapshot: Option<String>,
    /// Why, in one line.
    pub detail: String,
    /// Each source tried, in order.
    pub attempts: Vec<AttemptRecord>,
    /// Anything the operator must do next (full resend after a restic restore).
    pub note: Option<String>,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// One source tried.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// The source.
    pub source: SourceKind,
    /// How it went.
    #[serde(flatten)]
    pub attempt: Attempt,
}

impl Report {
    /// The report with URL passwords and every secret in `secrets` masked in its texts: what is printed,
    /// written to the status file, notified and given to the notify hook.
    #[must_use]
    pub fn redacted(mut self, secrets: &Secrets) -> Self {
        self.detail = secrets.redact(&self.detail);
        self.note = self.note.map(|n| secrets.redact(&n));
        for a in &mut self.attempts {
            let (Attempt::Restored(text) | Attempt::NoBackup(text) | Attempt::Failed(text)) = &mut a.attempt;
            *text = secrets.redact(text);
        }
        self
    }

    /// Whether the service must be kept down.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.event == Event::Failed
    }
}

impl Run<'_> {
    /// Appends the status line, sends the notification and calls the notify hook; failures are logged,
    /// never change the result.
    pub(super) fn record(&self, report: &Report) {
        if let Err(e) = append_status(&self.opts.status_file, report) {
            tracing::error!("{e:#}");
        }
        if let Some((template, vars)) = notification(report, self.started.elapsed()) {
            let config = self.validated.config.notifications.as_ref();
            let budget = config.map_or(Duration::ZERO, notify::worst_case).min(NOTIFICATION_BUDGET);
            let sent = notify::send_logged(config, template, &vars, budget);
            if config.is_some() && !sent.delivered() && sent.skipped.is_none() {
                tracing::error!("notification {template} was not delivered to every backend (the result stands)");
            }
        }
        notify(&self.opts.notify_command, report);
    }
}

/// Appends one JSON line to the status file (creating its directory), made 0600 (an older one too):
/// its details quote what sources and hooks said, and only root (`persistctl status`) reads it. A symlink
/// or anything but a regular file there is refused, never written through.
pub fn append_status(path: &Path, report: &Report) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
    }
    let mut line = serde_json::to_vec(report).context("Failed to render the status line")?;
    line.push(b'\n');
    crate::safe_write::append_no_follow(path, &line, crate::status::render::PRIVATE_MODE)
        .context("Failed to append to the preseed status file")
}

/// The built-in template and its variables for a run's outcome (`None` for a dry run).
#[must_use]
pub fn notification(report: &Report, duration: Duration) -> Option<(&'static str, notify::Vars)> {
    let template = match report.event {
        Event::Restored => "preseed-success",
        Event::Skipped => "preseed-skipped",
        Event::Failed => "preseed-failure",
        Event::EmptyBootstrap => "preseed-empty-bootstrap",
        Event::DryRun => return None,
    };
    let mut vars = notify::Vars::new();
    vars.insert("serviceName".into(), report.service.clone());
    vars.insert("dataset".into(), report.dataset.clone());
    vars.insert("duration".into(), format!("{} s", duration.as_secs()));
    if let Some(source) = &report.source {
        vars.insert("restoreSource".into(), source.clone());
    }
    if let Some(snapshot) = &report.snapshot {
        vars.insert("snapshot".into(), snapshot.clone());
    }
    if let Some(note) = &report.note {
        vars.insert("note".into(), note.clone());
    }
    if report.event == Event::Failed {
        vars.insert("errorMessage".into(), report.detail.clone());
    }
    Some((template, vars))
}

/// The notify hook's arguments after its argv prefix: the event, then `key=value` pairs.
#[must_use]
pub fn notify_args(report: &Report) -> Vec<String> {
    let mut args = vec![
        format!("preseed-{}", report.event.name()),
        format!("service={}", report.service),
        format!("dataset={}", report.dataset),
    ];
    if let Some(source) = &report.source {
        args.push(format!("source={source}"));
    }
    if let Some(snapshot) = &report.snapshot {
        args.push(format!("snapshot={snapshot}"));
    }
    args.push(format!("message={}", report.detail));
    if let Some(note) = &report.note {
        args.push(format!("note={note}"));
    }
    args
}

fn notify(prefix: &[String], report: &Report) {
    let Some((program, fixed)) = prefix.split_first() else { return };
    let mut cmd = Command::new(program);
    child::scrub_env(&mut cmd);
    cmd.args(fixed).args(notify_args(report));
    match child::run(cmd, None, Instant::now() + NOTIFY_TIMEOUT) {
        Ok(done) if done.status.success() => {}
        Ok(done) => tracing::error!("notify command failed (exit {:?}): {}", done.status.code(), done.stderr_text()),
        Err(e) => tracing::error!("notify command: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_template_and_variables() {
        let mut report = Report {
            service: "my app".into(),
            dataset: "tank/persist/my app".into(),
            event: Event::Restored,
            source: Some("replica".into()),
            snapshot: Some("b/r@s".into()),
            detail: "restored".into(),
            attempts: vec![],
            note: Some("lineage kept".into()),
            at: "x".into(),
        };
        let (template, vars) = notification(&report, Duration::from_secs(75)).unwrap();
        assert_eq!(template, "preseed-success");
        assert_eq!(vars["serviceName"], "my app");
        assert_eq!(vars["restoreSource"], "replica");
        assert_eq!(vars["snapshot"], "b/r@s");
        assert_eq!(vars["duration"], "75 s");
        assert_eq!(vars["note"], "lineage kept");
        assert!(!vars.contains_key("errorMessage"));
        for (event, want) in [
            (Event::Skipped, "preseed-skipped"),
            (Event::EmptyBootstrap, "preseed-empty-bootstrap"),
            (Event::Failed, "preseed-failure"),
        ] {
            report.event = event;
            assert_eq!(notification(&report, Duration::ZERO).unwrap().0, want);
        }
        assert_eq!(notification(&report, Duration::ZERO).unwrap().1["errorMessage"], "restored");
        report.event = Event::DryRun;
        assert!(notification(&report, Duration::ZERO).is_none());
    }

    #[test]
    fn notify_arguments_carry_event_and_keys() {
        let report = Report {
            service: "my app".into(),
            dataset: "tank/persist/my app".into(),
            event: Event::Restored,
            source: Some("restic".into()),
            snapshot: Some("abc".into()),
            detail: "restored".into(),
            attempts: vec![],
            note: Some("full send".into()),
            at: "x".into(),
        };
        assert_eq!(
            notify_args(&report),
            [
                "preseed-restored",
                "service=my app",
                "dataset=tank/persist/my app",
                "source=restic",
                "snapshot=abc",
                "message=restored",
                "note=full send"
            ]
        );
    }
}
