//! Hostile `zfs get` answers against the real binary and the fake `zfs` (tests/fakes/zfs prints user
//! property values raw, tabs and line breaks included, as real zfs does): a user property whose value
//! forges a row, an empty answer with exit 0, a `--from` path with a line break. Every command either
//! never reads the forged value or refuses, and makes no zfs write. `hostile_real.rs` proves the same on
//! real `OpenZFS`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

mod common;

use std::path::Path;
use std::process::Output;

use common::fake::{Fake, fake_zfs, writes};
use common::text;
use serde_json::json;

const DS: &str = "tank/persist/sonarr";

/// `tank/persist` mounted, and `tank/persist/sonarr` mounted with data and one snapshot; the config
/// manages sonarr's `com.sun:auto-snapshot` and restores it from its snapshots.
fn lab() -> Fake {
    let fake = Fake::empty();
    fake.set_datasets(&json!({
        "tank": {"local": {"mountpoint": "none"}},
        "tank/persist": {"local": {"mountpoint": fake.mount_root()}, "mounted": true},
        DS: {"local": {}, "mounted": true, "snapshots": ["a"]},
    }));
    std::fs::create_dir_all(fake.mountpoint("sonarr")).unwrap();
    std::fs::write(fake.mountpoint("sonarr").join("config.xml"), "newer data").unwrap();
    std::fs::create_dir_all(fake.path("decoy")).unwrap();
    fake.write_services(&json!({"sonarr": {
        "properties": {"com.sun:auto-snapshot": "true"},
        "preseed": {"enable": true, "sources": ["snapshot"]},
    }}));
    fake
}

/// The value `x<TAB>local<LF>DS<TAB>mountpoint<TAB><decoy><TAB>local`: one row for the property, then
/// a second one claiming the dataset's mountpoint is the empty decoy directory.
fn forged_mountpoint(fake: &Fake) -> String {
    format!("x\tlocal\n{DS}\tmountpoint\t{}\tlocal", fake.path("decoy").display())
}

/// persistctl with the lab's config and preseed status file, against the fake zfs.
fn persistctl(fake: &Fake, args: &[&str]) -> Output {
    persistctl_with(fake, args, &fake_zfs())
}

/// [`persistctl`] with another `zfs`.
fn persistctl_with(fake: &Fake, args: &[&str], zfs: &Path) -> Output {
    let status = fake.path("status/preseed.json").display().to_string();
    let zfs = zfs.display().to_string();
    fake.run(&fake.path("config.json"), args, &[("PERSISTCTL_PRESEED_STATUS", &status), ("PERSISTCTL_ZFS", &zfs)])
}

/// Brings the dataset in line with the config, so that a later run has nothing to do.
fn settle(fake: &Fake) {
    let out = persistctl(fake, &["apply"]);
    assert!(out.status.success(), "{}", text(&out));
    fake.take_calls();
}

#[test]
fn a_foreign_user_property_forging_a_mountpoint_row_is_never_read() {
    let fake = lab();
    settle(&fake);
    fake.set_local(DS, "evil:x", &forged_mountpoint(&fake));
    let plan = persistctl(&fake, &["plan"]);
    assert_eq!(plan.status.code(), Some(0), "in sync, the decoy mountpoint unseen: {}", text(&plan));
    let apply = persistctl(&fake, &["apply"]);
    assert!(apply.status.success(), "{}", text(&apply));
    let preseed = persistctl(&fake, &["preseed", "sonarr"]);
    assert!(preseed.status.success(), "data present at the real mountpoint: {}", text(&preseed));
    let calls = fake.take_calls();
    assert!(writes(&calls).is_empty(), "no zfs write: {calls:?}");
    for call in calls.iter().filter(|c| c[0] == "get") {
        assert!(!call.iter().any(|a| a == "all" || a.contains("evil:x")), "asks only for its own properties: {call:?}");
    }
    assert_eq!(std::fs::read_to_string(fake.mountpoint("sonarr").join("config.xml")).unwrap(), "newer data");
}

#[test]
fn a_forged_row_in_a_property_persistctl_reads_is_refused_without_any_write() {
    // (property holding the forged row, commands that read it)
    let cases: &[(&str, &[&[&str]])] = &[
        ("com.sun:auto-snapshot", &[&["plan"], &["apply"], &["status"]]),
        ("persistctl:restored-from", &[&["preseed", "sonarr"]]),
    ];
    for (property, commands) in cases {
        let fake = lab();
        settle(&fake);
        fake.set_local(DS, property, &forged_mountpoint(&fake));
        for args in *commands {
            let out = persistctl(&fake, args);
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
            let out = persistctl(&fake, &["preseed", "sonarr"]);
            assert!(out.status.success() && text(&out).contains("data present"), "{}", text(&out));
        }
        let calls = fake.take_calls();
        assert!(writes(&calls).is_empty(), "{property}: no zfs write: {calls:?}");
        assert_eq!(std::fs::read_to_string(fake.mountpoint("sonarr").join("config.xml")).unwrap(), "newer data");
    }
}

#[test]
fn an_empty_answer_with_exit_zero_is_an_error_not_a_missing_dataset() {
    let fake = lab();
    // A zfs that answers every read with nothing and exit 0, logs every call, and fails any other.
    let zfs = fake.path("empty-zfs");
    common::write_script(
        &zfs,
        &format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\ncase \"$1\" in get|list) exit 0;; esac\necho unexpected >&2\nexit 2\n",
            fake.path("empty-zfs.log").display()
        ),
    );
    for args in [&["plan"][..], &["apply"], &["preseed", "sonarr"], &["show"]] {
        let out = persistctl_with(&fake, args, &zfs);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(said.contains("no rows for tank/persist"), "{args:?}: {said}");
    }
    let verbs = std::fs::read_to_string(fake.path("empty-zfs.log")).unwrap();
    assert!(verbs.lines().all(|v| v == "get" || v == "list"), "nothing but reads: {verbs}");
}

#[test]
fn migrate_refuses_a_from_path_with_a_line_break_before_any_change() {
    let fake = lab();
    settle(&fake);
    let from = format!("/var/lib/sonarr\tlocal\n{DS}\tmountpoint\t/decoy");
    let out = persistctl(&fake, &["migrate", "sonarr", "--from", &from]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("control character"), "{said}");
    assert!(fake.take_calls().is_empty(), "not even a read");
}
