//! Staging directories on the target dataset, the swap journal and the rename swap: how `preseed`'s
//! directory restores (restic) and `migrate`'s copies land. Files only; [`crate::provenance`] records
//! where the data came from once it is in.
//!
//! A restore lands in `<mountpoint>/.persistctl-staging-<source>-<pid>/data/...` (same filesystem, so
//! moving it in is `rename(2)`). Once the staged data is verified, `swap.json` is written into the
//! staging directory (atomically, after `syncfs`); from then on a rerun FINISHES the swap instead of
//! starting over. A staging directory without `swap.json` is an unverified, possibly partial restore:
//! a rerun removes it. The target's own entries are never removed.

use std::ffi::OsString;
use std::os::fd::AsFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use nix::fcntl::{AT_FDCWD, OFlag, OpenHow, ResolveFlag, openat2};
use serde::{Deserialize, Serialize};

use crate::names::{STAGING_PREFIX, ZFS_CTLDIR};

/// The journal file inside a staging directory: present = verified, swap begun.
pub const SWAP_JOURNAL: &str = "swap.json";

/// What a staged restore is, written before the swap so a rerun can finish it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapJournal {
    /// `restic`, `replica`, ...
    pub source: String,
    /// The snapshot restored.
    pub snapshot: String,
    /// Where the data's root is, relative to the staging directory.
    pub data_root: PathBuf,
}

/// Whether a staging directory holds a swap journal (a regular file: a symlink there is not one).
#[must_use]
pub fn is_complete(staging: &Path) -> bool {
    std::fs::symlink_metadata(staging.join(SWAP_JOURNAL)).is_ok_and(|m| m.file_type().is_file())
}

/// Checks that `staging` is a staging directory persistctl itself made: named like one, reached
/// without following a symlink, a directory, owned by persistctl's own user (root) and mode 0700, as
/// [`create`] makes them. The dataset root belongs to the service user, who could plant a symlink or a
/// directory of its own under a staging name; such a thing is never followed, trusted or removed (it
/// might be the user's): the error names it, and it is left in place.
pub fn check_ours(staging: &Path) -> anyhow::Result<()> {
    open_ours(staging).map(drop)
}

/// [`check_ours`], keeping the checked directory open: what is done through the descriptor is done to
/// the directory that was checked, even if the service user renames it and plants another meanwhile.
fn open_ours(staging: &Path) -> anyhow::Result<std::os::fd::OwnedFd> {
    let named = staging.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(STAGING_PREFIX));
    if !named {
        bail!("{} is not a persistctl staging directory (wrong name)", staging.display());
    }
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(AT_FDCWD, staging, how).map_err(|e| {
        anyhow::anyhow!(
            "refusing {}: not a directory persistctl made (a symlink or not a directory: {e}); left in place, \
             check it by hand",
            staging.display()
        )
    })?;
    let st = nix::sys::stat::fstat(&fd).with_context(|| format!("Failed to stat {}", staging.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if st.st_uid != me {
        bail!(
            "refusing {}: owned by uid {}, but persistctl's staging is owned by uid {me}; left in place, check it \
             by hand",
            staging.display(),
            st.st_uid
        );
    }
    if !matches!(st.st_mode & 0o7777, 0o700 | 0o711) {
        bail!(
            "refusing {}: mode {:04o}, but persistctl's staging is 0700 (0711 where the service's user must reach \
             into it); left in place, check it by hand",
            staging.display(),
            st.st_mode & 0o7777
        );
    }
    Ok(fd)
}

/// The staging entries among a mounted dataset's top-level `entries`, each checked with [`check_ours`]:
/// one persistctl did not make fails the run (fail closed), naming it.
pub fn our_staging(mountpoint: &Path, entries: &[String]) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = entries.iter().filter(|e| e.starts_with(STAGING_PREFIX)).cloned().collect();
    for name in &names {
        check_ours(&mountpoint.join(name))?;
    }
    Ok(names)
}

/// Checks a journal's `data_root`: relative to the staging directory, UTF-8, without empty, `.` or `..`
/// parts, so that it can only name a place inside the staging directory.
pub fn check_data_root(data_root: &Path) -> Result<(), String> {
    let Some(text) = data_root.to_str() else {
        return Err(format!("data_root {} is not UTF-8", data_root.display()));
    };
    if text.is_empty() || text.starts_with('/') || text.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(format!("data_root {text:?} is not a relative path without empty, '.' or '..' parts"));
    }
    Ok(())
}

/// Where a restored absolute `path` lands under a staging directory: `data/<path's parts>`.
#[must_use]
pub fn data_root_for(path: &str) -> PathBuf {
    let mut root = PathBuf::from("data");
    for part in Path::new(path).components() {
        if let std::path::Component::Normal(part) = part {
            root.push(part);
        }
    }
    root
}

/// Creates a fresh staging directory (mode 0700) for `source` on the mounted target.
pub fn create(mountpoint: &Path, source: &str) -> anyhow::Result<PathBuf> {
    create_with_mode(mountpoint, source, 0o700)
}

/// [`create`] with mode 0711: the service's user may reach a directory of its own inside (a
/// PostgreSQL recovery runs as that user in `<staging>/data`), but cannot list, add or rename
/// anything in the staging directory itself.
pub fn create_traversable(mountpoint: &Path, source: &str) -> anyhow::Result<PathBuf> {
    create_with_mode(mountpoint, source, 0o711)
}

fn create_with_mode(mountpoint: &Path, source: &str, mode: u32) -> anyhow::Result<PathBuf> {
    let path = mountpoint.join(format!("{STAGING_PREFIX}{source}-{}", std::process::id()));
    if std::fs::symlink_metadata(&path).is_ok() {
        remove(&path)?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .with_context(|| format!("Failed to create staging directory {}", path.display()))?;
    // Exactly the mode whatever the umask: `check_ours` trusts nothing else.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("Failed to set the mode of staging directory {}", path.display()))?;
    Ok(path)
}

/// Removes a staging directory persistctl made (refuses any other name, and anything [`check_ours`]
/// refuses). Never follows symlinks.
pub fn remove(staging: &Path) -> anyhow::Result<()> {
    let ours = staging.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(STAGING_PREFIX));
    if !ours {
        bail!("refusing to remove {}: not a persistctl staging directory", staging.display());
    }
    check_ours(staging)?;
    // The journal goes first, durably: a run killed inside remove_dir_all (which may delete the staged
    // data before the journal) must never leave a "complete" staging whose data root is gone, which
    // every rerun would try to finish and fail on. Without its journal it is a stale staging, which a
    // rerun removes (seen in a real-ZFS kill -9 trial on 2.1).
    match std::fs::remove_file(staging.join(SWAP_JOURNAL)) {
        Ok(()) => {
            let dir = std::fs::File::open(staging)
                .with_context(|| format!("Failed to open staging directory {}", staging.display()))?;
            dir.sync_all().with_context(|| format!("Failed to sync staging directory {}", staging.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("Failed to remove the journal of {}", staging.display()));
        }
    }
    // A run killed mid-restore leaves its children running (a barman-cloud-restore, a WAL fetch of
    // its recovery): they would write into the directory while it is removed. Nothing but persistctl's
    // own work runs in a staging directory (root's, 0700/0711), so whatever does is killed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        for user in crate::busy::users_of(staging) {
            tracing::warn!("killing {user}: left running in a staging directory");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(user.pid).unwrap_or(i32::MAX)),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        match std::fs::remove_dir_all(staging) {
            Ok(()) => return Ok(()),
            Err(_) if std::fs::symlink_metadata(staging).is_err() => return Ok(()),
            Err(e) if std::time::Instant::now() < deadline && e.kind() != std::io::ErrorKind::PermissionDenied => {
                tracing::debug!("retrying the removal of {}: {e}", staging.display());
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("Failed to remove staging directory {}", staging.display()));
            }
        }
    }
}

/// Flushes the filesystem holding `path` (all of the staged data) to disk.
pub fn sync_filesystem(path: &Path) -> anyhow::Result<()> {
    let dir = std::fs::File::open(path).with_context(|| format!("Failed to open {}", path.display()))?;
    nix::unistd::syncfs(dir.as_fd()).with_context(|| format!("Failed to sync the filesystem of {}", path.display()))
}

/// Writes the journal atomically (temporary file, fsync, rename, fsync of the directory).
pub fn write_journal(staging: &Path, journal: &SwapJournal) -> anyhow::Result<()> {
    let text = serde_json::to_vec(journal).context("Failed to render the swap journal")?;
    crate::safe_write::write_atomically(&staging.join(SWAP_JOURNAL), &text, 0o600)
}

/// Reads a staging directory's journal: only from a staging directory persistctl made, never through a
/// symlink, and only with a `data_root` inside the staging directory ([`check_data_root`]).
pub fn read_journal(staging: &Path) -> anyhow::Result<SwapJournal> {
    check_ours(staging)?;
    let path = staging.join(SWAP_JOURNAL);
    let text = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(&path)
        .and_then(|mut f| {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut text).map(|_| text)
        })
        .with_context(|| format!("Failed to read {}", path.display()))?;
    let journal: SwapJournal =
        serde_json::from_slice(&text).with_context(|| format!("Failed to parse {}", path.display()))?;
    check_data_root(&journal.data_root).map_err(|why| anyhow::anyhow!("refusing {}: {why}", path.display()))?;
    Ok(journal)
}

/// How the target's top-level entries are treated by a swap.
#[derive(Debug, Clone, Copy, Default)]
pub struct EntryRules<'a> {
    /// Names that may already exist in the target (`preseed.ignore`).
    pub ignore: &'a [String],
    /// `preseed.dataMarkers`: the entries holding one are moved last.
    pub markers: &'a [String],
}

impl EntryRules<'_> {
    /// Whether `name` is the first component of a data marker.
    fn holds_marker(&self, name: &OsString) -> bool {
        self.markers.iter().any(|m| m.split('/').next().is_some_and(|first| name.as_os_str() == first))
    }
}

/// Which of the staged root's owner, group and mode to copy onto the target's root (the config's own
/// owner/group/mode win, and `apply` enforces those).
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOwnership {
    /// Copy the owner.
    pub owner: bool,
    /// Copy the group.
    pub group: bool,
    /// Copy the permission bits.
    pub mode: bool,
}

/// Moves every entry of the staged data root but `.zfs` into the target, one `rename(2)` each, the
/// entries holding a data marker (`preseed.dataMarkers`' first components, e.g. `PG_VERSION`) last:
/// until the whole copy is in, the target never looks like data. Restartable: an entry already moved
/// is simply no longer in the staging directory. An entry that already exists in the target is left
/// alone when it is an ignored name (`lost+found`), otherwise the swap stops.
pub fn swap_in(
    mountpoint: &Path,
    staging: &Path,
    journal: &SwapJournal,
    rules: &EntryRules,
    copy: CopyOwnership,
) -> anyhow::Result<usize> {
    let ignore = rules.ignore;
    let staging_fd = open_ours(staging)?;
    check_data_root(&journal.data_root).map_err(|why| anyhow::anyhow!("refusing {}: {why}", staging.display()))?;
    let root = staging.join(&journal.data_root);
    // Beneath the checked staging directory's descriptor, no symlink on the way (a restored tree may
    // hold some): the owner and mode copied below are the staged root's own, and the entries moved are
    // its entries, never another path's.
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let root_fd = openat2(&staging_fd, &journal.data_root, how)
        .with_context(|| format!("staged data root {} is not a directory reached without symlinks", root.display()))?;
    let meta = nix::sys::stat::fstat(&root_fd).with_context(|| format!("Failed to stat {}", root.display()))?;
    // Owner and mode first: the target holds no data yet, so a crash here leaves nothing half-done.
    let uid = copy.owner.then(|| nix::unistd::Uid::from_raw(meta.st_uid));
    let gid = copy.group.then(|| nix::unistd::Gid::from_raw(meta.st_gid));
    if uid.is_some() || gid.is_some() {
        nix::unistd::chown(mountpoint, uid, gid)
            .with_context(|| format!("Failed to change the owner of {}", mountpoint.display()))?;
    }
    if copy.mode {
        std::fs::set_permissions(mountpoint, std::fs::Permissions::from_mode(meta.st_mode & 0o7777))
            .with_context(|| format!("Failed to change the mode of {}", mountpoint.display()))?;
    }
    let mut moved = 0;
    let listing = root_fd.try_clone().with_context(|| format!("Failed to read {}", root.display()))?;
    let mut dir = nix::dir::Dir::from_fd(listing).with_context(|| format!("Failed to read {}", root.display()))?;
    let mut names: Vec<OsString> = Vec::new();
    for entry in dir.iter() {
        let entry = entry.with_context(|| format!("Failed to read {}", root.display()))?;
        let name = std::ffi::OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_os_string());
        }
    }
    let marker = |name: &OsString| rules.holds_marker(name);
    names.sort_by(|a, b| (marker(a), a).cmp(&(marker(b), b)));
    for name in names {
        if name == ZFS_CTLDIR {
            // A backup of a dataset root taken with snapdir=visible holds ZFS's control directory (a view
            // of old snapshots, never the dataset's data). The target has its own `.zfs`, which no rename
            // can replace: moving it would fail on every rerun and leave the swap stuck half-way. It
            // stays in the staging and goes with it; the backup itself still holds it.
            tracing::warn!("not moving {}: .zfs is ZFS's snapshot directory, not data", root.join(&name).display());
            continue;
        }
        let from = root.join(&name);
        let to = mountpoint.join(&name);
        // RENAME_NOREPLACE: an entry that appears in the target between a check and the rename (the
        // service user owns the dataset root) is never replaced; the kernel decides, atomically.
        match crate::safe_write::rename_no_replace(&root_fd, Path::new(&name), AT_FDCWD, &to) {
            Ok(()) => moved += 1,
            Err(nix::errno::Errno::EEXIST) if ignore.iter().any(|i| OsString::from(i) == name) => {}
            Err(nix::errno::Errno::EEXIST) => {
                bail!("{} already exists; not overwriting it with the restored copy", to.display());
            }
            Err(e) => {
                return Err(e).with_context(|| format!("Failed to move {} to {}", from.display(), to.display()));
            }
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsprobe::list_entries;

    fn journal() -> SwapJournal {
        SwapJournal { source: "restic".into(), snapshot: "abc".into(), data_root: "data/old path".into() }
    }

    #[test]
    fn a_swap_interrupted_anywhere_finishes_on_rerun() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::create_dir(target.join("lost+found")).unwrap();
        let staging = create(&target, "restic").unwrap();
        let root = staging.join("data/old path");
        std::fs::create_dir_all(root.join("sub dir")).unwrap();
        std::fs::write(root.join("a"), "1").unwrap();
        std::fs::write(root.join("sub dir/b"), "2").unwrap();
        std::fs::create_dir(root.join("lost+found")).unwrap();
        write_journal(&staging, &journal()).unwrap();
        assert!(is_complete(&staging));
        assert_eq!(read_journal(&staging).unwrap(), journal());
        // Simulate a crash after one entry moved.
        std::fs::rename(root.join("a"), target.join("a")).unwrap();
        let ignore = vec!["lost+found".to_string()];
        let moved = swap_in(
            &target,
            &staging,
            &journal(),
            &EntryRules { ignore: &ignore, markers: &[] },
            CopyOwnership::default(),
        )
        .unwrap();
        assert_eq!(moved, 1);
        assert_eq!(std::fs::read_to_string(target.join("sub dir/b")).unwrap(), "2");
        assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "1");
        remove(&staging).unwrap();
        let names = list_entries(&target).unwrap();
        assert_eq!(names, ["a", "lost+found", "sub dir"]);
    }

    #[test]
    fn an_existing_entry_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        let staging = create(target, "restic").unwrap();
        std::fs::create_dir_all(staging.join("data/old path")).unwrap();
        std::fs::write(staging.join("data/old path/db"), "restored").unwrap();
        std::fs::write(target.join("db"), "live").unwrap();
        let err = swap_in(target, &staging, &journal(), &EntryRules::default(), CopyOwnership::default()).unwrap_err();
        assert!(err.to_string().contains("not overwriting"), "{err}");
        assert_eq!(std::fs::read_to_string(target.join("db")).unwrap(), "live");
    }

    #[test]
    fn the_data_marker_goes_in_last() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        let staging = create_traversable(target, "barman").unwrap();
        let root = staging.join("data/old path");
        for name in ["PG_VERSION", "base", "zz"] {
            std::fs::create_dir_all(root.join(name)).unwrap();
        }
        // The swap stops at "zz" (it exists in the target): whatever sorts first, the marker is not in.
        std::fs::create_dir(target.join("zz")).unwrap();
        let markers = ["PG_VERSION/x".to_string()];
        let rules = EntryRules { ignore: &[], markers: &markers };
        assert!(swap_in(target, &staging, &journal(), &rules, CopyOwnership::default()).is_err());
        assert_eq!(
            list_entries(target).unwrap(),
            [".persistctl-staging-barman-".to_string() + &std::process::id().to_string(), "base".into(), "zz".into()]
        );
        std::fs::remove_dir(target.join("zz")).unwrap();
        assert_eq!(swap_in(target, &staging, &journal(), &rules, CopyOwnership::default()).unwrap(), 2);
        assert!(target.join("PG_VERSION").is_dir());
    }

    #[test]
    fn only_staging_directories_are_ever_removed() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("data");
        std::fs::create_dir(&other).unwrap();
        assert!(remove(&other).is_err());
        assert!(other.exists());
        std::os::unix::fs::symlink(&other, dir.path().join("lnk")).unwrap();
        assert!(list_entries(&dir.path().join("lnk")).is_err(), "symlinks are not followed");
    }
    #[test]
    fn a_staging_whose_journal_went_first_is_stale_and_removable() {
        // A kill anywhere inside remove() must leave no "complete" staging without its data.
        let dir = tempfile::tempdir().unwrap();
        let staging = create(dir.path(), "restic").unwrap();
        std::fs::create_dir_all(staging.join("data/old path")).unwrap();
        write_journal(&staging, &journal()).unwrap();
        assert!(is_complete(&staging));
        // As if killed after the journal went: the rest is a stale staging, removable.
        std::fs::remove_file(staging.join(SWAP_JOURNAL)).unwrap();
        assert!(!is_complete(&staging));
        remove(&staging).unwrap();
        assert!(!staging.exists());
    }

    #[test]
    fn the_swap_never_replaces_an_entry_even_one_that_appears_late() {
        // The rename itself refuses (RENAME_NOREPLACE): no check-then-rename window to race.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        let staging = create(target, "restic").unwrap();
        std::fs::create_dir_all(staging.join("data/old path")).unwrap();
        std::fs::write(staging.join("data/old path/db"), "restored").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", target.join("db")).unwrap();
        let err = swap_in(target, &staging, &journal(), &EntryRules::default(), CopyOwnership::default()).unwrap_err();
        assert!(err.to_string().contains("not overwriting"), "{err}");
        assert_eq!(std::fs::read_link(target.join("db")).unwrap(), Path::new("/etc/passwd"));
        assert_eq!(std::fs::read_to_string(staging.join("data/old path/db")).unwrap(), "restored");
    }

    #[test]
    fn planted_staging_is_refused_named_and_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(elsewhere.join("data")).unwrap();
        std::fs::write(elsewhere.join("swap.json"), r#"{"source":"restic","snapshot":"x","data_root":"data"}"#)
            .unwrap();
        std::fs::create_dir(&target).unwrap();
        // A symlink named like a staging directory (the service user owns the target's root).
        let link = target.join(format!("{STAGING_PREFIX}restic-1"));
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        // A directory with a staging name but not persistctl's mode, and one owned by someone else.
        let open_mode = target.join(format!("{STAGING_PREFIX}restic-2"));
        std::fs::DirBuilder::new().mode(0o755).create(&open_mode).unwrap();
        let foreign = target.join(format!("{STAGING_PREFIX}restic-3"));
        std::fs::DirBuilder::new().mode(0o700).create(&foreign).unwrap();
        let foreign_ok = nix::unistd::chown(&foreign, Some(nix::unistd::Uid::from_raw(4242)), None).is_ok();
        let mut planted = vec![&link, &open_mode];
        if foreign_ok {
            planted.push(&foreign);
        }
        for path in planted {
            let name = path.display().to_string();
            let err = format!("{:#}", check_ours(path).unwrap_err());
            assert!(err.contains(&name) && err.contains("left in place"), "{err}");
            assert!(remove(path).is_err(), "{name} is never removed");
            assert!(read_journal(path).is_err(), "{name}'s journal is never read");
            assert!(swap_in(&target, path, &journal(), &EntryRules::default(), CopyOwnership::default()).is_err());
            assert!(std::fs::symlink_metadata(path).is_ok(), "{name} left in place");
        }
        assert!(our_staging(&target, &list_entries(&target).unwrap()).is_err());
        assert!(elsewhere.join("data").exists() && elsewhere.join("swap.json").exists());
    }

    #[test]
    fn a_journal_whose_data_root_leaves_the_staging_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        let staging = create(target, "restic").unwrap();
        for bad in ["/etc", "../x", "data/../../etc", "data//x", "data/./x", ""] {
            let j = SwapJournal { source: "restic".into(), snapshot: "s".into(), data_root: bad.into() };
            write_journal(&staging, &j).unwrap();
            let err = format!("{:#}", read_journal(&staging).unwrap_err());
            assert!(err.contains("data_root"), "{bad:?}: {err}");
            assert!(
                swap_in(target, &staging, &j, &EntryRules::default(), CopyOwnership::default()).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(data_root_for("/var//lib/x/"), Path::new("data/var/lib/x"));
        assert_eq!(data_root_for("/"), Path::new("data"));
        assert!(check_data_root(&data_root_for("/var/lib/x")).is_ok());
    }

    #[test]
    fn a_backup_holding_dot_zfs_swaps_in_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        std::fs::create_dir_all(target.join(".zfs/snapshot")).unwrap();
        let staging = create(target, "restic").unwrap();
        let root = staging.join("data/old path");
        std::fs::create_dir_all(root.join(".zfs/snapshot/s1")).unwrap();
        std::fs::write(root.join(".zfs/snapshot/s1/db"), "old").unwrap();
        std::fs::write(root.join("db"), "restored").unwrap();
        write_journal(&staging, &journal()).unwrap();
        let moved = swap_in(target, &staging, &journal(), &EntryRules::default(), CopyOwnership::default()).unwrap();
        assert_eq!(moved, 1);
        assert_eq!(std::fs::read_to_string(target.join("db")).unwrap(), "restored");
        assert!(!target.join(".zfs/snapshot/s1").exists(), "the target's own .zfs is untouched");
        // A rerun (as after a crash) finishes too: nothing is stuck.
        assert_eq!(swap_in(target, &staging, &journal(), &EntryRules::default(), CopyOwnership::default()).unwrap(), 0);
        remove(&staging).unwrap();
    }
    #[test]
    fn a_staged_root_reached_through_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(elsewhere.join("old path")).unwrap();
        std::fs::write(elsewhere.join("old path/secret"), "x").unwrap();
        std::fs::create_dir(&target).unwrap();
        let staging = create(&target, "restic").unwrap();
        // A restored tree holding a symlink where the data root's parent should be.
        std::os::unix::fs::symlink(&elsewhere, staging.join("data")).unwrap();
        let err = swap_in(&target, &staging, &journal(), &EntryRules::default(), CopyOwnership::default()).unwrap_err();
        assert!(format!("{err:#}").contains("without symlinks"), "{err:#}");
        assert!(elsewhere.join("old path/secret").exists() && !target.join("secret").exists());
    }
}
