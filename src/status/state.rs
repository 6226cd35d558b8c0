//! The last state, kept in a small JSON file, so that a notification goes out when the state changes and
//! not on every run. The file's modification time also tells the deadman when status last ran.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::State;
use super::render::{PRIVATE_MODE, write_atomically};

/// What the state file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedState {
    /// The overall state.
    pub state: State,
    /// Since when (seconds since the epoch): the run that first saw it.
    pub since: i64,
    /// The last run.
    pub last_run: i64,
    /// The last run's summary line.
    pub summary: String,
}

/// A change worth a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The state before (`None`: first run).
    pub previous: Option<State>,
    /// The state now.
    pub current: State,
}

/// PURE: the new saved state and, if the state changed, the change. A first run notifies only when it is
/// not OK.
#[must_use]
pub fn transition(
    previous: Option<&SavedState>,
    current: State,
    now: i64,
    summary: &str,
) -> (SavedState, Option<Change>) {
    let (since, change) = match previous {
        Some(p) if p.state == current => (p.since, None),
        Some(p) => (now, Some(Change { previous: Some(p.state), current })),
        None if current == State::Ok => (now, None),
        None => (now, Some(Change { previous: None, current })),
    };
    (SavedState { state: current, since, last_run: now, summary: summary.to_string() }, change)
}

/// Reads the state file; a missing or unreadable one is "no previous state" (logged).
#[must_use]
pub fn load(path: &Path) -> Option<SavedState> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("Failed to read state file {}: {e}; treating this as the first run", path.display());
            return None;
        }
    };
    serde_json::from_str(&text)
        .map_err(|e| tracing::warn!("State file {} is not valid ({e}); treating this as the first run", path.display()))
        .ok()
}

/// Compares with the state file, rewrites it (atomically, creating its directory), and returns the change.
pub fn record(path: &Path, current: State, now: i64, summary: &str) -> anyhow::Result<Option<Change>> {
    let previous = load(path);
    let (saved, change) = transition(previous.as_ref(), current, now, summary);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
    }
    let text = serde_json::to_string(&saved).context("Failed to render the state")?;
    // Its summary can quote a check's error: root only.
    write_atomically(path, &format!("{text}\n"), PRIVATE_MODE)?;
    Ok(change)
}

/// How long a notify hook may run.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the notify hook (argv) with `PERSISTCTL_STATUS_STATE`, `PERSISTCTL_STATUS_PREVIOUS` and
/// `PERSISTCTL_STATUS_SUMMARY` in its environment (and of persistctl's own only what
/// [`crate::redact::inherited`] allows). Its failure is logged, never the status' failure.
pub fn notify(argv: &[String], change: &Change, summary: &str) {
    let Some((program, rest)) = argv.split_first() else { return };
    let mut cmd = Command::new(program);
    crate::child::scrub_env(&mut cmd);
    cmd.args(rest)
        .env("PERSISTCTL_STATUS_STATE", change.current.label())
        .env("PERSISTCTL_STATUS_PREVIOUS", change.previous.map_or("NONE", State::label))
        .env("PERSISTCTL_STATUS_SUMMARY", summary);
    match crate::child::run(cmd, None, Instant::now() + NOTIFY_TIMEOUT) {
        Ok(done) if done.status.success() => tracing::info!("notified: state {}", change.current.label()),
        Ok(done) => tracing::warn!("notify command {program} failed ({}): {}", done.status, done.stderr_text()),
        Err(e) => tracing::warn!("notify command failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(state: State, since: i64) -> SavedState {
        SavedState { state, since, last_run: since, summary: String::new() }
    }

    #[test]
    #[allow(clippy::type_complexity)] // one table of cases
    fn only_a_change_of_state_notifies() {
        let cases: &[(Option<SavedState>, State, Option<Option<State>>, i64)] = &[
            (None, State::Ok, None, 100),
            (None, State::Warning, Some(None), 100),
            (Some(saved(State::Ok, 5)), State::Ok, None, 5),
            (Some(saved(State::Ok, 5)), State::Critical, Some(Some(State::Ok)), 100),
            (Some(saved(State::Critical, 5)), State::Critical, None, 5),
            (Some(saved(State::Critical, 5)), State::Ok, Some(Some(State::Critical)), 100),
            (Some(saved(State::Warning, 5)), State::Unknown, Some(Some(State::Warning)), 100),
        ];
        for (previous, current, want, since) in cases {
            let (s, change) = transition(previous.as_ref(), *current, 100, "sum");
            assert_eq!(change.as_ref().map(|c| c.previous), *want, "{previous:?} -> {current:?}");
            assert_eq!(s.since, *since, "{previous:?} -> {current:?}");
            assert_eq!((s.state, s.last_run, s.summary.as_str()), (*current, 100, "sum"));
        }
    }

    #[test]
    fn the_state_file_round_trips_and_a_bad_one_is_a_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/status-state.json");
        assert_eq!(record(&path, State::Warning, 10, "w").unwrap().map(|c| c.previous), Some(None));
        assert_eq!(record(&path, State::Warning, 20, "w").unwrap(), None);
        assert_eq!(load(&path).unwrap().since, 10);
        assert_eq!(
            record(&path, State::Ok, 30, "ok").unwrap(),
            Some(Change { previous: Some(State::Warning), current: State::Ok })
        );
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(load(&path), None);
    }

    #[test]
    fn the_notify_hook_gets_the_change_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "echo \"$PERSISTCTL_STATUS_PREVIOUS $PERSISTCTL_STATUS_STATE $PERSISTCTL_STATUS_SUMMARY\" > {}",
            out.display()
        );
        let argv = vec!["sh".to_string(), "-c".to_string(), script];
        notify(&argv, &Change { previous: Some(State::Ok), current: State::Critical }, "CRITICAL: 1 critical");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "OK CRITICAL CRITICAL: 1 critical\n");
        // A hook that fails or does not exist is logged, not fatal.
        notify(&["/nonexistent/hook".to_string()], &Change { previous: None, current: State::Ok }, "");
    }
}
