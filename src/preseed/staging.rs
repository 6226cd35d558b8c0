//! Staging directories on the target dataset and the swap journal.
//!
//! A restore lands in `<mountpoint>/.persistctl-staging-<source>-<pid>/data/...` (same filesystem, so
//! moving it in is `rename(2)`). Once the staged data is verified, `swap.json` is written into the
//! staging directory (atomically, after `syncfs`); from then on a rerun FINISHES the swap instead of
//! starting over. A staging directory without `swap.json` is an unverified, possibly partial restore:
//! a rerun removes it. The target's own entries are never removed.

use std::ffi::OsString;
use std::os::fd::AsFd as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use nix::fcntl::{AT_FDCWD, OFlag, OpenHow, RenameFlags, ResolveFlag, openat2, renameat2};
use serde::{Deserialize, Serialize};

use super::decide::STAGING_PREFIX;

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

/// Whether a staging directory holds a swap journal.
#[must_use]
pub fn is_complete(staging: &Path) -> bool {
    staging.join(SWAP_JOURNAL).is_file()
}

/// Creates a fresh staging directory (mode 0700) for `source` on the mounted target.
pub fn create(mountpoint: &Path, source: &str) -> anyhow::Result<PathBuf> {
    let path = mountpoint.join(format!("{STAGING_PREFIX}{source}-{}", std::process::id()));
    if path.exists() {
        remove(&path)?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .with_context(|| format!("Failed to create staging directory {}", path.display()))?;
    Ok(path)
}

/// Removes a staging directory persistctl made (refuses any other name). Never follows symlinks.
pub fn remove(staging: &Path) -> anyhow::Result<()> {
    let ours = staging.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(STAGING_PREFIX));
    if !ours {
        bail!("refusing to remove {}: not a persistctl staging directory", staging.display());
    }
    std::fs::remove_dir_all(staging)
        .with_context(|| format!("Failed to remove staging directory {}", staging.display()))
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

/// Reads a staging directory's journal.
pub fn read_journal(staging: &Path) -> anyhow::Result<SwapJournal> {
    let path = staging.join(SWAP_JOURNAL);
    let text = std::fs::read(&path).with_context(|| format!("Failed to read {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("Failed to parse {}", path.display()))
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

/// Moves every entry of the staged data root into the target, one `rename(2)` each. Restartable: an
/// entry already moved is simply no longer in the staging directory. An entry that already exists in the
/// target is left alone when it is an ignored name (`lost+found`), otherwise the swap stops.
pub fn swap_in(
    mountpoint: &Path,
    staging: &Path,
    journal: &SwapJournal,
    ignore: &[String],
    copy: CopyOwnership,
) -> anyhow::Result<usize> {
    let root = staging.join(&journal.data_root);
    let meta = std::fs::symlink_metadata(&root).with_context(|| format!("Failed to stat {}", root.display()))?;
    if !meta.is_dir() {
        bail!("staged data root {} is not a directory", root.display());
    }
    // Owner and mode first: the target holds no data yet, so a crash here leaves nothing half-done.
    let uid = copy.owner.then(|| nix::unistd::Uid::from_raw(meta.uid()));
    let gid = copy.group.then(|| nix::unistd::Gid::from_raw(meta.gid()));
    if uid.is_some() || gid.is_some() {
        nix::unistd::chown(mountpoint, uid, gid)
            .with_context(|| format!("Failed to change the owner of {}", mountpoint.display()))?;
    }
    if copy.mode {
        std::fs::set_permissions(mountpoint, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .with_context(|| format!("Failed to change the mode of {}", mountpoint.display()))?;
    }
    let mut moved = 0;
    let mut names: Vec<OsString> = std::fs::read_dir(&root)
        .with_context(|| format!("Failed to read {}", root.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("Failed to read {}", root.display()))?;
    names.sort();
    for name in names {
        let from = root.join(&name);
        let to = mountpoint.join(&name);
        // RENAME_NOREPLACE: an entry that appears in the target between a check and the rename (the
        // service user owns the dataset root) is never replaced; the kernel decides, atomically.
        match renameat2(AT_FDCWD, &from, AT_FDCWD, &to, RenameFlags::RENAME_NOREPLACE) {
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
        let moved = swap_in(&target, &staging, &journal(), &ignore, CopyOwnership::default()).unwrap();
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
        let err = swap_in(target, &staging, &journal(), &[], CopyOwnership::default()).unwrap_err();
        assert!(err.to_string().contains("not overwriting"), "{err}");
        assert_eq!(std::fs::read_to_string(target.join("db")).unwrap(), "live");
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
    fn the_swap_never_replaces_an_entry_even_one_that_appears_late() {
        // The rename itself refuses (RENAME_NOREPLACE): no check-then-rename window to race.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        let staging = create(target, "restic").unwrap();
        std::fs::create_dir_all(staging.join("data/old path")).unwrap();
        std::fs::write(staging.join("data/old path/db"), "restored").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", target.join("db")).unwrap();
        let err = swap_in(target, &staging, &journal(), &[], CopyOwnership::default()).unwrap_err();
        assert!(err.to_string().contains("not overwriting"), "{err}");
        assert_eq!(std::fs::read_link(target.join("db")).unwrap(), Path::new("/etc/passwd"));
        assert_eq!(std::fs::read_to_string(staging.join("data/old path/db")).unwrap(), "restored");
    }

}
