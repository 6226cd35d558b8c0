//! The only place that runs `zfs`. Everything above this module speaks in datasets and properties,
//! never in zfs' text formats or argv. The vocabulary (property model, parsers, argv) is
//! `persistctl_core::zfs`, re-exported here.

use std::ffi::OsString;
use std::process::Command;
use std::time::{Duration, Instant};

pub use persistctl_core::zfs::*;

/// How long one `zfs` call may take unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `zfs` (found on PATH, or `$PERSISTCTL_ZFS`), every call with a deadline.
///
/// With the default `failmode=wait`, a `zfs` touching a suspended pool blocks in the kernel until
/// `zpool clear`, and SIGKILL does not end it. So every call ends by its deadline: the process group is
/// killed, a process that does not die is abandoned, and the call fails with a "timed out" error.
#[derive(Debug, Clone)]
pub struct Zfs {
    program: OsString,
    /// For a remote pool: `ssh` and its arguments up to the host; the zfs argv is then quoted for the
    /// remote shell.
    ssh: Option<Vec<String>>,
    /// The longest one call may take.
    timeout: Duration,
    /// A deadline no call may pass (a preseed's whole-run timeout), when there is one.
    cap: Option<Instant>,
}

impl Default for Zfs {
    fn default() -> Self {
        Self::new()
    }
}

/// `zfs create` arguments: every property as `-o k=v`, then the dataset. Never `-p`: it would create
impl Zfs {
    /// Uses `$PERSISTCTL_ZFS` when set, else `zfs` from PATH.
    #[must_use]
    pub fn new() -> Self {
        Self {
            program: std::env::var_os("PERSISTCTL_ZFS").unwrap_or_else(|| "zfs".into()),
            ssh: None,
            timeout: DEFAULT_TIMEOUT,
            cap: None,
        }
    }

    /// The same, with `timeout` for each call.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same, and no call runs past `cap` (a caller's own deadline).
    #[must_use]
    pub fn capped_at(mut self, cap: Instant) -> Self {
        self.cap = Some(self.cap.map_or(cap, |c| c.min(cap)));
        self
    }

    /// The timeout of each call.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// When a call started now must end.
    fn deadline(&self) -> Instant {
        let own = crate::child::deadline_in(self.timeout);
        self.cap.map_or(own, |cap| cap.min(own))
    }

    /// Runs one zfs command and returns its stdout; any non-zero exit is an error with stderr.
    pub fn run(&self, args: &[String]) -> Result<String, ZfsError> {
        if let Some(ssh) = &self.ssh {
            return self.run_remote(ssh, args);
        }
        let command = display_argv(&self.program.to_string_lossy(), args);
        tracing::debug!(%command, "running");
        let mut cmd = Command::new(&self.program);
        cmd.args(args);
        let output = crate::child::run(cmd, None, self.deadline()).map_err(|e| ZfsError {
            command: command.clone(),
            status: None,
            stderr: child_failure(&e),
        })?;
        let stderr = output.stderr_text();
        if output.status.success() {
            return String::from_utf8(output.stdout).map_err(|_| ZfsError {
                command,
                status: Some(0),
                stderr: "output is not UTF-8".into(),
            });
        }
        Err(ZfsError { command, status: output.status.code(), stderr })
    }

    /// Reads `properties` of every filesystem under (and of) `root` in ONE `zfs get -r` process, checked
    /// row by row ([`parse::TreeParser`]): a forged, repeated, stray or missing row is an error naming the
    /// dataset and property, never a tree. Only the properties asked for are printed, so nobody else's
    /// user properties (free text, possibly with line breaks) are ever read. `Missing` only when zfs
    /// exits non-zero saying the root does not exist; an empty answer with exit 0 is an error.
    ///
    /// The output is parsed as it streams in (no copy is held: for 500 datasets it is large), and zfs'
    /// exit status is checked once it is done.
    pub fn read_tree(&self, root: &str, properties: &[&str]) -> Result<TreeRead, ZfsError> {
        let asked = tree_properties(properties);
        let args = properties_tree_args(root, &asked);
        if self.ssh.is_some() {
            return match self.run(&args) {
                Ok(out) => parse::TreeParser::parse(root, &asked, &out).map(TreeRead::Found).map_err(|why| ZfsError {
                    command: display_argv("zfs", &args),
                    status: Some(0),
                    stderr: why.to_string(),
                }),
                Err(e) if e.mentions_missing_dataset() => Ok(TreeRead::Missing),
                Err(e) => Err(e),
            };
        }
        let command = display_argv(&self.program.to_string_lossy(), &args);
        tracing::debug!(%command, "running");
        let mut cmd = Command::new(&self.program);
        cmd.args(&args);
        let mut parser = parse::TreeParser::new(root, &asked);
        let mut bad_output: Option<String> = None;
        let mut pending: Vec<u8> = Vec::new();
        let mut take_line = |line: &[u8], bad: &mut Option<String>| {
            if bad.is_some() {
                return;
            }
            match std::str::from_utf8(line) {
                Ok(line) => {
                    if let Err(why) = parser.push_line(line) {
                        *bad = Some(why.to_string());
                    }
                }
                Err(_) => *bad = Some("output is not UTF-8".into()),
            }
        };
        let streamed = crate::child::run_streaming(cmd, self.deadline(), |chunk| {
            pending.extend_from_slice(chunk);
            let mut start = 0;
            while let Some(at) = pending[start..].iter().position(|b| *b == b'\n') {
                take_line(&pending[start..start + at], &mut bad_output);
                start += at + 1;
            }
            pending.drain(..start);
        })
        .map_err(|e| ZfsError { command: command.clone(), status: None, stderr: child_failure(&e) })?;
        if !pending.is_empty() && bad_output.is_none() {
            bad_output = Some(format!(
                "malformed `zfs get` output: the answer does not end with a line break (truncated): {:?}",
                String::from_utf8_lossy(&pending)
            ));
        }
        let stderr = String::from_utf8_lossy(&streamed.stderr).trim().to_string();
        if !streamed.status.success() {
            let error = ZfsError { command, status: streamed.status.code(), stderr };
            return if error.mentions_missing_dataset() { Ok(TreeRead::Missing) } else { Err(error) };
        }
        if let Some(why) = bad_output {
            return Err(ZfsError { command, status: Some(0), stderr: why });
        }
        parser.finish().map(TreeRead::Found).map_err(|why| ZfsError {
            command,
            status: Some(0),
            stderr: why.to_string(),
        })
    }

    /// Which of `names` exist, in ONE `zfs list -H -o name -d 0 n1 n2 ...` (zfs prints the ones that
    /// exist and exits 1 with "dataset does not exist" for each of the others).
    pub fn existing(&self, names: &[String]) -> Result<std::collections::BTreeSet<String>, ZfsError> {
        if names.is_empty() {
            return Ok(std::collections::BTreeSet::new());
        }
        let mut args: Vec<String> = ["list", "-H", "-o", "name", "-d", "0"].iter().map(|s| (*s).to_string()).collect();
        args.extend(names.iter().cloned());
        let command = display_argv(&self.program.to_string_lossy(), &args);
        let mut cmd = Command::new(&self.program);
        cmd.args(&args);
        if self.ssh.is_some() {
            return Err(ZfsError { command, status: None, stderr: "not supported over ssh".into() });
        }
        let out = crate::child::run(cmd, None, self.deadline()).map_err(|e| ZfsError {
            command: command.clone(),
            status: None,
            stderr: child_failure(&e),
        })?;
        let stderr = out.stderr_text();
        let only_missing =
            stderr.lines().filter(|l| !l.trim().is_empty()).all(|l| l.contains("dataset does not exist"));
        let some_missing = out.status.code() == Some(1) && only_missing;
        if !out.status.success() && !some_missing {
            return Err(ZfsError { command, status: out.status.code(), stderr });
        }
        let found = parse::parse_names(&out.stdout_text());
        if let Some(stray) = found.iter().find(|n| !names.contains(n)) {
            return Err(ZfsError { command, status: Some(0), stderr: format!("unexpected output: {stray:?}") });
        }
        Ok(found.into_iter().collect())
    }

    /// `zfs create -p -o k=v ... dataset`.
    pub fn create(&self, dataset: &str, properties: &[(String, String)]) -> Result<(), ZfsError> {
        let args = create_args(dataset, properties);
        check_written(&display_argv("zfs", &args), dataset, properties)?;
        self.run(&args).map(drop)
    }

    /// `zfs set a=1 b=2 dataset`.
    pub fn set(&self, dataset: &str, properties: &[(String, String)]) -> Result<(), ZfsError> {
        let args = set_args(dataset, properties);
        check_written(&display_argv("zfs", &args), dataset, properties)?;
        self.run(&args).map(drop)
    }

    /// The snapshots of one dataset (not its children), oldest first, in ONE process.
    pub fn snapshots(&self, dataset: &str) -> Result<Vec<String>, ZfsError> {
        let out = self.run(&snapshots_args(dataset))?;
        Ok(parse::parse_names(&out))
    }

    /// The snapshots of one dataset, oldest first; `None` when the dataset does not exist.
    pub fn snapshots_if_exists(&self, dataset: &str) -> Result<Option<Vec<String>>, ZfsError> {
        match self.run(&snapshots_args(dataset)) {
            Ok(out) => Ok(Some(parse::parse_names(&out))),
            Err(e) if e.mentions_missing_dataset() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `zfs rename from to` (no `-p`, no `-f`: the new name's parent must exist, nothing is force-unmounted).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), ZfsError> {
        self.run(&["rename".to_string(), from.to_string(), to.to_string()]).map(drop)
    }

    /// `zfs mount dataset`.
    pub fn mount(&self, dataset: &str) -> Result<(), ZfsError> {
        self.run(&["mount".to_string(), dataset.to_string()]).map(drop)
    }

    /// `zfs unmount dataset` (never `-f`: a busy dataset stays mounted and this fails).
    pub fn unmount(&self, dataset: &str) -> Result<(), ZfsError> {
        self.run(&["unmount".to_string(), dataset.to_string()]).map(drop)
    }

    /// `zfs inherit [-S] property dataset` (`-S`: back to the received value, else the default; the
    /// only way to reset a non-inheritable property such as canmount).
    pub fn inherit(&self, property: &str, dataset: &str, received: bool) -> Result<(), ZfsError> {
        let mut args = vec!["inherit".to_string()];
        if received {
            args.push("-S".into());
        }
        args.extend([property.to_string(), dataset.to_string()]);
        self.run(&args).map(drop)
    }

    /// The program and argv that run `zfs <args>` here or, for a remote pool, through ssh.
    fn argv(&self, args: &[String]) -> (OsString, Vec<String>) {
        match self.ssh.as_ref().and_then(|ssh| ssh.split_first()) {
            Some((program, ssh_args)) => {
                let mut remote: Vec<String> = ssh_args.to_vec();
                // ssh joins its arguments with spaces for the remote shell: each one is quoted for it.
                remote.push(
                    std::iter::once(self.program.to_string_lossy().into_owned())
                        .chain(args.iter().map(|a| quote(a)))
                        .collect::<Vec<_>>()
                        .join(" "),
                );
                (program.into(), remote)
            }
            None => (self.program.clone(), args.to_vec()),
        }
    }

    /// `zfs send -L -e -c <snapshot>` here (or through ssh) piped into `zfs receive -u -o k=v <target>`
    /// on `receiver` (local). Both sides run in their own process groups; both exit statuses are checked
    /// (pipefail); past `deadline` both groups are killed and this fails. A `zfs receive` that does not
    /// finish leaves no dataset behind (ZFS discards a partial full receive).
    pub fn send_receive(
        &self,
        snapshot: &str,
        receiver: &Self,
        target: &str,
        properties: &[(String, String)],
        deadline: std::time::Instant,
    ) -> Result<(), ZfsError> {
        use std::os::unix::process::CommandExt as _;
        let (send_program, send_argv) = self.argv(&send_args(snapshot));
        check_written(&display_argv("zfs", &receive_args(target, properties)), target, properties)?;
        let (recv_program, recv_argv) = receiver.argv(&receive_args(target, properties));
        let command = format!(
            "{} | {}",
            display_argv(&send_program.to_string_lossy(), &send_argv),
            display_argv(&recv_program.to_string_lossy(), &recv_argv)
        );
        tracing::debug!(%command, "running");
        let fail = |status: Option<i32>, stderr: String| ZfsError { command: command.clone(), status, stderr };
        let own_group = |cmd: &mut std::process::Command| {
            cmd.process_group(0);
            Ok(())
        };
        let handle = duct::cmd(&send_program, &send_argv)
            .before_spawn(own_group)
            .pipe(duct::cmd(&recv_program, &recv_argv).before_spawn(own_group))
            .stdin_null()
            .stdout_null()
            .stderr_capture()
            .unchecked()
            .start()
            .map_err(|e| fail(None, e.to_string()))?;
        let mut pause = Duration::from_millis(5);
        loop {
            match handle.try_wait() {
                Ok(Some(output)) => {
                    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
                    // duct's pipe status: a failing side wins over a succeeding one (pipefail).
                    return if output.status.success() { Ok(()) } else { Err(fail(output.status.code(), stderr)) };
                }
                Ok(None) => {}
                Err(e) => {
                    kill_and_abandon(&handle);
                    return Err(fail(None, format!("waiting failed: {e}")));
                }
            }
            let now = Instant::now();
            let deadline = self.cap.map_or(deadline, |cap| cap.min(deadline));
            if now >= deadline {
                kill_and_abandon(&handle);
                return Err(fail(None, "timed out; both sides were killed".into()));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The same commands on another machine, through `ssh [-i key] host zfs ...` (`$PERSISTCTL_SSH`
    /// replaces `ssh`). Non-interactive: no password prompt, a 10 s connect timeout.
    #[must_use]
    pub fn over_ssh(&self, host: &str, ssh_key: Option<&str>) -> Self {
        let mut ssh = ssh_args(host, ssh_key);
        ssh.insert(0, std::env::var("PERSISTCTL_SSH").unwrap_or_else(|_| "ssh".into()));
        Self { program: "zfs".into(), ssh: Some(ssh), timeout: self.timeout, cap: self.cap }
    }

    fn run_remote(&self, ssh: &[String], args: &[String]) -> Result<String, ZfsError> {
        let (program, ssh_args) = ssh.split_first().ok_or_else(|| ZfsError {
            command: display_argv("zfs", args),
            status: None,
            stderr: "no ssh program".into(),
        })?;
        let mut remote: Vec<String> = ssh_args.to_vec();
        // ssh joins its arguments with spaces for the remote shell: each one is quoted for it.
        remote.push(
            std::iter::once(self.program.to_string_lossy().into_owned())
                .chain(args.iter().map(|a| quote(a)))
                .collect::<Vec<_>>()
                .join(" "),
        );
        let local = Self { program: program.into(), ssh: None, timeout: self.timeout, cap: self.cap };
        local.run(&remote)
    }

    /// Every snapshot under (and of) `root` with creation, used and GUID, oldest first, in ONE process
    /// (`depth`: `None` for the whole tree, `Some(1)` for `root`'s own). `None` when `root` does not exist.
    pub fn snapshots_with_info(&self, root: &str, depth: Option<u32>) -> Result<Option<SnapshotsByDataset>, ZfsError> {
        let args = list::snapshot_list_args(root, depth);
        match self.run(&args) {
            Ok(out) => list::parse_snapshot_list(&out).map(Some).map_err(|why| ZfsError {
                command: display_argv("zfs", &args),
                status: Some(0),
                stderr: format!("unexpected output: {why}"),
            }),
            Err(e) if e.mentions_missing_dataset() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `zfs rollback dataset@snap`, never with `-r`: ZFS refuses unless it is the newest snapshot, so
    /// no later snapshot is ever destroyed.
    pub fn rollback(&self, snapshot: &str) -> Result<(), ZfsError> {
        self.run(&["rollback".to_string(), snapshot.to_string()]).map(drop)
    }
}

/// Explains a child that did not run to completion, for a [`ZfsError`].
fn child_failure(error: &crate::child::ChildError) -> String {
    match error {
        crate::child::ChildError::TimedOut { .. } => format!(
            "{error} (a zfs blocked in the kernel, e.g. on a suspended pool, is left behind: see `zpool status`)"
        ),
        other => other.to_string(),
    }
}

/// Kills both sides of a pipeline and waits a little for them; a side stuck in the kernel (D state)
/// ignores SIGKILL, so it is then abandoned rather than waited for.
fn kill_and_abandon(handle: &duct::Handle) {
    kill_groups(&handle.pids());
    let _ = handle.kill();
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if !matches!(handle.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!("a killed zfs send/receive did not exit (stuck in the kernel?); not waiting for it");
}

/// SIGKILLs the process group each pid leads (every child here is started as a group leader).
fn kill_groups(pids: &[u32]) {
    for pid in pids {
        if let Ok(pid) = i32::try_from(*pid) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_command_is_ssh_with_one_quoted_remote_line() {
        let zfs = Zfs {
            program: "zfs".into(),
            ssh: Some(vec!["ssh".into(), "--".into(), "nas".into()]),
            timeout: DEFAULT_TIMEOUT,
            cap: None,
        };
        let (program, argv) = zfs.argv(&send_args("b/my app@s"));
        assert_eq!(program, "ssh");
        assert_eq!(argv, ["--", "nas", "zfs send -L -e -c 'b/my app@s'"]);
    }
}
