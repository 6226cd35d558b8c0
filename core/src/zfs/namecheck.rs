//! Name rules as OpenZFS and Linux enforce them, so that `check-config` (run at `nixos-rebuild build`)
//! refuses what `zfs create`/`zfs set` or the kernel would refuse at apply time. Pure.
//!
//! Written from OpenZFS' documented behaviour (`zfs_namecheck.c`, `zprop_valid_char`,
//! `zpool_name_valid`), not copied from it:
//! - a dataset name is under 256 bytes (`ZFS_MAX_DATASET_NAME_LEN`), at most 49 `/` deep
//!   (`zfs_max_dataset_nesting` 50), components of `[A-Za-z0-9_.: -]`, never `.` or `..`;
//! - a pool name starts with a letter, is under 247 bytes (room for `/$ORIGIN`), and is not a vdev
//!   keyword. `zpool create`/`import` refuse names *starting* with `mirror`, `raidz`, `draid` or
//!   `spare` and the name `log`; we also refuse the other vdev classes (`cache`, `special`, `dedup`),
//!   which `zpool` would read as keywords. Solaris' `c[0-9]...` "disk-like" rule is not applied:
//!   OpenZFS on Linux allows such pools and NixOS is Linux. A name starting with `-` (which would
//!   reach `zfs` as an option) fails the letter rule;
//! - a user property name contains a `:`, only `[a-z0-9:._-]`, under 256 bytes (`ZAP_MAXNAMELEN`).
//!
//! Linux: a path is under 4096 bytes (`PATH_MAX`, with its NUL) and each component under 256
//! (`NAME_MAX` 255).

/// A full dataset name is at most this many bytes (`ZFS_MAX_DATASET_NAME_LEN` 256, NUL included).
pub const MAX_DATASET_NAME: usize = 255;
/// A pool name is at most this many bytes (256 - 2 - `"$ORIGIN"`, less one for the NUL).
pub const MAX_POOL_NAME: usize = 246;
/// `zfs_max_dataset_nesting`: a name may have at most this many `/`.
pub const MAX_NESTING: usize = 49;
/// A property name is at most this many bytes (`ZAP_MAXNAMELEN` 256, NUL included).
pub const MAX_PROPERTY_NAME: usize = 255;
/// A path is at most this many bytes (`PATH_MAX` 4096, NUL included).
pub const MAX_PATH: usize = 4095;
/// One path component is at most this many bytes (`NAME_MAX`).
pub const MAX_PATH_COMPONENT: usize = 255;

/// Names `zpool` reserves: a pool may not start with these...
const RESERVED_POOL_PREFIXES: &[&str] = &["mirror", "raidz", "draid", "spare"];
/// ...nor be one of these (vdev classes `zpool` reads as keywords).
const RESERVED_POOL_NAMES: &[&str] = &["log", "cache", "special", "dedup"];

/// Checks a filesystem's full name (no snapshot or bookmark part).
pub fn check_dataset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a dataset name cannot be empty".into());
    }
    if name.len() > MAX_DATASET_NAME {
        return Err(format!("dataset name {name:?} is longer than {MAX_DATASET_NAME} bytes"));
    }
    if name.contains('@') || name.contains('#') {
        return Err(format!("{name:?} names a snapshot or bookmark, not a filesystem"));
    }
    for component in name.split('/') {
        check_component(component).map_err(|why| format!("dataset name {name:?}: {why}"))?;
    }
    let depth = name.matches('/').count();
    if depth > MAX_NESTING {
        return Err(format!("dataset name {name:?} is nested {depth} deep; ZFS allows at most {MAX_NESTING}"));
    }
    let pool = name.split('/').next().unwrap_or(name);
    check_pool_name(pool).map_err(|why| format!("dataset name {name:?}: {why}"))
}

/// Checks one component of a dataset name (a service name, for example).
pub fn check_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("empty component (leading, trailing or doubled '/')".into());
    }
    if component == "." || component == ".." {
        return Err(format!("component {component:?} is reserved"));
    }
    if let Some(bad) =
        component.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | ' ')))
    {
        return Err(format!("character {bad:?} is not allowed (letters, digits, '_', '-', '.', ':' and space are)"));
    }
    Ok(())
}

/// Checks a pool name (the first component).
pub fn check_pool_name(pool: &str) -> Result<(), String> {
    if !pool.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!("pool name {pool:?} must start with a letter"));
    }
    if pool.len() > MAX_POOL_NAME {
        return Err(format!("pool name {pool:?} is longer than {MAX_POOL_NAME} bytes"));
    }
    if let Some(word) = RESERVED_POOL_PREFIXES.iter().find(|w| pool.starts_with(**w)) {
        return Err(format!("pool name {pool:?} is reserved (zpool refuses names starting with {word:?})"));
    }
    if RESERVED_POOL_NAMES.contains(&pool) {
        return Err(format!("pool name {pool:?} is reserved (a vdev keyword)"));
    }
    Ok(())
}

/// Checks a user property's name: a `:`, only lower-case letters, digits and `: . _ -`, under 256 bytes,
/// and (persistctl's own rule) a module name before the first colon.
pub fn check_user_property_name(name: &str) -> Result<(), String> {
    if !name.contains(':') {
        return Err(format!("user property name {name:?} needs a colon (module:name)"));
    }
    if let Some(bad) =
        name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ':' | '.' | '_' | '-')))
    {
        return Err(format!(
            "user property name {name:?}: character {bad:?} is not allowed (lower-case letters, digits and ': . _ -' are)"
        ));
    }
    if name.len() > MAX_PROPERTY_NAME {
        return Err(format!("user property name {name:?} is longer than {MAX_PROPERTY_NAME} bytes"));
    }
    if name.starts_with(':') {
        return Err(format!("user property name {name:?} needs a module name before the colon"));
    }
    Ok(())
}

/// Checks an absolute path's length against Linux' limits (the caller checks the rest).
pub fn check_path_lengths(path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH {
        return Err(format!("path is {} bytes long; Linux allows at most {MAX_PATH}", path.len()));
    }
    if let Some(long) = path.split('/').find(|c| c.len() > MAX_PATH_COMPONENT) {
        let start: String = long.chars().take(20).collect();
        return Err(format!(
            "path component {start:?}... is {} bytes long; Linux allows at most {MAX_PATH_COMPONENT}",
            long.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_follow_openzfs() {
        let ok = ["tank", "tank/persist", "rpool/safe/persist", "tank/my data", "tank/a:b.c_d-e", "c0pool/x", "Z"];
        for name in ok {
            assert!(check_dataset_name(name).is_ok(), "{name}");
        }
        let deep = format!("tank{}", "/a".repeat(50));
        let long_pool = "p".repeat(247);
        let bad: &[(&str, &str)] = &[
            ("-1", "must start with a letter"),
            ("--help", "must start with a letter"),
            ("1tank/x", "must start with a letter"),
            ("_tank", "must start with a letter"),
            ("mirror/x", "reserved"),
            ("mirror2", "reserved"),
            ("raidz1/x", "reserved"),
            ("raidz3", "reserved"),
            ("draid/x", "reserved"),
            ("spare", "reserved"),
            ("log/x", "reserved"),
            ("cache", "reserved"),
            ("special", "reserved"),
            ("dedup/x", "reserved"),
            ("tank/.", "reserved"),
            ("tank/x@s", "snapshot"),
            ("tank/a%b", "'%'"),
            (&deep, "nested 50 deep"),
            (&long_pool, "longer than 246"),
        ];
        for (name, needle) in bad {
            let err = check_dataset_name(name).unwrap_err();
            assert!(err.contains(needle), "{name:?}: {err}");
        }
        assert!(check_dataset_name("logs/x").is_ok(), "only the exact word log is reserved");
        assert!(check_dataset_name(&format!("tank/{}", "a".repeat(250))).is_ok());
        assert!(check_dataset_name(&format!("tank/{}", "a".repeat(251))).is_err());
    }

    #[test]
    fn user_property_names_follow_zprop_valid_char() {
        for ok in ["com.sun:auto-snapshot", "a:b", "x.y_z-1:2", &format!("a:{}", "b".repeat(253))] {
            assert!(check_user_property_name(ok).is_ok(), "{ok}");
        }
        let bad: &[(&str, &str)] = &[
            ("a+b:c", "'+'"),
            ("Com:x", "'C'"),
            ("a:b c", "' '"),
            ("nocolon", "colon"),
            (":x", "module name"),
            (&format!("a:{}", "b".repeat(254)), "longer than 255"),
        ];
        for (name, needle) in bad {
            let err = check_user_property_name(name).unwrap_err();
            assert!(err.contains(needle), "{name:?}: {err}");
        }
    }

    #[test]
    fn paths_fit_linux_limits() {
        assert!(check_path_lengths("/persist/app").is_ok());
        assert!(check_path_lengths(&format!("/{}", "a".repeat(255))).is_ok());
        assert!(check_path_lengths(&format!("/{}", "a".repeat(256))).unwrap_err().contains("at most 255"));
        let long = "/abc".repeat(1024);
        assert!(check_path_lengths(&long).unwrap_err().contains("at most 4095"));
    }
}
