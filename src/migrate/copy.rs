//! The only place that runs `cp`: `cp -a` (GNU coreutils: recursive, symlinks as symlinks, owner,
//! group, mode, timestamps, hard links within the tree, xattrs and ACLs where the filesystems allow).
//! `$PERSISTCTL_CP` replaces the program (tests).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::bail;

use crate::child;

/// Copies the directory `source` to `dest` (which must not exist yet) with `cp -a`; `dest` becomes the
/// copy of `source` itself (its owner, mode and times included).
///
/// # Errors
/// cp could not run, failed (its stderr is quoted) or ran past `deadline` (then it was killed).
pub fn copy_tree(source: &Path, dest: &Path, deadline: Instant) -> anyhow::Result<()> {
    if dest.exists() {
        bail!("{} exists already; not copying into it", dest.display());
    }
    let program = std::env::var_os("PERSISTCTL_CP").unwrap_or_else(|| "cp".into());
    let mut cmd = Command::new(&program);
    cmd.arg("-a").arg("--no-target-directory").arg("--").arg(source).arg(dest);
    tracing::info!("copying {} to {}", source.display(), dest.display());
    let done = child::run(cmd, None, deadline)?;
    if !done.status.success() {
        let how = done.status.code().map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"));
        bail!("cp -a {} {} failed ({how}): {}", source.display(), dest.display(), done.stderr_text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn copies_a_tree_and_reports_cp_failures_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("a")).unwrap();
        std::fs::write(src.join("a/f"), "x").unwrap();
        let soon = Instant::now() + Duration::from_secs(30);
        copy_tree(&src, &dir.path().join("dst"), soon).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("dst/a/f")).unwrap(), "x");
        let err = copy_tree(&src, &dir.path().join("dst"), soon).unwrap_err().to_string();
        assert!(err.contains("exists already"), "{err}");
        let err = copy_tree(&dir.path().join("nope"), &dir.path().join("d2"), soon).unwrap_err().to_string();
        assert!(err.contains("failed (exit 1)") && err.contains("nope"), "{err}");
    }
}
