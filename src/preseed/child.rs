//! Running a child process (restic, a verify hook, a notify hook) with a deadline.
//!
//! The child gets its own process group so that a timeout kills it and everything it started
//! (`killpg(SIGKILL)`), never persistctl itself. A timed-out child is an error, never "nothing found".

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A child that ran to completion (successfully or not).
#[derive(Debug)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: Vec<u8>,
    /// Everything it printed on stderr.
    pub stderr: Vec<u8>,
}

impl Finished {
    /// stderr as text, trimmed and shortened to its last 2000 bytes (for errors and logs).
    #[must_use]
    pub fn stderr_text(&self) -> String {
        tail(&String::from_utf8_lossy(&self.stderr), 2000)
    }
}

/// Why a child did not run to completion.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// It could not be started.
    #[error("could not start {program}: {error}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The deadline passed; its process group was killed.
    #[error("{program} timed out after {} s and was killed", .after.as_secs())]
    TimedOut {
        /// The program.
        program: String,
        /// How long it ran.
        after: Duration,
    },
    /// Waiting for it failed.
    #[error("waiting for {program} failed: {error}")]
    Wait {
        /// The program.
        program: String,
        /// The OS error.
        error: std::io::Error,
    },
}

/// The last `max` bytes of `text` (on a char boundary), trimmed.
#[must_use]
pub fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

/// Runs `cmd` (stdin from /dev/null, stdout and stderr captured) until it exits or `deadline` passes.
pub fn run(mut cmd: Command, deadline: Instant) -> Result<Finished, ChildError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let started = Instant::now();
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().map_err(|error| ChildError::Spawn { program: program.clone(), error })?;
    let out = child.stdout.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    });
    let err = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    });
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let mut pause = Duration::from_millis(2);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(error) => {
                let _ = killpg(pgid, Signal::SIGKILL);
                let _ = child.wait();
                return Err(ChildError::Wait { program, error });
            }
        }
        let now = Instant::now();
        if now >= deadline {
            // The whole group: restic's own children (ssh, rclone) must not outlive it.
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
            return Err(ChildError::TimedOut { program, after: started.elapsed() });
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(Finished { status, stdout, stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    #[test]
    fn output_and_status_are_captured() {
        let done = run(sh("echo out; echo err >&2; exit 3"), Instant::now() + Duration::from_secs(30)).unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, b"out\n");
        assert_eq!(done.stderr_text(), "err");
    }

    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let script = format!("(sleep 2; touch '{}') & sleep 30", marker.display());
        let started = Instant::now();
        let err = run(sh(&script), Instant::now() + Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, ChildError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the grandchild was killed with its group");
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("  abc  ", 10), "abc");
        assert_eq!(tail("abcdef", 3), "...def");
        assert_eq!(tail("aé", 1), "...");
    }
}
