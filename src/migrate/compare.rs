//! Checks a copied tree against its source before it is swapped in: the same entries, and for each its
//! type, permission bits, owner, group and symlink target; for regular files also the size,
//! modification time and every byte. Nothing is followed through a symlink.

use std::fs::{File, Metadata};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// At most this many differences are listed.
const MAX_DIFFERENCES: usize = 20;

/// What the comparison found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Entries in the source (the root excluded).
    pub entries: u64,
    /// Bytes of regular files compared.
    pub bytes: u64,
    /// Differences, one line each, at most [`MAX_DIFFERENCES`].
    pub differences: Vec<String>,
}

/// One entry's comparable metadata.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Regular files: size and mtime (seconds, nanoseconds).
    file: Option<(u64, i64, i64)>,
    link: Option<PathBuf>,
}

fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "file"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else {
        "character device"
    }
}

fn shape(path: &Path, meta: &Metadata) -> anyhow::Result<Shape> {
    let link = if meta.file_type().is_symlink() {
        Some(std::fs::read_link(path).with_context(|| format!("Failed to read the link {}", path.display()))?)
    } else {
        None
    };
    Ok(Shape {
        kind: kind(meta),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        file: meta.is_file().then(|| (meta.size(), meta.mtime(), meta.mtime_nsec())),
        link,
    })
}

/// Every entry under `root` (root first, then sorted by path), without following symlinks.
fn walk(root: &Path) -> anyhow::Result<Vec<(PathBuf, PathBuf, Metadata)>> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .map(|entry| {
            let entry = entry.with_context(|| format!("Failed to walk {}", root.display()))?;
            let meta = entry.metadata().with_context(|| format!("Failed to stat {}", entry.path().display()))?;
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path()).to_path_buf();
            Ok((rel, entry.path().to_path_buf(), meta))
        })
        .collect()
}

fn same_bytes(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let open = |p: &Path| File::open(p).with_context(|| format!("Failed to open {}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba).with_context(|| format!("Failed to read {}", a.display()))?;
        let nb = read_full(&mut fb, &mut bb).with_context(|| format!("Failed to read {}", b.display()))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Fills `buf` unless the file ends first; the number of bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Compares the tree at `copy` with the one at `source`.
///
/// # Errors
/// A tree could not be walked or a file read.
pub fn compare(source: &Path, copy: &Path) -> anyhow::Result<Comparison> {
    let (src, dst) = (walk(source)?, walk(copy)?);
    let mut result = Comparison { entries: src.len().saturating_sub(1) as u64, ..Comparison::default() };
    let mut note = |line: String| {
        if result.differences.len() < MAX_DIFFERENCES {
            result.differences.push(line);
        }
    };
    let (mut i, mut j) = (0, 0);
    let mut bytes = 0;
    while i < src.len() || j < dst.len() {
        let order = match (src.get(i), dst.get(j)) {
            (Some(a), Some(b)) => a.0.cmp(&b.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                note(format!("{}: missing from the copy", src[i].0.display()));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                note(format!("{}: in the copy only", dst[j].0.display()));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let ((rel, a, ma), (_, b, mb)) = (&src[i], &dst[j]);
                let (sa, sb) = (shape(a, ma)?, shape(b, mb)?);
                if sa != sb {
                    note(format!("{}: {sa:?} in the source, {sb:?} in the copy", rel.display()));
                } else if sa.kind == "file" {
                    bytes += ma.size();
                    if !same_bytes(a, b)? {
                        note(format!("{}: the contents differ", rel.display()));
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    result.bytes = bytes;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) {
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("db"), "v1").unwrap();
        std::fs::write(root.join("sub/deeper/f"), vec![7u8; 3 << 20]).unwrap();
        std::os::unix::fs::symlink("../db", root.join("sub/link")).unwrap();
    }

    fn copy(from: &Path, to: &Path) {
        let ok = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success();
        assert!(ok);
    }

    #[test]
    fn an_exact_copy_compares_equal_and_every_kind_of_difference_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        tree(&src);
        copy(&src, &dst);
        let same = compare(&src, &dst).unwrap();
        assert_eq!(same.differences, Vec::<String>::new());
        assert_eq!(same.entries, 5);
        assert_eq!(same.bytes, 2 + (3 << 20));
        // Contents differing in the last byte of a multi-chunk file, same size and mtime.
        let f = dst.join("sub/deeper/f");
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        let mut bytes = vec![7u8; 3 << 20];
        *bytes.last_mut().unwrap() = 8;
        std::fs::write(&f, bytes).unwrap();
        File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
        std::fs::remove_file(dst.join("sub/link")).unwrap();
        std::os::unix::fs::symlink("db", dst.join("sub/link")).unwrap();
        std::fs::write(dst.join("extra"), "").unwrap();
        std::fs::remove_file(dst.join("db")).unwrap();
        let diff = compare(&src, &dst).unwrap().differences;
        let want = ["db: missing from the copy", "extra: in the copy only", "sub/deeper/f: the contents differ"];
        for w in want {
            assert!(diff.iter().any(|d| d == w), "{w} in {diff:?}");
        }
        assert!(diff.iter().any(|d| d.starts_with("sub/link: ") && d.contains("link: Some(\"db\")")), "{diff:?}");
        assert_eq!(diff.len(), 4, "{diff:?}");
    }

    #[test]
    fn mode_and_mtime_count() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        tree(&src);
        copy(&src, &dst);
        std::fs::set_permissions(dst.join("db"), std::fs::Permissions::from_mode(0o600)).unwrap();
        File::options()
            .write(true)
            .open(dst.join("sub/deeper/f"))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH)
            .unwrap();
        let diff = compare(&src, &dst).unwrap().differences;
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].starts_with("db: ") && diff[1].starts_with("sub/deeper/f: "), "{diff:?}");
    }
}
