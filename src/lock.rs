//! Locks. One exclusive flock serialises `zfs` writes between every persistctl run (activation, the
//! boot unit, `preseed@` units, `migrate`); it is held only around short mutations. A second, per-dataset
//! flock is held for as long as a run owns one dataset (a restore that may take an hour, a migration), so
//! two restores of two services run side by side and `apply` leaves a dataset alone while it is restored.
//!
//! Lock files are opened with `O_NOFOLLOW | O_NONBLOCK` and must be regular files: a symlink planted at
//! the path cannot redirect the open, and a FIFO cannot block it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
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

/// The per-dataset lock file beside the global one: `<global>.<dataset with / as %2F>`.
#[must_use]
pub fn dataset_lock_path(global: &Path, dataset: &str) -> PathBuf {
    let escaped = dataset.replace('%', "%25").replace('/', "%2F");
    let mut name = global.file_name().map_or_else(|| "persistctl.lock".into(), std::ffi::OsStr::to_os_string);
    name.push(".");
    name.push(escaped);
    global.with_file_name(name)
}

fn open(path: &Path) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                anyhow::anyhow!("Failed to open lock file {}: it is a symlink (not following it)", path.display())
            } else if e.raw_os_error() == Some(nix::libc::ENXIO) {
                // O_WRONLY|O_NONBLOCK on a FIFO without a reader: refused at once instead of blocking.
                anyhow::anyhow!("Failed to open lock file {}: it is a FIFO", path.display())
            } else {
                anyhow::Error::new(e).context(format!("Failed to open lock file {}", path.display()))
            }
        })?;
    let kind = file.metadata().with_context(|| format!("Failed to stat lock file {}", path.display()))?.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() { "a FIFO" } else { "not a regular file" };
        bail!("Failed to open lock file {}: it is {what}", path.display());
    }
    Ok(file)
}

/// Takes the lock, waiting up to `timeout`.
pub fn acquire(path: &Path, timeout: Duration) -> anyhow::Result<Lock> {
    let start = Instant::now();
    let mut file = open(path)?;
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

/// Takes the lock if it is free now; `Ok(None)` when another run holds it.
pub fn try_acquire(path: &Path) -> anyhow::Result<Option<Lock>> {
    match Flock::lock(open(path)?, FlockArg::LockExclusiveNonblock) {
        Ok(flock) => Ok(Some(Lock { _flock: flock })),
        Err((_, Errno::EWOULDBLOCK | Errno::EINTR)) => Ok(None),
        Err((_, e)) => bail!("Failed to take the lock {}: {}", path.display(), e.desc()),
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
        assert!(try_acquire(&path).unwrap().is_none());
        drop(held);
        acquire(&path, Duration::from_millis(300)).unwrap();
        assert!(try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn a_planted_symlink_or_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("lock");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = acquire(&link, Duration::from_secs(1)).unwrap_err();
        assert!(format!("{err:#}").contains("symlink"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let started = Instant::now();
        let err = acquire(&fifo, Duration::from_secs(1)).unwrap_err();
        assert!(format!("{err:#}").contains("FIFO"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(1), "a FIFO must not block the open");
    }

    #[test]
    fn dataset_locks_live_beside_the_global_one() {
        assert_eq!(
            dataset_lock_path(Path::new("/run/persistctl.lock"), "tank/persist/my%app"),
            Path::new("/run/persistctl.lock.tank%2Fpersist%2Fmy%25app")
        );
        let dir = tempfile::tempdir().unwrap();
        let global = dir.path().join("lock");
        let _g = acquire(&global, Duration::from_secs(1)).unwrap();
        let a = acquire(&dataset_lock_path(&global, "t/a"), Duration::from_secs(1)).unwrap();
        let _b = acquire(&dataset_lock_path(&global, "t/b"), Duration::from_secs(1)).unwrap();
        assert!(try_acquire(&dataset_lock_path(&global, "t/a")).unwrap().is_none());
        drop(a);
    }
}
