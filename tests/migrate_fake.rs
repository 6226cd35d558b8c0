//! `persistctl migrate` against the fake `zfs` (tests/fakes/zfs) and the real `cp`: from another
//! directory and in place, already migrated, refusals (data in the dataset, a process using the source,
//! a copy that differs, cp failing), dry run, and a kill before and after every changing zfs call. Fast and
//! host-only; `real_zfs.rs` proves the same on real `OpenZFS`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::fake::Fake;
use common::text;
use serde_json::{Value, json};

const DS: &str = "tank/persist/sonarr";

/// `tank/persist` mounted at `<tmp>/persist`; the config's sonarr mounted at `mountpoint` (relative to
/// the temp dir) or by default at `<tmp>/persist/sonarr`.
fn sonarr_lab(mountpoint: Option<&str>) -> Fake {
    let lab = Fake::empty();
    lab.set_datasets(&json!({
        "tank": {"local": {"mountpoint": "none"}},
        "tank/persist": {"local": {"mountpoint": lab.path("persist")}, "mounted": true},
    }));
    let mut service = json!({});
    if let Some(mp) = mountpoint {
        service["mountpoint"] = json!(lab.path(mp));
    }
    lab.write_services(&json!({"sonarr": service}));
    lab
}

/// A service's data at `rel`: a database, a nested file, a symlink, an odd mode.
fn old_data(lab: &Fake, rel: &str) -> PathBuf {
    let root = lab.path(rel);
    std::fs::create_dir_all(root.join("Backups/daily")).unwrap();
    std::fs::write(root.join("sonarr.db"), "sqlite").unwrap();
    std::fs::write(root.join("Backups/daily/b.zip"), vec![3u8; 100_000]).unwrap();
    std::os::unix::fs::symlink("sonarr.db", root.join("current.db")).unwrap();
    std::fs::set_permissions(root.join("sonarr.db"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o750)).unwrap();
    root
}

/// `persistctl migrate sonarr --from FROM args`.
fn migrate(lab: &Fake, from: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["migrate", "sonarr", "--from", from];
    all.extend_from_slice(args);
    lab.run(&lab.path("config.json"), &all, env)
}

/// `(relative path, mode, symlink target or contents)` of every entry, sorted.
fn listing(root: &Path) -> Vec<(String, u32, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let what = if meta.is_symlink() {
                std::fs::read_link(&path).unwrap().display().to_string()
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".into()
            } else {
                format!("{} bytes", std::fs::read(&path).unwrap().len())
            };
            out.push((rel, meta.permissions().mode() & 0o7777, what));
        }
    }
    out.sort();
    out
}

#[test]
fn data_from_another_directory_is_copied_checked_and_swapped_in_and_the_old_copy_kept() {
    let lab = sonarr_lab(None);
    let old = old_data(&lab, "persist/var/lib/sonarr");
    let want = listing(&old);
    let dry = migrate(&lab, &old.display().to_string(), &["--dry-run"], &[]);
    assert!(dry.status.success() && text(&dry).contains("would copy"), "{}", text(&dry));
    assert!(lab.take_writes().is_empty(), "a dry run changes nothing");
    let out = migrate(&lab, &old.display().to_string(), &["--json"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["event"], "migrated");
    assert_eq!(report["entries"], want.len());
    assert_eq!(report["kept"], old.display().to_string());
    let mp = PathBuf::from(lab.path_str("persist/sonarr"));
    assert_eq!(listing(&mp), want, "same entries, modes, links and sizes");
    assert_eq!(std::fs::metadata(&mp).unwrap().permissions().mode() & 0o7777, 0o750, "the root's mode too");
    assert_eq!(listing(&old), want, "the old data is kept as it was");
    let props = &lab.state()["datasets"][DS]["local"];
    assert_eq!(props["persistctl:restored-from"], "migrate");
    assert_eq!(props["persistctl:restored-snapshot"], old.display().to_string());
    let writes = lab.take_writes();
    assert_eq!(writes[0][0], "create", "{writes:?}");
    let again = migrate(&lab, &old.display().to_string(), &[], &[]);
    assert!(again.status.success() && text(&again).contains("already-migrated"), "{}", text(&again));
    assert!(lab.take_writes().is_empty(), "a rerun changes nothing");
}

#[test]
fn in_place_the_old_directory_is_moved_aside_and_the_dataset_mounted_on_its_path() {
    let lab = sonarr_lab(Some("srv/sonarr"));
    let old = old_data(&lab, "srv/sonarr");
    let want = listing(&old);
    // A trailing slash names the same directory (the kept copy is beside it, not inside it).
    let out = migrate(&lab, &format!("{}/", old.display()), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let aside = PathBuf::from(format!("{}.persistctl-migrated", old.display()));
    assert_eq!(listing(&aside), want, "kept aside");
    assert_eq!(listing(&old), want, "and the dataset, mounted on the old path, holds the same");
    assert_eq!(lab.state()["datasets"][DS]["mounted"], true);
    assert!(text(&out).contains(&aside.display().to_string()), "the note names the kept copy: {}", text(&out));
    let again = migrate(&lab, &old.display().to_string(), &[], &[]);
    assert!(again.status.success() && text(&again).contains("already-migrated"), "{}", text(&again));
}

#[test]
fn refusals_change_nothing() {
    let lab = sonarr_lab(None);
    let old = old_data(&lab, "persist/var/lib/sonarr");
    let from = old.display().to_string();
    // The dataset already holds other data (a preseed restore, say).
    let mut state = lab.state();
    state["datasets"][DS] = json!({"local": {}, "mounted": true});
    std::fs::write(lab.path_str("state.json"), state.to_string()).unwrap();
    std::fs::create_dir_all(lab.path_str("persist/sonarr")).unwrap();
    std::fs::write(lab.path_str("persist/sonarr/restored.db"), "other").unwrap();
    let out = migrate(&lab, &from, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("already holds data that did not come from migrating"), "{}", text(&out));
    assert!(lab.take_writes().is_empty());
    std::fs::remove_file(lab.path_str("persist/sonarr/restored.db")).unwrap();
    // A process is using the source.
    let mut user = Command::new("sleep").arg("30").current_dir(old.join("Backups")).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let out = migrate(&lab, &from, &[], &[]);
    let _ = user.kill();
    let _ = user.wait();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is in use (pid") && text(&out).contains("systemctl stop sonarr"), "{}", text(&out));
    // Named through a symlinked parent directory: the user is still seen (its /proc paths are real).
    std::os::unix::fs::symlink(lab.path_str("persist/var/lib"), lab.path_str("lib-link")).unwrap();
    let mut user = Command::new("sleep").arg("30").current_dir(old.join("Backups")).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let out = migrate(&lab, &lab.path_str("lib-link/sonarr"), &[], &[]);
    let _ = user.kill();
    let _ = user.wait();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&format!("{from} is in use (pid")), "{}", text(&out));
    // Bad paths, and an empty source (a wrong --from, most likely).
    std::fs::create_dir_all(lab.path_str("empty")).unwrap();
    let empty = lab.path_str("empty");
    for (from, want) in [
        ("relative/x", "not an absolute path"),
        ("/nonexistent/x", "does not exist"),
        (empty.as_str(), "holds no data; nothing to migrate"),
    ] {
        let out = migrate(&lab, from, &[], &[]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(want), "{from}: {}", text(&out));
    }
    assert!(lab.take_writes().is_empty());
    assert!(std::fs::read_dir(lab.path_str("persist/sonarr")).unwrap().next().is_none(), "no staging left");
}

#[test]
fn a_copy_that_fails_or_differs_is_never_swapped_in() {
    let lab = sonarr_lab(None);
    let old = old_data(&lab, "persist/var/lib/sonarr");
    let from = old.display().to_string();
    let out = migrate(&lab, &from, &[], &[("PERSISTCTL_CP", "false")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("failed (exit 1)"), "{}", text(&out));
    // A "service" writing while the copy runs: cp, then a change to the source.
    let racing = lab.path_str("racing-cp");
    std::fs::write(&racing, format!("#!/bin/sh\ncp \"$@\" && echo more >> '{from}/sonarr.db'\n")).unwrap();
    std::fs::set_permissions(&racing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = migrate(&lab, &from, &[], &[("PERSISTCTL_CP", &racing)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("sonarr.db: ") && text(&out).contains("differs from it"), "{}", text(&out));
    let mp = PathBuf::from(lab.path_str("persist/sonarr"));
    assert!(std::fs::read_dir(&mp).unwrap().next().is_none(), "nothing swapped in, no staging left");
    assert!(lab.state()["datasets"][DS]["local"].get("persistctl:restored-from").is_none());
    // With the writer gone, a rerun migrates.
    let out = migrate(&lab, &from, &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(listing(&mp), listing(&old));
}

#[test]
fn a_kill_before_or_after_any_changing_zfs_call_is_finished_by_the_rerun() {
    use std::os::unix::process::ExitStatusExt as _;
    for in_place in [false, true] {
        let setup = || {
            let lab = sonarr_lab(in_place.then_some("srv/sonarr"));
            let old = old_data(&lab, if in_place { "srv/sonarr" } else { "persist/var/lib/sonarr" });
            let want = listing(&old);
            (lab, old, want)
        };
        let (lab, old, _) = setup();
        assert!(migrate(&lab, &old.display().to_string(), &[], &[]).status.success());
        let changes: usize = std::fs::read_to_string(lab.path_str("state.json.changes")).unwrap().parse().unwrap();
        for (when, n) in (1..=changes).flat_map(|n| [("FAKE_ZFS_KILL_BEFORE", n), ("FAKE_ZFS_KILL_AT", n)]) {
            let kill_at = format!("{when}={n}");
            let (lab, old, want) = setup();
            let from = old.display().to_string();
            let killed = migrate(&lab, &from, &[], &[(when, &n.to_string())]);
            assert_eq!(killed.status.signal(), Some(9), "in place {in_place}, kill at {kill_at}: {}", text(&killed));
            let rerun = migrate(&lab, &from, &[], &[]);
            assert!(rerun.status.success(), "in place {in_place}, kill at {kill_at}: {}", text(&rerun));
            let mp = PathBuf::from(if in_place { from.clone() } else { lab.path_str("persist/sonarr") });
            assert_eq!(listing(&mp), want, "in place {in_place}, kill at {kill_at}");
            let third = migrate(&lab, &from, &[], &[]);
            assert!(text(&third).contains("already-migrated"), "kill at {kill_at}: {}", text(&third));
        }
    }
}

#[test]
fn a_dataset_created_but_not_mounted_by_a_killed_zfs_create_is_mounted_then_filled() {
    for in_place in [false, true] {
        let lab = sonarr_lab(in_place.then_some("srv/sonarr"));
        let old = old_data(&lab, if in_place { "srv/sonarr" } else { "persist/var/lib/sonarr" });
        let want = listing(&old);
        let from = old.display().to_string();
        let mp = if in_place {
            // The killed run had moved the old directory aside already.
            let aside = format!("{from}.persistctl-migrated");
            std::fs::rename(&old, &aside).unwrap();
            from.clone()
        } else {
            lab.path_str("persist/sonarr")
        };
        let mut state = lab.state();
        let local = if in_place { json!({"mountpoint": mp}) } else { json!({}) };
        state["datasets"][DS] = json!({"local": local, "mounted": false});
        std::fs::write(lab.path_str("state.json"), state.to_string()).unwrap();
        let out = migrate(&lab, &from, &[], &[]);
        assert!(out.status.success(), "in place {in_place}: {}", text(&out));
        assert!(text(&out).contains("created but not mounted"), "{}", text(&out));
        assert_eq!(listing(Path::new(&mp)), want, "in place {in_place}");
        // Not on a path that holds files, though.
        let lab = sonarr_lab(None);
        let old = old_data(&lab, "persist/var/lib/sonarr");
        let mut state = lab.state();
        state["datasets"][DS] = json!({"local": {}, "mounted": false});
        std::fs::write(lab.path_str("state.json"), state.to_string()).unwrap();
        std::fs::create_dir_all(lab.path_str("persist/sonarr")).unwrap();
        std::fs::write(lab.path_str("persist/sonarr/stray"), "x").unwrap();
        let out = migrate(&lab, &old.display().to_string(), &[], &[]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("not mounted and"), "{}", text(&out));
        assert!(!lab.take_writes().iter().any(|c| c[0] == "mount"), "never mounted over files");
    }
}

#[test]
fn a_staging_named_directory_persistctl_did_not_make_is_refused_and_kept() {
    let lab = sonarr_lab(None);
    let old = old_data(&lab, "persist/var/lib/sonarr");
    let mp = PathBuf::from(lab.path_str("persist/sonarr"));
    let mut state = lab.state();
    state["datasets"][DS] = json!({"local": {"mountpoint": lab.path_str("persist/sonarr")}, "mounted": true});
    std::fs::write(lab.path_str("state.json"), state.to_string()).unwrap();
    // The service user owns the dataset root and made this: it is theirs, not a leftover to remove.
    let planted = mp.join(".persistctl-staging-migrate-7");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(planted.join("mine"), "theirs").unwrap();
    let out = migrate(&lab, &old.display().to_string(), &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(".persistctl-staging-migrate-7") && text(&out).contains("mode 0755"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(planted.join("mine")).unwrap(), "theirs", "left in place");
    assert!(lab.state()["datasets"][DS]["local"].get("persistctl:restored-from").is_none());
}
