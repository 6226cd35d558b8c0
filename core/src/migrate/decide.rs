//! What `persistctl migrate` does, decided from what it found. PURE: no I/O, tested by tables.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

/// `restored-from` of a dataset filled by `migrate` (its `restored-snapshot` is the source path).
pub const SOURCE_NAME: &str = "migrate";
/// An in-place migration first renames the old directory to `<path>` + this suffix (kept).
pub const ASIDE_SUFFIX: &str = ".persistctl-migrated";

/// The old directory moved aside by an in-place migration.
#[must_use]
pub fn aside_of(from: &Path) -> PathBuf {
    let mut name = from.as_os_str().to_owned();
    name.push(ASIDE_SUFFIX);
    PathBuf::from(name)
}

/// The target dataset as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// It does not exist yet (`apply` creates it).
    Missing,
    /// It exists but is not mounted: its contents are unknown.
    NotMounted,
    /// Mounted at its mountpoint.
    Mounted {
        /// It holds data (anything but ignored names and our staging).
        has_data: bool,
        /// Its provenance: `persistctl:restored-from` and `persistctl:restored-snapshot`.
        provenance: Option<(String, String)>,
    },
}

/// What is at a path (looked at without following a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Nothing.
    Missing,
    /// A directory.
    Dir,
    /// Something else: a file, a symlink, a device.
    Other,
}

/// What was found at the paths involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// At `--from`.
    pub from: Entry,
    /// At `<from>.persistctl-migrated`.
    pub aside: Entry,
    /// The target dataset.
    pub target: Target,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Decision {
    /// The dataset already holds this migration's data: nothing to do.
    Done,
    /// Copy `source` into the dataset (first renaming `--from` to `source` when `rename_aside`).
    Copy {
        /// The directory the data is copied from.
        source: PathBuf,
        /// An in-place migration that has not moved the old directory aside yet.
        rename_aside: bool,
    },
    /// Cannot go on safely; nothing was changed.
    Refuse {
        /// Why, and what to do.
        reason: String,
    },
}

/// Checks `--from` against the dataset's mountpoint: absolute, plain (no `.`/`..`), not `/`, and
/// neither inside the other unless they are the same path (the in-place case).
///
/// # Errors
/// The reason, naming the paths.
pub fn check_paths(from: &Path, mountpoint: &Path) -> Result<(), String> {
    if !from.is_absolute() {
        return Err(format!("--from {} is not an absolute path", from.display()));
    }
    // It is recorded as provenance (a ZFS user property); `zfs get -H` prints values raw, so a line
    // break or tab in it would forge rows in every later read. Refused before anything is done.
    let text = from.as_os_str().to_string_lossy();
    if text.chars().any(char::is_control) {
        return Err(format!("--from {text:?} contains a control character (a tab or line break); rename it first"));
    }
    if from.components().any(|c| matches!(c, Component::CurDir | Component::ParentDir)) {
        return Err(format!("--from {} contains . or ..; give the plain path", from.display()));
    }
    if from.parent().is_none() {
        return Err("--from / is not a service's directory".into());
    }
    if from != mountpoint && mountpoint.starts_with(from) {
        return Err(format!(
            "the dataset's mountpoint {} is inside --from {}: the copy would contain itself",
            mountpoint.display(),
            from.display()
        ));
    }
    if from != mountpoint && from.starts_with(mountpoint) {
        return Err(format!(
            "--from {} is inside the dataset's mountpoint {}: mounting the dataset hides it",
            from.display(),
            mountpoint.display()
        ));
    }
    Ok(())
}

/// Decides. `in_place`: `--from` is the dataset's own mountpoint.
#[must_use]
pub fn decide(from: &Path, in_place: bool, found: &Found) -> Decision {
    let refuse = |reason: String| Decision::Refuse { reason };
    let aside = aside_of(from);
    // The dataset already holds data: done if it is this migration's, otherwise never touched.
    if let Target::Mounted { has_data: true, provenance } = &found.target {
        let ours = provenance.as_ref().is_some_and(|(by, path)| by == SOURCE_NAME && Path::new(path) == from);
        return if ours {
            Decision::Done
        } else {
            refuse(format!(
                "the dataset already holds data that did not come from migrating {} (a preseed restore, or \
                 files put there by hand); nothing is copied over it. Check it, empty it by hand if it is \
                 wrong, then rerun",
                from.display()
            ))
        };
    }
    if in_place {
        match (&found.target, found.from, found.aside) {
            (_, _, Entry::Other) => refuse(format!("{} exists but is not a directory", aside.display())),
            (Target::NotMounted, _, Entry::Missing) => refuse(format!(
                "the dataset exists but is not mounted, so it cannot be checked for data before it replaces \
                 {}; mount it elsewhere (zfs set mountpoint=...) and look, or destroy it if it is empty",
                from.display()
            )),
            // Moved aside by us, so the dataset was created afterwards (by a killed run's `zfs create`,
            // which creates before it mounts): it is mounted (on a free path only) and checked next.
            (Target::NotMounted | Target::Mounted { .. }, _, Entry::Dir)
            | (Target::Missing, Entry::Missing, Entry::Dir) => Decision::Copy { source: aside, rename_aside: false },
            (Target::Missing, Entry::Dir | Entry::Other, Entry::Dir) => refuse(format!(
                "both {} and {} exist: an earlier migration moved the old data aside and something was \
                 put back; sort them out by hand",
                from.display(),
                aside.display()
            )),
            (Target::Missing, Entry::Dir, Entry::Missing) => Decision::Copy { source: aside, rename_aside: true },
            (Target::Mounted { .. }, _, Entry::Missing) => refuse(format!(
                "{} is already the dataset's (empty) mountpoint and {} does not exist: there is nothing \
                 to migrate",
                from.display(),
                aside.display()
            )),
            (Target::Missing, Entry::Other, Entry::Missing) => {
                refuse(format!("{} is not a directory (a symlink is not followed)", from.display()))
            }
            (Target::Missing, Entry::Missing, Entry::Missing) => refuse(format!("{} does not exist", from.display())),
        }
    } else {
        match found.from {
            // `apply` creates or mounts the dataset next; one that then shows data is refused there.
            Entry::Dir => Decision::Copy { source: from.to_path_buf(), rename_aside: false },
            Entry::Other => refuse(format!("{} is not a directory (a symlink is not followed)", from.display())),
            Entry::Missing => refuse(format!("{} does not exist", from.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(from_dir: bool, aside_dir: bool, target: Target) -> Found {
        let entry = |dir| if dir { Entry::Dir } else { Entry::Missing };
        Found { from: entry(from_dir), aside: entry(aside_dir), target }
    }

    fn kind(d: &Decision) -> String {
        match d {
            Decision::Done => "done".into(),
            Decision::Copy { source, rename_aside } => format!("copy {} rename={rename_aside}", source.display()),
            Decision::Refuse { reason } => format!("refuse: {reason}"),
        }
    }

    #[test]
    fn paths_are_checked() {
        let mp = Path::new("/persist/sonarr");
        assert_eq!(check_paths(Path::new("/persist/var/lib/sonarr"), mp), Ok(()));
        assert_eq!(check_paths(mp, mp), Ok(()), "in place");
        let cases = [
            ("var/lib/sonarr", "not an absolute path"),
            ("/persist/../persist/x", "contains . or .."),
            ("/", "not a service's directory"),
            ("/persist", "inside --from"),
            ("/persist/sonarr/old", "inside the dataset's mountpoint"),
            ("/var/lib/son\tarr\tlocal\ntank/persist/sonarr\tmountpoint\t/decoy", "control character"),
            ("/var/lib/sonarr\n", "control character"),
        ];
        for (from, want) in cases {
            let err = check_paths(Path::new(from), mp).unwrap_err();
            assert!(err.contains(want), "{from}: {err}");
        }
    }

    #[test]
    fn decisions() {
        let from = Path::new("/persist/var/lib/sonarr");
        let mine = Some(("migrate".to_string(), from.display().to_string()));
        let restic = Some(("restic".to_string(), "abc".to_string()));
        let mounted = |has_data, provenance| Target::Mounted { has_data, provenance };
        let copy = "copy /persist/var/lib/sonarr rename=false";
        let cases: Vec<(Found, &str)> = vec![
            (found(true, false, Target::Missing), copy),
            (found(true, false, mounted(false, None)), copy),
            (found(true, false, Target::NotMounted), copy),
            (found(true, false, mounted(true, mine.clone())), "done"),
            (found(false, false, mounted(true, mine)), "done"),
            (found(true, false, mounted(true, restic)), "refuse: the dataset already holds data"),
            (found(true, false, mounted(true, None)), "refuse: the dataset already holds data"),
            (found(false, false, Target::Missing), "refuse: /persist/var/lib/sonarr does not exist"),
            (
                Found { from: Entry::Other, ..found(false, false, Target::Missing) },
                "refuse: /persist/var/lib/sonarr is not a directory",
            ),
        ];
        for (f, want) in cases {
            let got = kind(&decide(from, false, &f));
            assert!(got.starts_with(want), "{f:?}: {got}");
        }
    }

    #[test]
    fn in_place_decisions() {
        let from = Path::new("/var/lib/hass");
        let mine = Some(("migrate".to_string(), "/var/lib/hass".to_string()));
        let mounted = |has_data, provenance| Target::Mounted { has_data, provenance };
        let aside = "copy /var/lib/hass.persistctl-migrated rename=false";
        let cases: Vec<(Found, &str)> = vec![
            // Fresh: move the old directory aside, then apply creates the dataset at the freed path.
            (found(true, false, Target::Missing), "copy /var/lib/hass.persistctl-migrated rename=true"),
            // Killed after the rename, before or after the dataset was created.
            (found(false, true, Target::Missing), aside),
            (found(true, true, mounted(false, None)), aside),
            (found(true, false, mounted(true, mine)), "done"),
            (found(true, true, Target::Missing), "refuse: both"),
            (found(true, false, Target::NotMounted), "refuse: the dataset exists but is not mounted"),
            // Killed inside `zfs create` (created, not yet mounted) after the rename.
            (found(false, true, Target::NotMounted), aside),
            (found(true, false, mounted(false, None)), "refuse: /var/lib/hass is already the dataset's"),
            (found(false, false, Target::Missing), "refuse: /var/lib/hass does not exist"),
            (
                Found { aside: Entry::Other, ..found(false, false, Target::Missing) },
                "refuse: /var/lib/hass.persistctl-migrated exists but is not a directory",
            ),
        ];
        for (f, want) in cases {
            let got = kind(&decide(from, true, &f));
            assert!(got.starts_with(want), "{f:?}: {got}");
        }
    }
}
