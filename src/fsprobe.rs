//! Looking at and fixing mountpoint directories without ever following a symlink.
//!
//! Every path is opened with `openat2(RESOLVE_NO_SYMLINKS)`: a symlink planted anywhere on the way (say
//! `/persist/sonarr -> /etc` while the dataset is unmounted) makes the open fail instead of redirecting
//! a chown to somewhere else. Changes are made through the opened descriptor (`fchown`, `fchmod`).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{Context as _, bail};
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, fchmod, fstat};
use nix::unistd::{Gid, Group, Uid, User, fchown};

use crate::plan::{OwnershipTarget, PathProbe};
pub use persistctl_core::mountinfo::{MountEntry, check_dataset_mount, parse_mountinfo};

/// `ZFS_SUPER_MAGIC`: what `statfs` reports for a ZFS mount.
const ZFS_SUPER_MAGIC: i64 = 0x2fc1_2fc1;

fn open_dir_no_symlinks(path: &str) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(AT_FDCWD, path, how)
}

/// What is at `path`, reached without following symlinks.
#[must_use]
pub fn probe(path: &str) -> PathProbe {
    match open_dir_no_symlinks(path) {
        Ok(fd) => match describe(fd) {
            Ok(probe) => probe,
            Err(e) => PathProbe::Unreadable { error: format!("{e:#}") },
        },
        Err(Errno::ENOENT) => PathProbe::Absent,
        Err(Errno::ELOOP) => PathProbe::Symlink,
        Err(Errno::ENOTDIR) => not_a_directory_or_symlink(path),
        Err(e) => PathProbe::Unreadable { error: e.desc().to_string() },
    }
}

/// ENOTDIR can mean "a file" or "a symlink to a file/dir with `O_NOFOLLOW|O_DIRECTORY`": tell them apart.
fn not_a_directory_or_symlink(path: &str) -> PathProbe {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => PathProbe::Symlink,
        _ => PathProbe::NotADirectory,
    }
}

fn describe(fd: OwnedFd) -> anyhow::Result<PathProbe> {
    let stat = fstat(&fd).context("fstat")?;
    let mut dir = nix::dir::Dir::from_fd(fd).context("opendir")?;
    let empty = dir.iter().filter_map(Result::ok).all(|entry| matches!(entry.file_name().to_bytes(), b"." | b".."));
    Ok(PathProbe::Directory { empty, uid: stat.st_uid, gid: stat.st_gid, mode: stat.st_mode & 0o7777 })
}

/// Resolves a user name to a uid (`None`: no such user).
pub fn lookup_user(name: &str) -> anyhow::Result<Option<u32>> {
    Ok(User::from_name(name).with_context(|| format!("Failed to look up user {name:?}"))?.map(|u| u.uid.as_raw()))
}

/// Resolves a group name to a gid (`None`: no such group).
pub fn lookup_group(name: &str) -> anyhow::Result<Option<u32>> {
    Ok(Group::from_name(name).with_context(|| format!("Failed to look up group {name:?}"))?.map(|g| g.gid.as_raw()))
}

/// Enforces owner/group/mode on the root directory of the ZFS dataset mounted at `path`.
///
/// Refuses when the path is (or passes through) a symlink, or is not the root of a ZFS mount — so an
/// unmounted dataset never gets the directory beneath it changed. Returns whether anything changed.
pub fn enforce_ownership(path: &str, target: &OwnershipTarget) -> anyhow::Result<bool> {
    let fd = open_dir_no_symlinks(path).map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => {
            anyhow::anyhow!("{path} is (or passes through) a symlink or is not a directory; not following it")
        }
        other => anyhow::anyhow!("Failed to open {path}: {}", other.desc()),
    })?;
    check_zfs_mount_root(path, &fd)?;
    let stat = fstat(&fd).with_context(|| format!("Failed to stat {path}"))?;
    let mut changed = false;
    let uid = target.uid.filter(|u| *u != stat.st_uid);
    let gid = target.gid.filter(|g| *g != stat.st_gid);
    if uid.is_some() || gid.is_some() {
        fchown(fd.as_fd(), uid.map(Uid::from_raw), gid.map(Gid::from_raw))
            .with_context(|| format!("Failed to change the owner of {path}"))?;
        changed = true;
    }
    if let Some(mode) = target.mode.filter(|m| *m != stat.st_mode & 0o7777) {
        fchmod(fd.as_fd(), Mode::from_bits_truncate(mode))
            .with_context(|| format!("Failed to change the mode of {path}"))?;
        changed = true;
    }
    Ok(changed)
}

fn check_zfs_mount_root(path: &str, fd: &OwnedFd) -> anyhow::Result<()> {
    let fs = nix::sys::statfs::fstatfs(fd).with_context(|| format!("Failed to statfs {path}"))?;
    #[allow(clippy::cast_lossless, clippy::unnecessary_cast)]
    let magic = fs.filesystem_type().0 as i64;
    if magic != ZFS_SUPER_MAGIC {
        bail!("{path} is not on ZFS (is the dataset mounted?); owner/mode not changed");
    }
    let parent = Path::new(path).parent().map_or_else(|| "/".to_string(), |p| p.display().to_string());
    let parent_fd =
        open_dir_no_symlinks(&parent).map_err(|e| anyhow::anyhow!("Failed to open {parent}: {}", e.desc()))?;
    let here = fstat(fd).with_context(|| format!("Failed to stat {path}"))?;
    let above = fstat(&parent_fd).with_context(|| format!("Failed to stat {parent}"))?;
    if here.st_dev == above.st_dev {
        bail!("{path} is not a mount point (is the dataset mounted?); owner/mode not changed");
    }
    Ok(())
}

/// Top-level entry names of a directory, reached without following symlinks.
pub fn list_entries(path: &Path) -> anyhow::Result<Vec<String>> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(AT_FDCWD, path, how).with_context(|| format!("Failed to open {}", path.display()))?;
    let mut dir = nix::dir::Dir::from_fd(fd).with_context(|| format!("Failed to read {}", path.display()))?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry.with_context(|| format!("Failed to read {}", path.display()))?;
        let name = entry.file_name().to_string_lossy();
        if name != "." && name != ".." {
            names.push(name.into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Whether a dataset can be mounted on `path` without hiding anything: nothing is there, or an empty
/// directory (not a symlink).
pub fn is_free_mountpoint(path: &Path) -> anyhow::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("Failed to stat {}", path.display())),
        Ok(meta) if meta.is_dir() => Ok(list_entries(path)?.is_empty()),
        Ok(_) => Ok(false),
    }
}

/// Where the mount table is read: `/proc/self/mountinfo`, or `$PERSISTCTL_MOUNTINFO` (the fake-zfs
/// test suites point it at the table their fake keeps, so the same check runs against fake mounts).
fn mountinfo_path() -> std::path::PathBuf {
    std::env::var_os("PERSISTCTL_MOUNTINFO").map_or_else(|| "/proc/self/mountinfo".into(), Into::into)
}

/// Refuses unless `path` is the root of `dataset`'s ZFS mount as every process sees it: not a directory
/// below an unmounted dataset, not a tmpfs or bind mount over it, not the parent's directory.
pub fn verify_dataset_mount(dataset: &str, path: &str) -> anyhow::Result<()> {
    let table = mountinfo_path();
    let text = std::fs::read_to_string(&table).with_context(|| format!("Failed to read {}", table.display()))?;
    let entries = parse_mountinfo(&text).map_err(anyhow::Error::msg)?;
    let fd = open_dir_no_symlinks(path)
        .map_err(|e| anyhow::anyhow!("cannot open {path} ({}): {dataset} is not mounted there", e.desc()))?;
    let stat = fstat(&fd).with_context(|| format!("Failed to stat {path}"))?;
    let device = (nix::sys::stat::major(stat.st_dev), nix::sys::stat::minor(stat.st_dev));
    check_dataset_mount(&entries, dataset, path, device).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn probe_tells_every_kind_of_path_apart() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("empty")).unwrap();
        std::fs::create_dir(root.join("full")).unwrap();
        std::fs::write(root.join("full/file"), "x").unwrap();
        std::fs::set_permissions(root.join("full"), std::fs::Permissions::from_mode(0o750)).unwrap();
        std::fs::write(root.join("file"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("full"), root.join("link")).unwrap();
        let at = |name: &str| root.join(name).display().to_string();
        assert!(matches!(probe(&at("empty")), PathProbe::Directory { empty: true, .. }));
        assert!(matches!(probe(&at("full")), PathProbe::Directory { empty: false, mode: 0o750, .. }));
        assert_eq!(probe(&at("missing")), PathProbe::Absent);
        assert_eq!(probe(&at("file")), PathProbe::NotADirectory);
        assert_eq!(probe(&at("link")), PathProbe::Symlink);
        assert_eq!(probe(&at("link/file")), PathProbe::Symlink, "a symlink on the way counts too");
    }

    #[test]
    fn ownership_is_never_enforced_off_zfs_or_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let target = OwnershipTarget { uid: None, gid: None, mode: Some(0o700) };
        let plain = dir.path().display().to_string();
        let err = enforce_ownership(&plain, &target).unwrap_err().to_string();
        assert!(err.contains("not on ZFS") || err.contains("not a mount point"), "{err}");
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let err = enforce_ownership(&format!("{plain}/link"), &target).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
        let meta = std::fs::metadata("/etc").unwrap();
        assert_ne!(meta.permissions().mode() & 0o7777, 0o700, "/etc untouched");
    }

    #[test]
    fn root_resolves_and_unknown_users_do_not() {
        assert_eq!(lookup_user("root").unwrap(), Some(0));
        assert_eq!(lookup_group("root").unwrap(), Some(0));
        assert_eq!(lookup_user("no-such-user-persistctl").unwrap(), None);
    }

    #[test]
    fn a_mountpoint_is_free_only_when_nothing_or_an_empty_directory_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("empty")).unwrap();
        std::fs::create_dir(root.join("full")).unwrap();
        std::fs::write(root.join("full/file"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("empty"), root.join("link")).unwrap();
        assert!(is_free_mountpoint(&root.join("missing")).unwrap());
        assert!(is_free_mountpoint(&root.join("empty")).unwrap());
        assert!(!is_free_mountpoint(&root.join("full")).unwrap());
        assert!(!is_free_mountpoint(&root.join("full/file")).unwrap());
        assert!(!is_free_mountpoint(&root.join("link")).unwrap(), "a symlink is not an empty directory");
        assert_eq!(list_entries(&root.join("full")).unwrap(), ["file"]);
    }

    #[test]
    fn a_plain_directory_is_not_a_dataset_mount() {
        let dir = tempfile::tempdir().unwrap();
        let err = verify_dataset_mount("tank/x", &dir.path().display().to_string()).unwrap_err();
        assert!(format!("{err:#}").contains("not a mount point"), "{err:#}");
    }
}
