//! Which processes use a directory (their working directory, root, or an open file under it), read from
//! `/proc`. A migration copies only a directory nothing is using: a running service would change it
//! behind the copy. A staging directory is removed only once nothing works in it: what a killed run
//! left running there (a restore still writing) is killed first.

use std::path::{Path, PathBuf};

/// A process using the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
    /// The path under the directory it uses.
    pub path: PathBuf,
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({}) uses {}", self.pid, self.command, self.path.display())
    }
}

/// The first path under `dir` that process `pid` uses, if any (`proc` is normally `/proc`).
fn uses(proc: &Path, pid: &str, dir: &Path) -> Option<PathBuf> {
    let base = proc.join(pid);
    let under = |link: PathBuf| std::fs::read_link(link).ok().filter(|target| target.starts_with(dir));
    under(base.join("cwd"))
        .or_else(|| under(base.join("root")))
        .or_else(|| std::fs::read_dir(base.join("fd")).ok()?.flatten().find_map(|fd| under(fd.path())))
}

/// Every process but this one that uses `dir` or anything under it. Processes that vanish or cannot be
/// read while looking are skipped.
#[must_use]
pub fn users_of(dir: &Path) -> Vec<User> {
    let proc = Path::new("/proc");
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir(proc) else { return Vec::new() };
    let mut found: Vec<User> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name != &me && !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|pid| {
            let path = uses(proc, &pid, dir)?;
            let command = std::fs::read_to_string(proc.join(&pid).join("comm")).unwrap_or_default().trim().to_string();
            Some(User { pid: pid.parse().ok()?, command, path })
        })
        .collect();
    found.sort_by_key(|u| u.pid);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    struct Killed(std::process::Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn spawn(script: &str, cwd: &Path) -> Killed {
        let child = Command::new("sh").arg("-c").arg(script).current_dir(cwd).stdin(Stdio::null()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        Killed(child)
    }

    #[test]
    fn a_working_directory_or_an_open_file_under_the_directory_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/db"), "x").unwrap();
        assert_eq!(users_of(&data), Vec::new(), "nothing uses it yet");
        let inside = spawn("exec sleep 30", &data.join("sub"));
        let holder = spawn(&format!("exec 3<'{}'; exec sleep 30", data.join("sub/db").display()), dir.path());
        let users = users_of(&data);
        let pids: Vec<u32> = users.iter().map(|u| u.pid).collect();
        assert!(pids.contains(&inside.0.id()), "{users:?}");
        assert!(pids.contains(&holder.0.id()), "{users:?}");
        let held = users.iter().find(|u| u.pid == holder.0.id()).unwrap();
        assert_eq!(held.path, data.join("sub/db"));
        assert_eq!(held.command, "sleep");
        // A sibling with the same prefix is not "under" it.
        assert_eq!(users_of(&dir.path().join("dat")), Vec::new());
    }
}
