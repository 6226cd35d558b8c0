//! Journald priorities: when `$JOURNAL_STREAM` names persistctl's stderr (as systemd sets it for a
//! unit whose stderr is the journal), every line carries an sd-daemon priority prefix; otherwise none.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt as _;
use std::process::{Command, Stdio};

fn run_with_stderr_file(journal_stream: Option<&str>) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("stderr");
    let err = std::fs::File::create(&err_path).unwrap();
    let meta = err.metadata().unwrap();
    let matching = format!("{}:{}", meta.dev(), meta.ino());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_persistctl"));
    // A config that does not exist: one error line from main, and nothing else touched.
    cmd.args(["-v", "--config", "/nonexistent/persistctl.json", "plan"]).stdout(Stdio::null()).stderr(err);
    cmd.env_remove("JOURNAL_STREAM").env_remove("RUST_LOG");
    match journal_stream {
        Some("matching") => cmd.env("JOURNAL_STREAM", &matching),
        Some(other) => cmd.env("JOURNAL_STREAM", other),
        None => &mut cmd,
    };
    let status = cmd.status().unwrap();
    assert_eq!(status.code(), Some(1), "a missing config is an error");
    (std::fs::read_to_string(&err_path).unwrap(), matching)
}

#[test]
fn stderr_that_is_the_journal_stream_gets_priorities() {
    let (text, _) = run_with_stderr_file(Some("matching"));
    assert!(text.starts_with("<3>error: "), "{text:?}");
    assert!(text.contains("/nonexistent/persistctl.json"), "{text:?}");
    assert!(text.lines().all(|l| l.starts_with('<')), "every line is prefixed: {text:?}");
    // `-v`: tracing's debug lines are priority 7 (debug), kept out of `journalctl -p info`.
    assert!(text.lines().any(|l| l.starts_with("<7>") && l.contains("resource usage")), "{text:?}");
}

#[test]
fn an_inherited_journal_stream_that_is_not_stderr_changes_nothing() {
    // Activation scripts and shells started from a unit inherit $JOURNAL_STREAM while their stderr
    // goes elsewhere: the prefix would then be noise in a terminal or a log file.
    for stream in [None, Some("1:1"), Some("garbage")] {
        let (text, _) = run_with_stderr_file(stream);
        assert!(text.starts_with("error: "), "{stream:?}: {text:?}");
        assert!(!text.contains("<3>") && !text.contains("<7>"), "{stream:?}: {text:?}");
        assert!(text.contains("resource usage"), "{stream:?}: {text:?}");
    }
}
