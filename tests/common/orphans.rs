//! Shared by the real-ZFS fault-injection tests.

/// Kills every process whose parent is this test process (orphans of a killed persistctl are re-parented
/// here once the test is a child subreaper: `set_child_subreaper(true)`), as systemd's cgroup kill or a
/// power loss would: a `kill -9` of persistctl alone leaves its children (cp, restic) running.
pub fn kill_orphans() {
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        if after.split_whitespace().nth(1) == Some(me.as_str()) {
            let pid: i32 = entry.file_name().to_string_lossy().parse().unwrap();
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
    }
}

/// Lets `child` run for `delay`, then kills it with SIGKILL, and its orphans with it ([`kill_orphans`]).
/// Returns whether it was still running (killed mid-run rather than after it finished).
pub fn kill_9_after(mut child: std::process::Child, delay: std::time::Duration) -> bool {
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    kill_orphans();
    running
}
