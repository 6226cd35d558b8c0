//! Self-tests of the fake `zfs` (tests/fakes/zfs), driven directly: it must be at least as dangerous as
//! real `OpenZFS` 2.x on Linux, where a mount (create, mount, set mountpoint, rename, create -p ancestors)
//! succeeds over a non-empty directory and hides its files (overlay=on), `overlay=off` refuses, canmount
//! decides what is mounted, user property values are printed raw, and a suspended pool hangs forever.
//! A fake that is safer than the real tool would let the other suites pass on code that loses data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fake::Fake;
use common::recorded;
use common::{entries, text};
use serde_json::{Value, json};

/// A pool `tank` mounted at `<tmp>/tank`, plus `datasets` (name → state entry).
fn tank_lab(datasets: &Value) -> Fake {
    let lab = Fake::empty();
    let mut all = json!({ "tank": { "local": { "mountpoint": lab.path_str("tank") }, "mounted": true } });
    for (k, v) in datasets.as_object().unwrap() {
        all[k] = v.clone();
    }
    std::fs::create_dir_all(lab.path_str("tank")).unwrap();
    lab.set_datasets(&all);
    lab
}

/// `rel` holding `file` = `contents` (the data a mount must not silently lose).
fn occupied(lab: &Fake, rel: &str, file: &str, contents: &str) -> PathBuf {
    let dir = lab.path(rel);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), contents).unwrap();
    dir
}

fn get_all(lab: &Fake, root: &str) -> String {
    lab.zfs_ok(&["get", "-H", "-p", "-o", "name,property,value,source", "-r", "-t", "filesystem", "all", root])
}

/// (value, source) of `prop` on `name` in `get all`.
fn prop(lab: &Fake, name: &str, prop: &str) -> (String, String) {
    let all = get_all(lab, name);
    let line = all
        .lines()
        .find(|l| l.starts_with(&format!("{name}\t{prop}\t")))
        .unwrap_or_else(|| panic!("no {prop} for {name}:\n{all}"));
    let fields: Vec<&str> = line.split('\t').collect();
    (fields[2].to_string(), fields[3].to_string())
}

/// The files are hidden, not gone: recorded in the state and kept in the fake's hidden store.
fn hidden_by(lab: &Fake, dataset: &str, dir: &Path, file: &str, contents: &str) {
    assert!(entries(dir).is_empty(), "{dataset} mounted over {} hides {file}: {:?}", dir.display(), entries(dir));
    let hides = &lab.dataset(dataset)["hides"];
    assert_eq!(hides["path"], dir.display().to_string(), "{}", lab.dataset(dataset));
    let store = PathBuf::from(hides["store"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(store.join(file)).unwrap(), contents);
}

fn restored(lab: &Fake, dataset: &str, dir: &Path, file: &str, contents: &str) {
    lab.zfs_ok(&["unmount", dataset]);
    assert_eq!(std::fs::read_to_string(dir.join(file)).unwrap(), contents, "still there after unmount");
    assert!(lab.dataset(dataset).get("hides").is_none());
}

#[test]
fn create_over_a_non_empty_directory_succeeds_and_hides_it_until_unmounted() {
    let lab = tank_lab(&json!({}));
    let dir = occupied(&lab, "srv/x", "db", "precious");
    let mp = format!("mountpoint={}", dir.display());
    let out = lab.zfs(&["create", "-p", "-o", &mp, "tank/x"]);
    assert!(out.status.success(), "real zfs mounts over files with overlay=on: {}", text(&out));
    assert_eq!(prop(&lab, "tank/x", "mounted").0, "yes");
    hidden_by(&lab, "tank/x", &dir, "db", "precious");
    restored(&lab, "tank/x", &dir, "db", "precious");
    // And mounting again hides them again.
    lab.zfs_ok(&["mount", "tank/x"]);
    hidden_by(&lab, "tank/x", &dir, "db", "precious");
    restored(&lab, "tank/x", &dir, "db", "precious");
}

#[test]
fn mount_over_a_non_empty_directory_succeeds_and_hides_it() {
    let lab = tank_lab(&json!({}));
    let dir = occupied(&lab, "srv/x", "db", "precious");
    occupied(&lab, "srv/x/.zfs/snapshot/s1", "db", "old");
    lab.set_dataset("tank/x", &json!({ "local": { "mountpoint": dir.display().to_string() }, "mounted": false }));
    lab.zfs_ok(&["mount", "tank/x"]);
    hidden_by(&lab, "tank/x", &dir, "db", "precious");
    restored(&lab, "tank/x", &dir, "db", "precious");
}

#[test]
fn set_mountpoint_mounts_an_unmounted_canmount_on_dataset_over_files_but_not_a_noauto_one() {
    let lab = tank_lab(&json!({
        "tank/on": { "local": { "mountpoint": "none" }, "mounted": false },
        "tank/noauto": { "local": { "mountpoint": "none", "canmount": "noauto" }, "mounted": false },
    }));
    let on = occupied(&lab, "srv/on", "db", "on");
    let noauto = occupied(&lab, "srv/noauto", "db", "noauto");
    lab.zfs_ok(&["set", &format!("mountpoint={}", noauto.display()), "tank/noauto"]);
    assert_eq!(entries(&noauto), ["db"], "canmount=noauto: a mountpoint change does not mount it");
    assert_eq!(prop(&lab, "tank/noauto", "mounted").0, "no");
    lab.zfs_ok(&["set", &format!("mountpoint={}", on.display()), "tank/on"]);
    assert_eq!(prop(&lab, "tank/on", "mounted").0, "yes", "libzfs remounts canmount=on though it was not mounted");
    hidden_by(&lab, "tank/on", &on, "db", "on");
    restored(&lab, "tank/on", &on, "db", "on");
    // Setting the value it already has goes through the same changelist: mounted too.
    let same = occupied(&lab, "srv/same", "db", "same");
    lab.set_dataset("tank/same", &json!({ "local": { "mountpoint": same.display().to_string() }, "mounted": false }));
    let mp = format!("mountpoint={}", same.display());
    lab.zfs_ok(&["set", &mp, "tank/same"]);
    hidden_by(&lab, "tank/same", &same, "db", "same");
    restored(&lab, "tank/same", &same, "db", "same");
    lab.zfs_ok(&["set", &mp, "tank/same"]);
    hidden_by(&lab, "tank/same", &same, "db", "same");
    // set canmount=off unmounts, which gives the files back.
    lab.zfs_ok(&["set", "canmount=off", "tank/same"]);
    assert_eq!(std::fs::read_to_string(same.join("db")).unwrap(), "same");
}

#[test]
fn create_p_creates_and_mounts_missing_ancestors_at_their_inherited_mountpoints() {
    let lab = tank_lab(&json!({}));
    let a = occupied(&lab, "tank/a", "top", "under a");
    let out = lab.zfs(&["create", "-p", "-o", "canmount=noauto", "tank/a/b/c"]);
    assert!(out.status.success(), "{}", text(&out));
    for ancestor in ["tank/a", "tank/a/b"] {
        assert_eq!(prop(&lab, ancestor, "mounted").0, "yes", "{ancestor} is mounted by create -p");
        assert_eq!(prop(&lab, ancestor, "mountpoint"), (lab.path_str(ancestor), "inherited from tank".into()));
    }
    assert_eq!(prop(&lab, "tank/a/b/c", "mounted").0, "no", "-o canmount=noauto is honoured for the target");
    assert_eq!(entries(&a), ["b"], "a's old file is hidden by the mounted ancestor");
    assert_eq!(lab.dataset("tank/a")["hides"]["path"], a.display().to_string());
    lab.zfs_ok(&["unmount", "tank/a/b"]);
    lab.zfs_ok(&["unmount", "tank/a"]);
    assert_eq!(std::fs::read_to_string(a.join("top")).unwrap(), "under a", "still there after unmount");
}

#[test]
fn create_never_mounts_canmount_off_or_noauto() {
    for canmount in ["off", "noauto"] {
        let lab = tank_lab(&json!({}));
        let dir = occupied(&lab, "srv/x", "db", "precious");
        let mp = format!("mountpoint={}", dir.display());
        lab.zfs_ok(&["create", "-p", "-o", &format!("canmount={canmount}"), "-o", &mp, "tank/x"]);
        assert_eq!(prop(&lab, "tank/x", "mounted").0, "no", "{canmount}");
        assert_eq!(prop(&lab, "tank/x", "canmount"), (canmount.into(), "local".into()));
        assert_eq!(entries(&dir), ["db"], "{canmount}: nothing hidden");
    }
}

#[test]
fn create_p_of_an_existing_dataset_succeeds_and_ignores_its_properties() {
    let lab = tank_lab(&json!({ "tank/x": { "local": {}, "mounted": true } }));
    std::fs::create_dir_all(lab.path_str("tank/x")).unwrap();
    lab.zfs_ok(&["create", "-p", "-o", "recordsize=16K", "tank/x"]);
    assert_eq!(prop(&lab, "tank/x", "recordsize"), ("131072".into(), "default".into()));
}

#[test]
fn rename_of_a_mounted_dataset_remounts_it_over_files_at_the_new_path() {
    let lab = tank_lab(&json!({ "tank/old": { "local": {}, "mounted": true } }));
    std::fs::create_dir_all(lab.path_str("tank/old")).unwrap();
    let new = occupied(&lab, "tank/new", "db", "precious");
    lab.zfs_ok(&["rename", "tank/old", "tank/new"]);
    assert_eq!(prop(&lab, "tank/new", "mounted").0, "yes");
    hidden_by(&lab, "tank/new", &new, "db", "precious");
    restored(&lab, "tank/new", &new, "db", "precious");
}

#[test]
fn overlay_is_a_native_inheritable_property_and_off_refuses_to_mount_over_files() {
    let lab = tank_lab(&json!({}));
    assert_eq!(prop(&lab, "tank", "overlay"), ("on".into(), "default".into()), "get all shows overlay");
    let dir = occupied(&lab, "srv/x", "db", "precious");
    let mp = format!("mountpoint={}", dir.display());
    // create: the dataset is created, its mount fails, exit 1.
    let out = lab.zfs(&["create", "-p", "-o", "overlay=off", "-o", &mp, "tank/x"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot mount '{}': directory is not empty", dir.display())), "{err}");
    assert!(err.contains("filesystem successfully created, but not mounted"), "{err}");
    assert_eq!(prop(&lab, "tank/x", "overlay"), ("off".into(), "local".into()));
    assert_eq!(prop(&lab, "tank/x", "mounted").0, "no");
    assert_eq!(entries(&dir), ["db"]);
    // mount
    let out = lab.zfs(&["mount", "tank/x"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("directory is not empty"));
    assert_eq!(entries(&dir), ["db"]);
    // Inherited from the parent, through set mountpoint: the property is set, the mount fails.
    lab.zfs_ok(&["set", "overlay=off", "tank"]);
    lab.zfs_ok(&["create", "-p", "-o", "mountpoint=none", "tank/y"]);
    assert_eq!(prop(&lab, "tank/y", "overlay"), ("off".into(), "inherited from tank".into()));
    let out = lab.zfs(&["set", &mp, "tank/y"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(prop(&lab, "tank/y", "mountpoint"), (dir.display().to_string(), "local".into()));
    assert_eq!(prop(&lab, "tank/y", "mounted").0, "no");
    assert_eq!(entries(&dir), ["db"]);
    // create -p: the ancestor is created unmounted, the target not at all.
    occupied(&lab, "tank/p", "f", "x");
    let out = lab.zfs(&["create", "-p", "tank/p/q"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(prop(&lab, "tank/p", "mounted").0, "no");
    assert!(lab.dataset("tank/p/q").is_null());
}

#[test]
fn user_property_values_are_printed_raw_with_tabs_and_newlines() {
    let lab = tank_lab(&json!({ "tank/x": { "local": { "note:x": "a\tb\nc" }, "mounted": false } }));
    let all = get_all(&lab, "tank/x");
    assert!(all.contains("tank/x\tnote:x\ta\tb\nc\tlocal\n"), "{all:?}");
    let out =
        lab.zfs(&["get", "-H", "-p", "-o", "name,property,value,source", "-r", "-t", "filesystem", "note:x", "tank"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "tank\tnote:x\t-\t-\ntank/x\tnote:x\ta\tb\nc\tlocal\n");
}

fn hung_pids(lab: &Fake, want: usize) -> Vec<i32> {
    let started = Instant::now();
    loop {
        let pids: Vec<i32> = std::fs::read_to_string(lab.path_str("state.json.hung"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        if pids.len() >= want || started.elapsed() > Duration::from_secs(10) {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hang_never_returns_and_leaves_a_grandchild_holding_the_pipes_in_its_own_session() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::{Pid, getsid};
    let lab = tank_lab(&json!({}));
    let before = std::fs::read_to_string(lab.path_str("state.json")).unwrap();
    let mut child = lab
        .zfs_command(&["create", "-p", "tank/x"])
        .env("FAKE_ZFS_HANG", "get,create:tank/x")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pids = hung_pids(&lab, 2);
    assert_eq!(pids.len(), 2, "the child and its grandchild: {pids:?}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "still running: only the caller's own timeout ends the wait");
    kill(Pid::from_raw(child.id().cast_signed()), Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "SIGTERM is ignored");
    child.kill().unwrap();
    child.wait().unwrap();
    let grandchild = Pid::from_raw(*pids.iter().find(|p| **p != child.id().cast_signed()).unwrap());
    assert!(kill(grandchild, None).is_ok(), "the grandchild outlives the killed child");
    assert_ne!(getsid(Some(grandchild)).unwrap(), getsid(None).unwrap(), "in a session of its own");
    // It still holds stdout open: a reader waiting for EOF would wait on.
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        let _ = tx.send(());
    });
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err(), "no EOF while the grandchild lives");
    kill(grandchild, Signal::SIGKILL).unwrap();
    assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok(), "EOF once it is gone");
    assert_eq!(std::fs::read_to_string(lab.path_str("state.json")).unwrap(), before, "a hung call changes nothing");
    // Another dataset, or another verb, is not hung.
    let out =
        lab.zfs_command(&["create", "-p", "tank/y"]).env("FAKE_ZFS_HANG", "create:tank/x,mount").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn slow_delays_only_the_named_calls() {
    let lab = tank_lab(&json!({}));
    let list = ["list", "-H", "-o", "name", "-d", "0", "tank"];
    let timed = |env: &[(&str, &str)]| {
        let started = Instant::now();
        let out = lab.zfs_command(&list).envs(env.iter().copied()).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        started.elapsed()
    };
    assert!(timed(&[("FAKE_ZFS_SLOW", "list:1.5")]) >= Duration::from_millis(1500));
    assert!(timed(&[("FAKE_ZFS_SLOW", "list:tank:1.5")]) >= Duration::from_millis(1500));
    assert!(timed(&[("FAKE_ZFS_SLOW", "get:3,list:other:3")]) < Duration::from_millis(2500));
}

/// The fake's state for a recorded real tree (`tests/fixtures/zfs/<line>`): every dataset with the
/// properties real zfs reported as set locally in any recorded read, its mount state, and its snapshots
/// with their creation, used, GUID and order as recorded; the pool and the replica beside it.
fn recorded_state(line: &str) -> Value {
    let mut datasets = json!({ "tank": { "local": { "mountpoint": "none" } }, "tank/backup": { "local": {} } });
    let gets = ["planner-get", "status-get", "preseed-get", "preseed-marked-get"];
    for row in
        gets.iter().flat_map(|get| recorded::call(line, get).stdout.lines().map(String::from).collect::<Vec<_>>())
    {
        let f: Vec<&str> = row.split('\t').collect();
        let entry = datasets[f[0]].as_object_mut().map_or_else(|| json!({ "local": {} }), |e| Value::Object(e.clone()));
        datasets[f[0]] = entry;
        if f[3] == "local" {
            datasets[f[0]]["local"][f[1]] = json!(f[2]);
        }
        if f[1] == "mounted" {
            datasets[f[0]]["mounted"] = json!(f[2] == "yes");
        }
    }
    datasets["tank/backup/sonarr"] = json!({ "local": {} });
    for call in ["snapshots-tree", "snapshots-replica"] {
        // Listed in createtxg order: the position is the txg (the recording holds no txg of its own).
        for (txg, row) in recorded::call(line, call).stdout.lines().enumerate() {
            let f: Vec<&str> = row.split('\t').collect();
            let (dataset, snap) = f[0].split_once('@').unwrap();
            let entry = &mut datasets[dataset];
            if entry.get("snapshots").is_none() {
                entry["snapshots"] = json!([]);
            }
            entry["snapshots"].as_array_mut().unwrap().push(json!(snap));
            entry["snapshot_info"][snap] = json!({ "creation": f[1].parse::<i64>().unwrap(), "used": f[2].parse::<u64>().unwrap(), "guid": f[3],
                        "createtxg": txg });
        }
    }
    datasets
}

/// The fake, given the recorded tree, answers each of persistctl's recorded reads as real zfs did: the
/// same rows in the same order (dataset blocks, one row per property asked, the answer ending with a
/// line break), the same values and sources wherever the fake models them (what is set locally,
/// inherited mountpoints, mount state, user properties, the type), the same snapshot lists, and the
/// same exit codes and error texts for what does not exist. Real defaults of properties the fake does
/// not model, and received or temporary sources, are the only differences allowed.
#[test]
fn the_fake_answers_persistctl_s_reads_as_the_recorded_real_zfs() {
    let modelled = ["mountpoint", "canmount", "mounted", "type", "recordsize", "logbias", "overlay", "quota"];
    for line in recorded::lines() {
        let lab = Fake::new(&recorded_state(&line));
        for name in [
            "planner-get",
            "status-get",
            "preseed-get",
            "preseed-marked-get",
            "snapshots-of",
            "snapshots-tree",
            "snapshots-replica",
            "missing-get",
            "exists-list",
        ] {
            let real = recorded::call(&line, name);
            let argv: Vec<&str> = real.argv.iter().map(String::as_str).collect();
            let fake = lab.zfs(&argv);
            let (stdout, stderr) = (common::stdout(&fake), common::stderr(&fake));
            let what = format!("{line}/{name}: zfs {}", real.argv.join(" "));
            assert_eq!(fake.status.code(), Some(real.rc), "{what}: {}", text(&fake));
            assert_eq!(stderr, real.stderr, "{what}");
            if argv[0] == "list" {
                assert_eq!(stdout, real.stdout, "{what}");
                continue;
            }
            assert_eq!(stdout.ends_with('\n'), real.stdout.ends_with('\n'), "{what}");
            let rows = |text: &str| -> Vec<Vec<String>> {
                text.lines().map(|l| l.split('\t').map(String::from).collect()).collect()
            };
            let (fake_rows, real_rows) = (rows(&stdout), rows(&real.stdout));
            let keys = |rows: &[Vec<String>]| rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect::<Vec<_>>();
            assert_eq!(keys(&fake_rows), keys(&real_rows), "{what}: the same rows in the same order");
            for (fake_row, real_row) in fake_rows.iter().zip(&real_rows) {
                assert_eq!(fake_row.len(), 4, "{what}: {fake_row:?}");
                let comparable = !["received", "temporary"].contains(&real_row[3].as_str())
                    && (real_row[3] != "default" || modelled.contains(&real_row[1].as_str()))
                    && (modelled.contains(&real_row[1].as_str())
                        || real_row[1].contains(':')
                        || real_row[3] == "local");
                if comparable {
                    assert_eq!(fake_row, real_row, "{what}");
                }
            }
        }
    }
}
