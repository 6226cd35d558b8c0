//! Looking at and fixing mountpoint directories without ever following a symlink.
//!
//! Every path is opened with `openat2(RESOLVE_NO_SYMLINKS)`: a symlink planted anywhere on the way (say
//! `/persist/sonarr -> /etc` while the dataset is unmounted) makes the open fail instead of redirecting
//! a chown to somewhere else. Changes are made through the opened descriptor (`fchown`, `fchmod`).

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context as _, bail};
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, fchmod, fstat};
use nix::unistd::{Gid, Group, Uid, User, fchown};

use crate::plan::{OwnershipTarget, PathProbe};

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
    let parent = std::path::Path::new(path).parent().map_or_else(|| "/".to_string(), |p| p.display().to_string());
    let parent_fd =
        open_dir_no_symlinks(&parent).map_err(|e| anyhow::anyhow!("Failed to open {parent}: {}", e.desc()))?;
    let here = fstat(fd).with_context(|| format!("Failed to stat {path}"))?;
    let above = fstat(&parent_fd).with_context(|| format!("Failed to stat {parent}"))?;
    if here.st_dev == above.st_dev {
        bail!("{path} is not a mount point (is the dataset mounted?); owner/mode not changed");
    }
    Ok(())
}

/// One line of `/proc/self/mountinfo`, as far as telling which file system is mounted where goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the mounted file system (ZFS datasets each have their own).
    pub device: (u64, u64),
    /// Where it is mounted (unescaped).
    pub mount_point: String,
    /// `zfs`, `tmpfs`, ...
    pub fstype: String,
    /// For ZFS, the dataset name (unescaped).
    pub source: String,
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let Some(digits) = octal {
            let value = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text (PURE). A line that does not have the documented shape is an error: a reader
/// that guesses could take the wrong file system for a dataset.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>, String> {
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = || format!("mountinfo line {}: unexpected shape: {line:?}", n + 1);
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-").ok_or_else(bad)?;
        if dash < 6 || fields.len() < dash + 3 {
            return Err(bad());
        }
        let (major, minor) = fields[2].split_once(':').ok_or_else(bad)?;
        let device = (major.parse().map_err(|_| bad())?, minor.parse().map_err(|_| bad())?);
        entries.push(MountEntry {
            device,
            mount_point: unescape_mountinfo(fields[4]),
            fstype: fields[dash + 1].to_string(),
            source: unescape_mountinfo(fields[dash + 2]),
        });
    }
    Ok(entries)
}

/// PURE: whether `dataset` is what a process sees at `path`: the last (topmost) mount at `path` is that
/// ZFS dataset, and its device is the one `path` is on (`path_device`; a mount over a parent directory
/// would hide it). `Err`: what is there instead, for the refusal.
pub fn check_dataset_mount(
    entries: &[MountEntry],
    dataset: &str,
    path: &str,
    path_device: (u64, u64),
) -> Result<(), String> {
    let Some(top) = entries.iter().rev().find(|e| e.mount_point == path) else {
        return Err(format!("{path} is not a mount point: {dataset} is not mounted there"));
    };
    if top.fstype != "zfs" || top.source != dataset {
        return Err(format!(
            "{path} is not the mount of {dataset}: {} {:?} is mounted on top of it",
            top.fstype, top.source
        ));
    }
    if top.device != path_device {
        return Err(format!(
            "{path} is hidden: {dataset} is mounted there, but something is mounted over a directory above it"
        ));
    }
    Ok(())
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

    const MOUNTINFO: &str = r"22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
45 22 0:44 / /persist rw shared:20 - zfs tank/persist rw,xattr,posixacl
46 45 0:45 / /persist/my\040app rw shared:21 - zfs tank/persist/my\040app rw
47 45 0:46 / /persist/sonarr rw shared:22 - zfs tank/persist/sonarr rw
48 47 0:47 / /persist/sonarr rw shared:23 - tmpfs tmpfs rw
";

    #[test]
    fn mountinfo_is_parsed_with_its_escapes() {
        let entries = parse_mountinfo(MOUNTINFO).unwrap();
        assert_eq!(entries.len(), 5);
        assert_eq!(
            entries[2],
            MountEntry {
                device: (0, 45),
                mount_point: "/persist/my app".into(),
                fstype: "zfs".into(),
                source: "tank/persist/my app".into()
            }
        );
        assert!(parse_mountinfo("garbage line").unwrap_err().contains("line 1"));
        assert!(parse_mountinfo("1 2 x / /a rw - zfs t rw").is_err(), "a device that is not major:minor");
    }

    #[test]
    fn only_the_topmost_mount_of_the_right_dataset_counts() {
        let entries = parse_mountinfo(MOUNTINFO).unwrap();
        assert_eq!(check_dataset_mount(&entries, "tank/persist/my app", "/persist/my app", (0, 45)), Ok(()));
        let shadowed = check_dataset_mount(&entries, "tank/persist/sonarr", "/persist/sonarr", (0, 47)).unwrap_err();
        assert!(shadowed.contains("tmpfs \"tmpfs\" is mounted on top"), "{shadowed}");
        let wrong = check_dataset_mount(&entries, "tank/persist/radarr", "/persist", (0, 44)).unwrap_err();
        assert!(wrong.contains("not the mount of tank/persist/radarr"), "{wrong}");
        let absent = check_dataset_mount(&entries, "tank/persist/radarr", "/persist/radarr", (0, 44)).unwrap_err();
        assert!(absent.contains("not a mount point"), "{absent}");
        let hidden = check_dataset_mount(&entries, "tank/persist/my app", "/persist/my app", (0, 99)).unwrap_err();
        assert!(hidden.contains("hidden"), "{hidden}");
    }

    #[test]
    fn a_plain_directory_is_not_a_dataset_mount() {
        let dir = tempfile::tempdir().unwrap();
        let err = verify_dataset_mount("tank/x", &dir.path().display().to_string()).unwrap_err();
        assert!(format!("{err:#}").contains("not a mount point"), "{err:#}");
    }
}
