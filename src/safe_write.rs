//! Writing files as root in directories another party may write to (a node-exporter textfile
//! directory, `/var/lib/persistctl`): never through a link planted there, never under a name that
//! can be guessed in advance.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use nix::fcntl::OFlag;

/// Replaces `path` with `contents`, atomically: a temporary file with an unpredictable name created
/// with `O_CREAT|O_EXCL` (a planted symlink or file under that name makes the create fail, never
/// followed), written and fsynced, renamed over `path` (a symlink at `path` is replaced, not followed),
/// then the directory fsynced. The file is `mode` (not masked by the umask). On failure the temporary
/// file is removed and `path` is left as it was.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("Failed to create a temporary file in {}", dir.display()))?;
    // The permissions above went through the umask; the file must be readable as asked (node-exporter).
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("Failed to set the mode of {}", tmp.path().display()))?;
    tmp.write_all(contents).with_context(|| format!("Failed to write {}", tmp.path().display()))?;
    tmp.as_file().sync_all().with_context(|| format!("Failed to sync {}", tmp.path().display()))?;
    let tmp_path = tmp.path().to_path_buf();
    tmp.persist(path).map_err(|e| {
        anyhow::Error::new(e.error).context(format!("Failed to rename {} to {}", tmp_path.display(), path.display()))
    })?;
    sync_dir(dir)
}

/// Fsyncs a directory, so that a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).bits())
        .open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("Failed to sync directory {}", dir.display()))
}

/// Appends `line` to `path`, creating it (`mode`) if missing. A symlink at `path` is refused
/// (`O_NOFOLLOW`), and so is anything but a regular file (a FIFO would block, a device would be
/// written to): the error names it and it is left alone.
pub fn append_no_follow(path: &Path, line: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        // O_NONBLOCK: opening a FIFO must not wait for a reader (it is refused just below).
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)
        .with_context(|| format!("Failed to open {} (a symlink there is refused)", path.display()))?;
    let meta = file.metadata().with_context(|| format!("Failed to stat {}", path.display()))?;
    if !meta.file_type().is_file() {
        bail!("refusing to append to {}: not a regular file", path.display());
    }
    // An older file keeps no wider mode than asked for.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .with_context(|| format!("Failed to set the mode of {}", path.display()))?;
    file.write_all(line).with_context(|| format!("Failed to append to {}", path.display()))
}

/// `rename(2)` that never replaces: `renameat2(RENAME_NOREPLACE)`, where the kernel refuses atomically
/// (`EEXIST`). OpenZFS before 2.2 does not take the flag (`EINVAL`, seen on 2.1.11): there, the target
/// is looked at (`lstat`, no symlink followed) and the rename made only when nothing is there. That
/// leaves a window in which a racing writer could put something at the target; on 2.2 and later there
/// is none.
pub fn rename_no_replace<P1, P2, Fd1, Fd2>(
    from_dir: Fd1,
    from: &P1,
    to_dir: Fd2,
    to: &P2,
) -> Result<(), nix::errno::Errno>
where
    P1: ?Sized + nix::NixPath,
    P2: ?Sized + nix::NixPath,
    Fd1: std::os::fd::AsFd,
    Fd2: std::os::fd::AsFd,
{
    use nix::errno::Errno;
    use nix::fcntl::{AtFlags, RenameFlags, renameat, renameat2};
    match renameat2(&from_dir, from, &to_dir, to, RenameFlags::RENAME_NOREPLACE) {
        Err(Errno::EINVAL) => match nix::sys::stat::fstatat(&to_dir, to, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(_) => Err(Errno::EEXIST),
            Err(Errno::ENOENT) => renameat(&from_dir, from, &to_dir, to),
            Err(e) => Err(e),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn a_planted_symlink_at_any_temporary_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // The names the old code used, and any fixed guess: none is written through.
        for guess in [".x.prom.tmp", &format!(".x.prom.tmp-{}", std::process::id())] {
            std::os::unix::fs::symlink(&victim, dir.path().join(guess)).unwrap();
        }
        let path = dir.path().join("x.prom");
        write_atomically(&path, b"a 1\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 1\n");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
    }

    #[test]
    fn a_symlink_at_the_target_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomically(&path, b"{}\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    }

    #[test]
    fn appending_refuses_a_symlink_and_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("status.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(append_no_follow(&link, b"x\n", 0o644).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No reader: the open fails at once (ENXIO) instead of blocking; with one, the type check refuses.
        assert!(append_no_follow(&fifo, b"x\n", 0o644).is_err());
        let _reader =
            std::fs::OpenOptions::new().read(true).custom_flags(OFlag::O_NONBLOCK.bits()).open(&fifo).unwrap();
        let err = append_no_follow(&fifo, b"x\n", 0o644).unwrap_err();
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
        let file = dir.path().join("real");
        append_no_follow(&file, b"a\n", 0o644).unwrap();
        append_no_follow(&file, b"b\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a\nb\n");
    }

    #[test]
    fn a_rename_never_replaces_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "new").unwrap();
        std::fs::write(&b, "kept").unwrap();
        let at = nix::fcntl::AT_FDCWD;
        assert_eq!(rename_no_replace(at, &a, at, &b), Err(nix::errno::Errno::EEXIST));
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "kept");
        let c = dir.path().join("c");
        rename_no_replace(at, &a, at, &c).unwrap();
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "new");
        assert!(!a.exists());
    }
}
