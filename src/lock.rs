//! One exclusive flock for the whole binary: activation, the boot unit and `preseed@` units may run
//! at the same time, and two of them must never interleave `zfs` writes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The default lock path.
pub const DEFAULT_LOCK_PATH: &str = "/run/persistctl.lock";

/// Held for as long as it lives.
#[derive(Debug)]
pub struct Lock {
    _flock: Flock<File>,
}

/// Takes the lock, waiting up to `timeout`.
pub fn acquire(path: &Path, timeout: Duration) -> anyhow::Result<Lock> {
    let start = Instant::now();
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("Failed to open lock file {}", path.display()))?;
    let mut announced = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(flock) => return Ok(Lock { _flock: flock }),
            Err((back, Errno::EWOULDBLOCK | Errno::EINTR)) => {
                file = back;
                if start.elapsed() >= timeout {
                    bail!(
                        "Failed to take the lock {}: another persistctl held it for {} s",
                        path.display(),
                        timeout.as_secs()
                    );
                }
                if !announced {
                    tracing::info!(lock = %path.display(), "waiting for another persistctl run to finish");
                    announced = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err((_, e)) => bail!("Failed to take the lock {}: {}", path.display(), e.desc()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = acquire(&path, Duration::from_secs(1)).unwrap();
        let err = acquire(&path, Duration::from_millis(300)).unwrap_err();
        assert!(err.to_string().contains("another persistctl held it"), "{err}");
        drop(held);
        acquire(&path, Duration::from_millis(300)).unwrap();
    }
}
