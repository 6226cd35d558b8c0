//! Hostile `zfs get` answers against the real binary and the fake `zfs` (tests/fakes/zfs prints user
//! property values raw, tabs and line breaks included, as real zfs does): a user property whose value
//! forges a row, an empty answer with exit 0, a `--from` path with a line break. Every command either
//! never reads the forged value or refuses, and makes no zfs write. `hostile_real.rs` proves the same on
//! real `OpenZFS`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

const DS: &str = "tank/persist/sonarr";

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    /// `tank/persist` mounted, and `tank/persist/sonarr` mounted with data and one snapshot.
    fn new() -> Self {
        let fake = Self { dir: tempfile::tempdir().unwrap() };
        let datasets = json!({
            "tank": {"local": {"mountpoint": "none"}},
            "tank/persist": {"local": {"mountpoint": fake.root()}, "mounted": true},
            DS: {"local": {}, "mounted": true, "snapshots": ["a"]},
        });
        std::fs::create_dir_all(fake.mountpoint()).unwrap();
        std::fs::write(fake.mountpoint().join("config.xml"), "newer data").unwrap();
        std::fs::create_dir_all(fake.path("decoy")).unwrap();
        std::fs::write(fake.path("state.json"), json!({ "datasets": datasets }).to_string()).unwrap();
        std::fs::write(fake.path("zfs.log"), "").unwrap();
        let config = json!({"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": fake.root(),
        "services": {"sonarr": {
            "properties": {"com.sun:auto-snapshot": "true"},
            "preseed": {"enable": true, "sources": ["snapshot"]},
        }}}});
        std::fs::write(fake.path("config.json"), config.to_string()).unwrap();
        fake
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn root(&self) -> String {
        self.path("persist").display().to_string()
    }

    fn mountpoint(&self) -> PathBuf {
        self.path("persist").join("sonarr")
    }

    /// The value `x<TAB>local<LF>DS<TAB>mountpoint<TAB><decoy><TAB>local`: one row for the property, then
    /// a second one claiming the dataset's mountpoint is the empty decoy directory.
    fn forged_mountpoint(&self) -> String {
        format!("x\tlocal\n{DS}\tmountpoint\t{}\tlocal", self.path("decoy").display())
    }

    /// Sets a local property on a dataset in the fake's state (as `zfs set` by someone else would).
    fn set_raw(&self, dataset: &str, property: &str, value: &str) {
        let mut state: Value =
            serde_json::from_str(&std::fs::read_to_string(self.path("state.json")).unwrap()).unwrap();
        state["datasets"][dataset]["local"][property] = json!(value);
        std::fs::write(self.path("state.json"), state.to_string()).unwrap();
    }

    fn run(&self, args: &[&str], zfs: &Path) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_persistctl"));
        cmd.arg("--config").arg(self.path("config.json")).args(args);
        cmd.env("PERSISTCTL_ZFS", zfs)
            .env("PERSISTCTL_LOCK", self.path("lock"))
            .env("PERSISTCTL_PRESEED_STATUS", self.path("status/preseed.json"))
            .env("PERSISTCTL_MOUNTINFO", self.path("state.json.mountinfo"))
            .env("FAKE_ZFS_STATE", self.path("state.json"))
            .env("FAKE_ZFS_LOG", self.path("zfs.log"))
            .env_remove("NIXOS_ACTION")
            .env_remove("RUST_LOG");
        cmd.output().unwrap()
    }

    fn persistctl(&self, args: &[&str]) -> Output {
        self.run(args, &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/zfs"))
    }

    /// Every zfs call so far, and then forgets them.
    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.path("zfs.log")).unwrap();
        std::fs::write(self.path("zfs.log"), "").unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Brings the dataset in line with the config, so that a later run has nothing to do.
    fn settle(&self) {
        let out = self.persistctl(&["apply"]);
        assert!(out.status.success(), "{}", text(&out));
        self.calls();
    }
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn writes(calls: &[Vec<String>]) -> Vec<&Vec<String>> {
    calls.iter().filter(|c| c[0] != "get" && c[0] != "list").collect()
}

#[test]
fn a_foreign_user_property_forging_a_mountpoint_row_is_never_read() {
    let fake = Fake::new();
    fake.settle();
    fake.set_raw(DS, "evil:x", &fake.forged_mountpoint());
    let plan = fake.persistctl(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "in sync, the decoy mountpoint unseen: {}", text(&plan));
    let apply = fake.persistctl(&["apply"]);
    assert!(apply.status.success(), "{}", text(&apply));
    let preseed = fake.persistctl(&["preseed", "sonarr"]);
    assert!(preseed.status.success(), "data present at the real mountpoint: {}", text(&preseed));
    let calls = fake.calls();
    assert!(writes(&calls).is_empty(), "no zfs write: {calls:?}");
    for call in calls.iter().filter(|c| c[0] == "get") {
        assert!(!call.iter().any(|a| a == "all" || a.contains("evil:x")), "asks only for its own properties: {call:?}");
    }
    assert_eq!(std::fs::read_to_string(fake.mountpoint().join("config.xml")).unwrap(), "newer data");
}

#[test]
fn a_forged_row_in_a_property_persistctl_reads_is_refused_without_any_write() {
    // (property holding the forged row, commands that read it)
    let cases: &[(&str, &[&[&str]])] = &[
        ("com.sun:auto-snapshot", &[&["plan"], &["apply"], &["status"]]),
        ("persistctl:restored-from", &[&["preseed", "sonarr"]]),
    ];
    for (property, commands) in cases {
        let fake = Fake::new();
        fake.settle();
        fake.set_raw(DS, property, &fake.forged_mountpoint());
        for args in *commands {
            let out = fake.persistctl(args);
            let said = text(&out);
            // 1: error; `status` says UNKNOWN (3).
            let want = if args[0] == "status" { 3 } else { 1 };
            assert_eq!(out.status.code(), Some(want), "{args:?} with a forged {property}: {said}");
            assert!(said.contains("malformed `zfs get` output"), "{args:?}: {said}");
            assert!(said.contains(&format!("{DS}'s {property}")), "names the dataset and property: {said}");
            assert!(said.contains(&format!("zfs inherit {property}")), "says how to clear it: {said}");
        }
        if *property == "com.sun:auto-snapshot" {
            // preseed reads only its own marks and the mount state: the forged row is never printed to it.
            let out = fake.persistctl(&["preseed", "sonarr"]);
            assert!(out.status.success() && text(&out).contains("data present"), "{}", text(&out));
        }
        let calls = fake.calls();
        assert!(writes(&calls).is_empty(), "{property}: no zfs write: {calls:?}");
        assert_eq!(std::fs::read_to_string(fake.mountpoint().join("config.xml")).unwrap(), "newer data");
    }
}

#[test]
fn an_empty_answer_with_exit_zero_is_an_error_not_a_missing_dataset() {
    let fake = Fake::new();
    // A zfs that answers every read with nothing and exit 0, logs every call, and fails any other.
    let zfs = fake.path("empty-zfs");
    std::fs::write(
        &zfs,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\ncase \"$1\" in get|list) exit 0;; esac\necho unexpected >&2\nexit 2\n",
            fake.path("empty-zfs.log").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&zfs, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for args in [&["plan"][..], &["apply"], &["preseed", "sonarr"], &["show"]] {
        let out = fake.run(args, &zfs);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(said.contains("no rows for tank/persist"), "{args:?}: {said}");
    }
    let verbs = std::fs::read_to_string(fake.path("empty-zfs.log")).unwrap();
    assert!(verbs.lines().all(|v| v == "get" || v == "list"), "nothing but reads: {verbs}");
}

#[test]
fn migrate_refuses_a_from_path_with_a_line_break_before_any_change() {
    let fake = Fake::new();
    fake.settle();
    let from = format!("/var/lib/sonarr\tlocal\n{DS}\tmountpoint\t/decoy");
    let out = fake.persistctl(&["migrate", "sonarr", "--from", &from]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("control character"), "{said}");
    assert!(fake.calls().is_empty(), "not even a read");
}
