//! Forged `zfs get` rows on REAL OpenZFS, inside the QEMU VM
//! (`SUITES=hostile_real tests/vm/real-zfs-tests.sh`): a real user property whose value holds a tab and a
//! line break forging a mountpoint row. persistctl never reads a foreign one (it asks for its properties
//! by name) and refuses one it reads, naming it; `zpool history` shows no write either way. On a host
//! without `/dev/zfs` they are ignored, and cargo counts them as ignored: never a silent pass.
//!
//! Each test makes its own pool on a sparse file in the guest's tmpfs and destroys it afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

mod common;

use std::path::PathBuf;

use common::real::{TestPool, ok};
use common::text;
use serde_json::json;

/// A pool with `<pool>/persist` mounted at its directory's `persist/`, `sonarr` created by `apply` holding
/// newer data, with a snapshot of an older state, and an empty `decoy/` beside; returns the config too.
fn with_service(name: &str) -> (TestPool, PathBuf) {
    let pool = TestPool::new(name);
    pool.plain_parent();
    std::fs::create_dir_all(pool.dir.join("decoy")).unwrap();
    let config = pool.config(&json!({"sonarr": {
        "properties": {"com.sun:auto-snapshot": "true"},
        "preseed": {"enable": true, "sources": ["snapshot"]},
    }}));
    pool.apply(&config);
    std::fs::write(pool.mountpoint("sonarr").join("config.xml"), "older").unwrap();
    ok("zfs", &["snapshot", &format!("{}@before", pool.dataset("sonarr"))]);
    std::fs::write(pool.mountpoint("sonarr").join("config.xml"), "newer data").unwrap();
    (pool, config)
}

/// `x<TAB>local<LF><dataset><TAB>mountpoint<TAB><decoy><TAB>local` in `property` of sonarr, set with
/// `zfs set` as root would.
fn forge(pool: &TestPool, property: &str) {
    let dataset = pool.dataset("sonarr");
    let value = format!("x\tlocal\n{dataset}\tmountpoint\t{}\tlocal", pool.dir.join("decoy").display());
    ok("zfs", &["set", &format!("{property}={value}"), &dataset]);
    let raw = ok("zfs", &["get", "-H", "-o", "value", property, &dataset]);
    assert!(raw.contains('\n') && raw.lines().count() > 1, "real zfs prints it raw: {raw:?}");
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn a_real_foreign_property_forging_a_mountpoint_row_changes_nothing() {
    let (pool, config) = with_service("pcl-hostile-foreign");
    forge(&pool, "evil:x");
    let history = pool.history();
    let plan = pool.persistctl(&config, &["plan"]);
    assert_eq!(plan.status.code(), Some(0), "in sync, the decoy unseen: {}", text(&plan));
    let apply = pool.persistctl(&config, &["apply"]);
    assert!(apply.status.success(), "{}", text(&apply));
    let preseed = pool.persistctl(&config, &["preseed", "sonarr"]);
    assert!(preseed.status.success() && text(&preseed).contains("data present"), "{}", text(&preseed));
    assert_eq!(pool.history(), history, "zpool history shows no write");
    assert_eq!(
        std::fs::read_to_string(pool.mountpoint("sonarr").join("config.xml")).unwrap(),
        "newer data",
        "not rolled back"
    );
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn a_real_forged_row_in_a_property_persistctl_reads_is_refused_and_nothing_is_written() {
    for (property, commands) in [
        ("com.sun:auto-snapshot", &[&["plan"][..], &["apply"]][..]),
        ("persistctl:restored-from", &[&["preseed", "sonarr"][..]][..]),
    ] {
        let (pool, config) = with_service(&format!("pcl-hostile-{}", property.len()));
        forge(&pool, property);
        let history = pool.history();
        for args in commands {
            let out = pool.persistctl(&config, args);
            let said = text(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?} with a forged {property}: {said}");
            assert!(said.contains("malformed `zfs get` output"), "{said}");
            assert!(
                said.contains(&format!("{}'s {property}", pool.dataset("sonarr"))),
                "names dataset and property: {said}"
            );
        }
        assert_eq!(pool.history(), history, "{property}: zpool history shows no write");
        let data = std::fs::read_to_string(pool.mountpoint("sonarr").join("config.xml")).unwrap();
        assert_eq!(data, "newer data", "not rolled back");
        // The way out the error names: clear it, and everything works again.
        ok("zfs", &["inherit", property, &pool.dataset("sonarr")]);
        let out = pool.persistctl(&config, &["apply"]);
        assert!(out.status.success(), "{}", text(&out));
    }
}
