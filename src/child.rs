//! Running a child program (restic, a verify hook, a notify hook, a notification backend, journalctl)
//! with optional input and a deadline. The one runner every such caller shares.
//!
//! The child gets its own process group, so a timeout kills it and everything it started
//! (`killpg(SIGKILL)`), never persistctl itself; once it has exited, whatever it left in its group is
//! killed too. Output is read by threads that are given up on (not joined) when a grandchild that left
//! the group keeps a pipe open: the caller never waits much past the deadline. A timed-out child is an
//! error, never "nothing found".

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::redact;

/// How long the output of an exited child is waited for (a grandchild outside its group may hold a pipe).
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// How long a killed child is waited for before it is abandoned. SIGKILL does not end a process blocked
/// in the kernel (a `zfs` on a suspended pool sits in D state until `zpool clear`): the caller walks
/// away and the process stays a zombie-to-be until it can die, never a reason for us to hang.
const REAP_GRACE: Duration = Duration::from_secs(1);

/// The instant `timeout` from now, saturating: a huge timeout (which config and CLI bounds already refuse)
/// means "far away", never an overflow panic. `Instant + Duration` panics on overflow.
#[must_use]
pub fn deadline_in(timeout: Duration) -> Instant {
    /// About 30 years: past any run, well inside what `Instant` can hold.
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(timeout.min(FAR)).unwrap_or(now)
}

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
    /// stdout as text (lossy).
    #[must_use]
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text, trimmed, shortened to its last 2000 bytes, and with URL passwords masked
    /// ([`redact::url_userinfo`]): this is what errors and logs quote. Callers that know secret values
    /// mask them too ([`redact::Secrets`]).
    #[must_use]
    pub fn stderr_text(&self) -> String {
        redact::url_userinfo(&tail(&String::from_utf8_lossy(&self.stderr), 2000))
    }
}

/// Gives `cmd` only the inherited variables [`redact::inherited`] allows (`PATH`, `HOME`, `LANG`,
/// `LC_*`, `TZ`, ...): a hook or notification command never sees persistctl's `RESTIC_*`, `AWS_*`,
/// `B2_*` or other secrets. Call it before setting the variables the child is documented to get.
pub fn scrub_env(cmd: &mut Command) {
    cmd.env_clear();
    for (name, value) in std::env::vars_os() {
        if name.to_str().is_some_and(redact::inherited) {
            cmd.env(name, value);
        }
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
    #[error("{program} timed out after {:.1} s and was killed", .after.as_secs_f64())]
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
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    if start == 0 { text.to_string() } else { format!("...{}", &text[start..]) }
}

/// Reads a pipe to its end on a thread; the receiver gets everything once it closes.
fn reader(pipe: Option<impl std::io::Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

/// Runs `cmd` (stdout and stderr captured; `input` on its stdin, else /dev/null) until it exits or
/// `deadline` passes.
///
/// # Errors
/// It could not be started or waited for, or the deadline passed (its process group is then killed).
pub fn run(mut cmd: Command, input: Option<Vec<u8>>, deadline: Instant) -> Result<Finished, ChildError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let started = Instant::now();
    let stdin = if input.is_some() { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().map_err(|error| ChildError::Spawn { program: program.clone(), error })?;
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), input) {
        // A writer thread: a child that does not read must not block us past the deadline.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let pgid = group_of(&child);
    let status = wait_until(&mut child, pgid, deadline, &program, started)?;
    // The child is gone; whatever it left in its group goes too, so the pipes close.
    let _ = killpg(pgid, Signal::SIGKILL);
    let stdout = out.recv_timeout(PIPE_GRACE).unwrap_or_default();
    let stderr = err.recv_timeout(PIPE_GRACE).unwrap_or_default();
    Ok(Finished { status, stdout, stderr })
}

/// The process group a child leads (every child here is started with `process_group(0)`).
fn group_of(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX))
}

/// Kills the child's whole group and waits at most [`REAP_GRACE`] for it to go; then abandons it.
fn kill_and_abandon(child: &mut Child, pgid: Pid) {
    let _ = killpg(pgid, Signal::SIGKILL);
    let until = Instant::now() + REAP_GRACE;
    while Instant::now() < until {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!(pid = child.id(), "a killed child did not exit (stuck in the kernel?); not waiting for it");
}

/// Waits for the child to exit until `deadline`; past it the group is killed and the child abandoned.
fn wait_until(
    child: &mut Child,
    pgid: Pid,
    deadline: Instant,
    program: &str,
    started: Instant,
) -> Result<ExitStatus, ChildError> {
    let mut pause = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(error) => {
                kill_and_abandon(child, pgid);
                return Err(ChildError::Wait { program: program.to_string(), error });
            }
        }
        let now = Instant::now();
        if now >= deadline {
            // The whole group: restic's own children (ssh, rclone) must not outlive it.
            kill_and_abandon(child, pgid);
            return Err(ChildError::TimedOut { program: program.to_string(), after: started.elapsed() });
        }
        std::thread::sleep(pause.min(deadline - now));
        // At most 10 ms late: PostgreSQL waits on every WAL fetch (a child each), and 50 ms was
        // 3 % of a restore's replay (tests/bench/pitr-restore.sh).
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// The account `user` (a missing one is an error naming it).
pub fn account(user: &str) -> anyhow::Result<nix::unistd::User> {
    nix::unistd::User::from_name(user)
        .map_err(|e| anyhow::anyhow!("Failed to look up user {user:?}: {e}"))?
        .ok_or_else(|| anyhow::anyhow!("no user {user:?} on this system"))
}

/// Makes `cmd` run as `user` (its uid, primary gid, no supplementary groups — std drops them when
/// root sets a uid — and its `HOME`/`USER`/`LOGNAME`): PostgreSQL's programs refuse to run as root,
/// and peer authentication over the socket wants the server's own user.
///
/// # Errors
/// No such user.
pub fn as_user(cmd: &mut Command, user: &str) -> anyhow::Result<()> {
    let account = account(user)?;
    cmd.uid(account.uid.as_raw()).gid(account.gid.as_raw());
    cmd.env("HOME", &account.dir).env("USER", user).env("LOGNAME", user);
    Ok(())
}

/// `program` started through `setpriv --pdeathsig KILL` (after `--reuid/--regid/--clear-groups` of
/// `user` when given: the kernel clears the death signal on a credential change, setpriv sets it
/// after), so that it dies when persistctl does: a `kill -9` of a run never leaves a restore writing
/// into a staging directory a rerun is about to remove. Only the inherited basics and `HOME`, `USER`,
/// `LOGNAME` of the account are in its environment; add the rest.
pub fn dying_with_us(program: &std::ffi::OsStr, user: Option<&str>) -> anyhow::Result<Command> {
    let mut cmd = Command::new("setpriv");
    scrub_env(&mut cmd);
    if let Some(user) = user {
        let account = account(user)?;
        cmd.env("HOME", &account.dir).env("USER", user).env("LOGNAME", user);
        cmd.arg(format!("--reuid={}", account.uid)).arg(format!("--regid={}", account.gid)).arg("--clear-groups");
    }
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
    Ok(cmd)
}

/// A long-running child (a temporary server): its own process group, output to a file, its group
/// killed when the handle is dropped. For it to die with persistctl too (a `kill -9` must never leave
/// it running), start it through `setpriv --pdeathsig KILL` (which sets the signal after any
/// `--reuid`, as the kernel clears it on a credential change), from the thread that outlives it.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pgid: Pid,
    program: String,
    started: Instant,
}

impl Server {
    /// Starts `cmd` with stdin /dev/null and stdout and stderr appended to `log`.
    ///
    /// # Errors
    /// It could not be started.
    pub fn start(mut cmd: Command, log: &std::fs::File) -> Result<Self, ChildError> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let spawn_error = |error| ChildError::Spawn { program: program.clone(), error };
        let out = log.try_clone().map_err(spawn_error)?;
        let err = log.try_clone().map_err(spawn_error)?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = cmd.spawn().map_err(spawn_error)?;
        let pgid = group_of(&child);
        Ok(Self { child, pgid, program, started: Instant::now() })
    }

    /// Its pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it exited, if it has.
    ///
    /// # Errors
    /// Waiting failed.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>, ChildError> {
        self.child.try_wait().map_err(|error| ChildError::Wait { program: self.program.clone(), error })
    }

    /// Sends `signal` to the server itself (not its group: a server shuts its own children down) and
    /// waits until `deadline` for it to exit; past it the whole group is killed.
    ///
    /// # Errors
    /// The deadline passed, or waiting failed.
    pub fn stop(mut self, signal: Signal, deadline: Instant) -> Result<ExitStatus, ChildError> {
        let _ = nix::sys::signal::kill(group_of(&self.child), signal);
        let status = wait_until(&mut self.child, self.pgid, deadline, &self.program, self.started);
        let _ = killpg(self.pgid, Signal::SIGKILL);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_and_abandon(&mut self.child, self.pgid);
        }
        let _ = killpg(self.pgid, Signal::SIGKILL);
    }
}

/// A child whose stdout went to a callback as it came.
#[derive(Debug)]
pub struct Streamed {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it printed on stderr.
    pub stderr: Vec<u8>,
}

/// Runs `cmd` (stdin /dev/null) and hands its stdout to `on_stdout` chunk by chunk as it arrives, so a
/// large answer is never held whole. The deadline covers the reading too: stdout is polled, never read
/// blockingly, so a child that stops writing (or a grandchild that keeps the pipe open) cannot hold
/// us past it.
///
/// # Errors
/// It could not be started or waited for, reading failed, or the deadline passed (its process group is
/// then killed and the child abandoned if it does not die).
pub fn run_streaming(
    mut cmd: Command,
    deadline: Instant,
    mut on_stdout: impl FnMut(&[u8]),
) -> Result<Streamed, ChildError> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::io::Read as _;
    use std::os::fd::AsFd as _;

    let program = cmd.get_program().to_string_lossy().into_owned();
    let started = Instant::now();
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().map_err(|error| ChildError::Spawn { program: program.clone(), error })?;
    let pgid = group_of(&child);
    let err = reader(child.stderr.take());
    let wait_error = |error: std::io::Error| ChildError::Wait { program: program.clone(), error };
    let Some(mut out) = child.stdout.take() else {
        kill_and_abandon(&mut child, pgid);
        return Err(wait_error(std::io::Error::other("no stdout pipe")));
    };
    let nonblocking = nix::fcntl::fcntl(&out, nix::fcntl::FcntlArg::F_GETFL)
        .map(|flags| nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK)
        .and_then(|flags| nix::fcntl::fcntl(&out, nix::fcntl::FcntlArg::F_SETFL(flags)));
    if let Err(e) = nonblocking {
        kill_and_abandon(&mut child, pgid);
        return Err(wait_error(e.into()));
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if now >= deadline {
            kill_and_abandon(&mut child, pgid);
            return Err(ChildError::TimedOut { program, after: started.elapsed() });
        }
        let wait_ms = u16::try_from((deadline - now).as_millis().min(1000)).unwrap_or(1000);
        let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(wait_ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                kill_and_abandon(&mut child, pgid);
                return Err(wait_error(e.into()));
            }
        }
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => on_stdout(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {}
            Err(e) => {
                kill_and_abandon(&mut child, pgid);
                return Err(wait_error(e));
            }
        }
    }
    let status = wait_until(&mut child, pgid, deadline, &program, started)?;
    let _ = killpg(pgid, Signal::SIGKILL);
    let stderr = err.recv_timeout(PIPE_GRACE).unwrap_or_default();
    Ok(Streamed { status, stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[test]
    fn input_output_and_status_are_carried() {
        let done = run(sh("cat; echo err >&2; exit 3"), Some(b"in".to_vec()), soon()).unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout_text(), "in");
        assert_eq!(done.stderr_text(), "err");
        let done = run(sh("echo out"), None, soon()).unwrap();
        assert!(done.status.success());
        assert_eq!(done.stdout, b"out\n");
    }

    #[test]
    fn a_child_that_does_not_read_its_input_does_not_block() {
        let done = run(sh("exit 0"), Some(vec![b'x'; 1 << 20]), soon()).unwrap();
        assert!(done.status.success());
    }

    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let script = format!("(sleep 2; touch '{}') & sleep 30", marker.display());
        let started = Instant::now();
        let err = run(sh(&script), None, Instant::now() + Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, ChildError::TimedOut { .. }), "{err}");
        assert!(err.to_string().contains("timed out after"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the grandchild was killed with its group");
    }

    #[test]
    fn what_an_exited_child_left_in_its_group_is_killed_and_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // The grandchild keeps stdout open; the child exits at once.
        let script = format!("(sleep 2; touch '{}') & exit 0", marker.display());
        let started = Instant::now();
        let done = run(sh(&script), None, soon()).unwrap();
        assert!(done.status.success());
        assert!(started.elapsed() < Duration::from_millis(1500), "not waiting for the grandchild's pipe");
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the grandchild was killed with its group");
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let err = run(Command::new("/nonexistent/prog"), None, soon()).unwrap_err();
        assert!(matches!(err, ChildError::Spawn { .. }));
        assert!(err.to_string().contains("could not start /nonexistent/prog"), "{err}");
    }

    #[test]
    fn quoted_stderr_never_carries_a_url_password() {
        let done = run(sh("echo 'Fatal: sftp://u:hunter2@h/repo: EOF' >&2; exit 1"), None, soon()).unwrap();
        assert_eq!(done.stderr_text(), "Fatal: sftp://u:***@h/repo: EOF");
    }

    #[test]
    fn a_scrubbed_child_keeps_path_and_nothing_secret() {
        let mut cmd = sh("env");
        cmd.env("RESTIC_PASSWORD", "set-before-scrub");
        scrub_env(&mut cmd);
        cmd.env("PERSISTCTL_X", "given");
        let env = run(cmd, None, soon()).unwrap().stdout_text();
        assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
        assert!(env.contains("PERSISTCTL_X=given"), "{env}");
        assert!(!env.contains("RESTIC_PASSWORD"), "{env}");
        for line in env.lines() {
            let name = line.split_once('=').map_or(line, |(n, _)| n);
            // sh itself sets PWD, SHLVL and _.
            assert!(redact::inherited(name) || ["PERSISTCTL_X", "PWD", "SHLVL", "_"].contains(&name), "{line}");
        }
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("  abc  ", 10), "abc");
        assert_eq!(tail("abcdef", 3), "...def");
        assert_eq!(tail("aé", 1), "...");
    }
}
