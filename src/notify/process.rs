//! Running a backend's program (sendmail, a command, journalctl) with input and a deadline.
//!
//! The child gets its own process group, so a timeout kills it and whatever it started. Output is
//! read by threads that are given up on (not joined) if a grandchild that left the group keeps the
//! pipes open: the caller never waits past the deadline.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A program that ran to its end.
#[derive(Debug)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// The last `max` bytes of `text`, trimmed, on a char boundary.
#[must_use]
pub fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    if start == 0 { text.to_string() } else { format!("...{}", &text[start..]) }
}

fn reader(pipe: Option<impl std::io::Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
        });
    }
    rx
}

/// Runs `cmd` with `input` on its stdin until it exits or `deadline` passes (then its process group
/// is killed and the result is an error).
pub fn run(mut cmd: Command, input: Option<Vec<u8>>, deadline: Instant) -> Result<Finished, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let started = Instant::now();
    let stdin = if input.is_some() { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().map_err(|e| format!("could not start {program}: {e}"))?;
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), input) {
        // A writer thread: a child that does not read must not block us past the deadline.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                let _ = killpg(pgid, Signal::SIGKILL);
                let _ = child.wait();
                return Err(format!("waiting for {program} failed: {e}"));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
            return Err(format!("{program} timed out after {:.1} s and was killed", started.elapsed().as_secs_f64()));
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    };
    // The child is gone; whatever it started in its group goes too, so the pipes close.
    let _ = killpg(pgid, Signal::SIGKILL);
    let grace = Duration::from_millis(500);
    let stdout = out.recv_timeout(grace).unwrap_or_default();
    let stderr = err.recv_timeout(grace).unwrap_or_default();
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
    fn input_output_and_status_are_carried() {
        let done = run(sh("cat; echo err >&2; exit 3"), Some(b"in".to_vec()), Instant::now() + Duration::from_secs(30))
            .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, "in");
        assert_eq!(done.stderr, "err\n");
    }

    #[test]
    fn a_hanging_child_and_its_children_are_killed_at_the_deadline() {
        let started = Instant::now();
        let err = run(sh("sleep 30 & sleep 30"), None, Instant::now() + Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let err = run(Command::new("/nonexistent/prog"), None, Instant::now() + Duration::from_secs(5)).unwrap_err();
        assert!(err.contains("could not start /nonexistent/prog"), "{err}");
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("  abc  ", 10), "abc");
        assert_eq!(tail("abcdef", 3), "...def");
        assert_eq!(tail("aü", 1), "...");
    }
}
