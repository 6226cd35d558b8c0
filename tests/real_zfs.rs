//! persistctl against REAL OpenZFS, inside the QEMU VM (`tests/vm/real-zfs-tests.sh` runs this file's
//! tests with `--ignored` on OpenZFS 2.3 and 2.1). On a host without `/dev/zfs` they are ignored, and
//! cargo counts them as ignored: never a silent pass.
//!
//! Each test makes its own pool on a sparse file in the guest's tmpfs and destroys it afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::real::{TestPool, is_mountpoint, ok, repo_file, run, zfs_get, zfs_version};
use common::text;
use serde_json::{Value, json};

/// A directory holding a `zfs` that logs each call and then runs the real one, for PATH.
fn counting_zfs(dir: &Path) -> (String, PathBuf) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("zfs-calls.log");
    let real = ok("sh", &["-c", "command -v zfs"]).trim().to_string();
    let script = format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec {real} \"$@\"\n", log.display());
    std::fs::write(bin.join("zfs"), script).unwrap();
    ok("chmod", &["+x", bin.join("zfs").to_str().unwrap()]);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    (path, log)
}

fn seed_matrix() -> Value {
    json!({
        "sonarr": { "recordsize": "16K", "compression": "lz4", "properties": { "com.sun:auto-snapshot": "true" } },
        "plex": { "recordsize": "1M", "compression": "lz4", "properties": { "com.sun:auto-snapshot": "false" } },
        "postgres-data": { "recordsize": "8K", "compression": "lz4", "properties": { "logbias": "latency" } },
        "postgres-wal": { "recordsize": "128K", "compression": "off", "properties": { "logbias": "throughput" } },
    })
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn service_datasets_mount_under_a_legacy_parent() {
    let pool = TestPool::with_legacy_parent("pcl-legacy");
    let config = pool.config(&seed_matrix());
    pool.apply(&config);
    for (svc, recordsize, compression) in [
        ("sonarr", "16384", "lz4"),
        ("plex", "1048576", "lz4"),
        ("postgres-data", "8192", "lz4"),
        ("postgres-wal", "131072", "off"),
    ] {
        let ds = format!("{}/{svc}", pool.parent());
        let mountpoint = format!("{}/{svc}", pool.parent_mount());
        assert_eq!(zfs_get(&ds, "recordsize").0, recordsize, "{svc}");
        assert_eq!(zfs_get(&ds, "compression").0, compression, "{svc}");
        assert_eq!(zfs_get(&ds, "mountpoint"), (mountpoint.clone(), "local".into()), "{svc}");
        assert_eq!(zfs_get(&ds, "mounted").0, "yes", "{svc}");
        assert!(is_mountpoint(&mountpoint), "{mountpoint} is a mount");
    }
    assert_eq!(zfs_get(&format!("{}/sonarr", pool.parent()), "com.sun:auto-snapshot").0, "true");
    assert_eq!(zfs_get(&format!("{}/postgres-wal", pool.parent()), "logbias").0, "throughput");
    assert_eq!(zfs_get(&pool.parent(), "mountpoint").0, "legacy", "parent untouched");
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn tree_from_scratch_then_reapply_is_one_zfs_process_and_no_writes() {
    let pool = TestPool::new("pcl-scratch");
    let config = pool.config_with(&seed_matrix(), true);
    let text = pool.apply(&config);
    assert!(text.contains("create parent"), "{text}");
    assert_eq!(zfs_get(&pool.parent(), "mountpoint").0, pool.parent_mount());
    let history = pool.history();
    let (path, log) = counting_zfs(&pool.dir);
    let out = pool.persistctl_env(&config, &["apply"], &[("PATH", path.clone())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 1, "exactly one zfs process: {calls}");
    assert!(calls.starts_with("get -H -p"), "{calls}");
    assert_eq!(pool.history(), history, "zpool history shows no new writes");
    let plan = pool.persistctl_env(&config, &["plan"], &[("PATH", path)]);
    assert_eq!(plan.status.code(), Some(0), "{}", String::from_utf8_lossy(&plan.stdout));
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn changing_a_property_and_adding_a_service_touch_only_those() {
    let pool = TestPool::with_legacy_parent("pcl-change");
    let mut services = json!({ "sonarr": { "recordsize": "16K", "compression": "lz4" } });
    pool.apply(&pool.config(&services));
    let created = zfs_get(&format!("{}/sonarr", pool.parent()), "createtxg").0;
    let before = pool.history().len();
    services["sonarr"]["recordsize"] = json!("32K");
    services["radarr"] = json!({ "recordsize": "16K", "compression": "zstd" });
    let config = pool.config(&services);
    let plan = pool.persistctl(&config, &["plan"]);
    assert_eq!(plan.status.code(), Some(2), "changes pending");
    pool.apply(&config);
    let new: Vec<String> = pool.history()[before..].to_vec();
    assert_eq!(new.len(), 2, "one set and one create: {new:?}");
    assert!(new[0].contains("zfs create -o") && new[0].contains("radarr"), "{new:?}");
    assert!(new[1].contains("zfs set recordsize=32K") && new[1].contains("sonarr"), "{new:?}");
    assert_eq!(zfs_get(&format!("{}/sonarr", pool.parent()), "recordsize").0, "32768");
    assert_eq!(zfs_get(&format!("{}/sonarr", pool.parent()), "createtxg").0, created, "not recreated");
    assert_eq!(zfs_get(&format!("{}/radarr", pool.parent()), "compression").0, "zstd");
    assert_eq!(pool.persistctl(&config, &["plan"]).status.code(), Some(0));
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn inherited_values_equal_to_the_wanted_ones_are_in_sync() {
    let pool = TestPool::new("pcl-inherit");
    ok(
        "zfs",
        &[
            "create",
            "-o",
            &format!("mountpoint={}", pool.parent_mount()),
            "-o",
            "compression=lz4",
            "-o",
            "com.sun:auto-snapshot=true",
            "-o",
            "atime=off",
            &pool.parent(),
        ],
    );
    ok("zfs", &["create", &format!("{}/sonarr", pool.parent())]);
    let config = pool.config(&json!({
        "sonarr": { "compression": "lz4", "recordsize": "128K", "properties": { "com.sun:auto-snapshot": "true", "atime": "off" } }
    }));
    let before = pool.history();
    let plan = pool.persistctl(&config, &["plan", "--json"]);
    let v: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan.status.code(), Some(0), "{v}");
    assert_eq!(v["plan"]["datasets"][0]["status"], "in-sync");
    pool.apply(&config);
    assert_eq!(pool.history(), before);
    assert_eq!(
        zfs_get(&format!("{}/sonarr", pool.parent()), "compression").1,
        format!("inherited from {}", pool.parent())
    );
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn create_only_drift_is_reported_with_its_migration() {
    let pool = TestPool::with_legacy_parent("pcl-createonly");
    ok(
        "zfs",
        &[
            "create",
            "-o",
            "casesensitivity=sensitive",
            "-o",
            &format!("mountpoint={}/share", pool.parent_mount()),
            &format!("{}/share", pool.parent()),
        ],
    );
    let config = pool.config(&json!({ "share": { "properties": { "casesensitivity": "insensitive" } } }));
    let before = pool.history();
    let out = pool.persistctl(&config, &["plan"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("casesensitivity is sensitive, config wants insensitive: create-time only"), "{text}");
    pool.apply(&config);
    assert_eq!(pool.history(), before, "never tried to set it");
    // and on a new dataset it is applied at creation
    let config = pool.config(&json!({ "share": { "properties": { "casesensitivity": "insensitive" } },
                                       "fresh": { "properties": { "casesensitivity": "insensitive" } } }));
    pool.apply(&config);
    assert_eq!(zfs_get(&format!("{}/fresh", pool.parent()), "casesensitivity").0, "insensitive");
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn a_pool_that_is_not_imported_is_skipped_then_applied_after_import() {
    let pool = TestPool::with_legacy_parent("pcl-export");
    let config = pool.config(&json!({ "sonarr": { "recordsize": "16K" } }));
    ok("umount", &[&pool.parent_mount()]);
    ok("zpool", &["export", &pool.name]);
    let out = pool.persistctl(&config, &["apply"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not imported"));
    assert_eq!(pool.persistctl(&config, &["apply", "--require-pools"]).status.code(), Some(1));
    ok("zpool", &["import", "-d", pool.dir.to_str().unwrap(), "-o", "cachefile=none", &pool.name]);
    ok("mount", &["-t", "zfs", &pool.parent(), &pool.parent_mount()]);
    pool.apply(&config);
    assert_eq!(zfs_get(&format!("{}/sonarr", pool.parent()), "recordsize").0, "16384");
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn two_concurrent_applies_create_each_dataset_once() {
    let pool = TestPool::with_legacy_parent("pcl-race");
    let services: serde_json::Map<String, Value> =
        (0..8).map(|i| (format!("svc{i}"), json!({ "recordsize": "16K" }))).collect();
    let config = pool.config(&Value::Object(services));
    let spawn = || {
        pool.command(&config, &["apply"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let creates = pool.history().iter().filter(|l| l.contains("zfs create -o") && l.contains("/persist/svc")).count();
    assert_eq!(creates, 8, "each dataset created exactly once");
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn owner_and_mode_are_set_on_the_mounted_root_never_through_a_symlink() {
    let pool = TestPool::with_legacy_parent("pcl-owner");
    let services = json!({ "app": { "owner": "1234", "group": "5678", "mode": "0750" } });
    let config = pool.config(&services);
    pool.apply(&config);
    let root = format!("{}/app", pool.parent_mount());
    let meta = std::fs::metadata(&root).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (1234, 5678, 0o750));
    // drift is repaired, and only then
    ok("chmod", &["0777", &root]);
    let text = pool.apply(&config);
    assert!(text.contains("chown/chmod"), "{text}");
    assert_eq!(std::fs::metadata(&root).unwrap().mode() & 0o7777, 0o750);
    let text = pool.apply(&config);
    assert!(!text.contains("chown/chmod"), "{text}");

    // A symlink planted where a new dataset would mount: creation is refused, the target untouched.
    let victim = pool.dir.join("victim");
    std::fs::create_dir(&victim).unwrap();
    ok("chmod", &["0755", victim.to_str().unwrap()]);
    std::os::unix::fs::symlink(&victim, format!("{}/other", pool.parent_mount())).unwrap();
    let config = pool.config(&json!({ "app": services["app"], "other": { "owner": "1234", "mode": "0700" } }));
    let out = pool.persistctl(&config, &["apply"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("symlink"), "{}", String::from_utf8_lossy(&out.stdout));
    let meta = std::fs::metadata(&victim).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755), "symlink target untouched");
    assert!(run("zfs", &["list", &format!("{}/other", pool.parent())]).status.code() != Some(0));

    // An unmounted dataset with a symlink in place of its mountpoint: reported, target untouched.
    ok("zfs", &["unmount", &format!("{}/app", pool.parent())]);
    std::fs::remove_dir(&root).unwrap();
    std::os::unix::fs::symlink(&victim, &root).unwrap();
    let config = pool.config(&json!({ "app": { "owner": "1234", "group": "5678", "mode": "0700" } }));
    let out = pool.persistctl(&config, &["apply"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not mounted"), "{text}");
    let meta = std::fs::metadata(&victim).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755), "symlink target untouched");
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn names_with_spaces_work_on_real_zfs() {
    let pool = TestPool::with_legacy_parent("pcl-space");
    let config = pool.config(&json!({ "my app": { "properties": { "note:x": "it's \"q\"; $(id)" } } }));
    pool.apply(&config);
    let ds = format!("{}/my app", pool.parent());
    assert_eq!(zfs_get(&ds, "note:x").0, "it's \"q\"; $(id)");
    assert!(is_mountpoint(&format!("{}/my app", pool.parent_mount())));
    assert_eq!(pool.persistctl(&config, &["plan"]).status.code(), Some(0));
}

/// (property, value, minimum OpenZFS (major, minor)) — every value class the config allows.
const ALLOWED_VALUES: &[(&str, &str, (u32, u32))] = &[
    ("recordsize", "512", (2, 0)),
    ("recordsize", "16K", (2, 0)),
    ("recordsize", "16k", (2, 0)),
    ("recordsize", "128KiB", (2, 0)),
    ("recordsize", "1M", (2, 0)),
    // 2.1's zfs_max_recordsize is 1M (16M from 2.2): there zfs itself refuses, with a clear error.
    ("recordsize", "16M", (2, 2)),
    ("compression", "on", (2, 0)),
    ("compression", "off", (2, 0)),
    ("compression", "lz4", (2, 0)),
    ("compression", "lzjb", (2, 0)),
    ("compression", "zle", (2, 0)),
    ("compression", "gzip", (2, 0)),
    ("compression", "gzip-1", (2, 0)),
    ("compression", "gzip-6", (2, 0)),
    ("compression", "gzip-9", (2, 0)),
    ("compression", "zstd", (2, 0)),
    ("compression", "zstd-1", (2, 0)),
    ("compression", "zstd-3", (2, 0)),
    ("compression", "zstd-19", (2, 0)),
    ("compression", "zstd-fast", (2, 0)),
    ("compression", "zstd-fast-1", (2, 0)),
    ("compression", "zstd-fast-10", (2, 0)),
    ("compression", "zstd-fast-1000", (2, 0)),
    ("atime", "off", (2, 0)),
    ("relatime", "on", (2, 0)),
    ("xattr", "sa", (2, 0)),
    ("xattr", "on", (2, 0)),
    ("xattr", "dir", (2, 0)),
    ("acltype", "posixacl", (2, 0)),
    ("acltype", "noacl", (2, 0)),
    ("acltype", "posix", (2, 2)),
    ("acltype", "nfsv4", (2, 2)),
    ("aclinherit", "passthrough", (2, 0)),
    ("logbias", "throughput", (2, 0)),
    ("sync", "disabled", (2, 0)),
    ("quota", "10G", (2, 0)),
    ("quota", "1.5G", (2, 0)),
    ("quota", "none", (2, 0)),
    ("refquota", "5G", (2, 0)),
    ("reservation", "1M", (2, 0)),
    ("refreservation", "none", (2, 0)),
    ("special_small_blocks", "0", (2, 0)),
    ("special_small_blocks", "16K", (2, 0)),
    ("primarycache", "metadata", (2, 0)),
    ("secondarycache", "none", (2, 0)),
    ("redundant_metadata", "most", (2, 0)),
    ("redundant_metadata", "some", (2, 2)),
    ("dnodesize", "auto", (2, 0)),
    ("dnodesize", "1k", (2, 0)),
    ("snapdir", "visible", (2, 0)),
    ("checksum", "sha256", (2, 0)),
    ("checksum", "blake3", (2, 2)),
    ("dedup", "off", (2, 0)),
    ("copies", "2", (2, 0)),
    ("canmount", "noauto", (2, 0)),
    ("exec", "off", (2, 0)),
    ("setuid", "off", (2, 0)),
    ("devices", "off", (2, 0)),
    ("readonly", "off", (2, 0)),
    ("overlay", "on", (2, 0)),
    ("filesystem_limit", "100", (2, 0)),
    ("snapshot_limit", "none", (2, 0)),
    ("casesensitivity", "insensitive", (2, 0)),
    ("normalization", "formD", (2, 0)),
    ("utf8only", "on", (2, 0)),
    ("com.sun:auto-snapshot", "true", (2, 0)),
];

/// The normalisation table comes from what real ZFS reads back: set every allowed value, then the
/// planner must see every one of them as in sync (or it would re-set them on every run).
#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn every_allowed_value_reads_back_in_sync() {
    let version = zfs_version();
    let pool = TestPool::with_legacy_parent("pcl-values");
    let mut services = serde_json::Map::new();
    let mut names = BTreeMap::new();
    for (i, (prop, value, min)) in ALLOWED_VALUES.iter().enumerate() {
        if version < *min {
            continue;
        }
        let name = format!("v{i}");
        names.insert(name.clone(), format!("{prop}={value}"));
        let svc = match *prop {
            "recordsize" => json!({ "recordsize": value }),
            "compression" => json!({ "compression": value }),
            _ => json!({ "properties": { *prop: value } }),
        };
        services.insert(name, svc);
    }
    let config = pool.config(&Value::Object(services));
    pool.apply(&config);
    let out = pool.persistctl(&config, &["plan", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let drifting: Vec<String> = v["plan"]["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] != "in-sync" || !d["findings"].as_array().unwrap().is_empty())
        .map(|d| format!("{} -> {}", names[d["service"].as_str().unwrap()], d))
        .collect();
    assert!(drifting.is_empty(), "values that do not read back in sync on {version:?}:\n{}", drifting.join("\n"));
    assert_eq!(out.status.code(), Some(0));
}

/// (name, owner, recordsize, compression, com.sun:auto-snapshot, mode) as the seed's matrix asks.
type ExpectedService = (&'static str, &'static str, &'static str, &'static str, &'static str, u32);

/// Makes a system user (in the VM's throwaway root) unless it exists.
fn ensure_user(name: &str) {
    if run("id", &["-u", name]).status.success() {
        return;
    }
    ok("useradd", &["--system", "--no-create-home", "--user-group", name]);
}

/// The contract between the Nix module and the binary: the JSON that `nix/render.nix` renders from
/// `examples/` (committed as `tests/fixtures/rendered`, kept current by `tests/nix_eval.rs`) applied to
/// pools laid out like the seed's hosts gives exactly the datasets and the seed's property matrix.
#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn the_rendered_examples_apply_the_seed_matrix() {
    let fixtures = repo_file("tests/fixtures/rendered");
    let hosts: [(&str, &str, &str, &[ExpectedService]); 2] = [
        (
            "forge",
            "tank",
            "tank/persist",
            &[
                ("plex", "plex", "1048576", "lz4", "false", 0o750),
                ("radarr", "radarr", "16384", "lz4", "true", 0o700),
                ("sonarr", "sonarr", "16384", "lz4", "true", 0o700),
            ],
        ),
        ("luna", "rpool", "rpool/safe/persist", &[("home-assistant", "hass", "16384", "lz4", "true", 0o700)]),
    ];
    for (host, pool_name, parent, services) in hosts {
        let pool = TestPool::new(pool_name);
        ok("zfs", &["create", "-p", "-o", "mountpoint=legacy", parent]);
        std::fs::create_dir_all("/persist").unwrap();
        ok("mount", &["-t", "zfs", parent, "/persist"]);
        for (_, owner, ..) in services {
            ensure_user(owner);
        }
        let config = fixtures.join(format!("{host}.json"));
        let out = pool.persistctl(&config, &["apply"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{host}: {text}{}", String::from_utf8_lossy(&out.stderr));
        let children = ok("zfs", &["list", "-H", "-o", "name", "-r", "-d", "1", parent]);
        let mut want: Vec<String> = services.iter().map(|s| format!("{parent}/{}", s.0)).collect();
        want.insert(0, parent.to_string());
        assert_eq!(children.lines().collect::<Vec<_>>(), want, "{host}: exactly the declared datasets");
        for (name, owner, recordsize, compression, snapshot, mode) in services {
            let ds = format!("{parent}/{name}");
            assert_eq!(zfs_get(&ds, "recordsize").0, *recordsize, "{ds}");
            assert_eq!(zfs_get(&ds, "compression").0, *compression, "{ds}");
            assert_eq!(zfs_get(&ds, "com.sun:auto-snapshot").0, *snapshot, "{ds}");
            assert_eq!(zfs_get(&ds, "mountpoint").0, format!("/persist/{name}"), "{ds}");
            let meta = std::fs::metadata(format!("/persist/{name}")).unwrap();
            let uid: u32 = ok("id", &["-u", owner]).trim().parse().unwrap();
            assert_eq!((meta.uid(), meta.mode() & 0o7777), (uid, *mode), "{ds}");
        }
        assert_eq!(pool.persistctl(&config, &["plan"]).status.code(), Some(0), "{host}: in sync after one apply");
        ok("umount", &["-R", "/persist"]);
    }
}

/// At boot the legacy parent may not be mounted yet: a child mounted now would be hidden by it.
#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn nothing_is_created_under_a_legacy_parent_that_is_not_mounted() {
    let pool = TestPool::with_legacy_parent("pcl-unmounted");
    ok("umount", &[&pool.parent_mount()]);
    let config = pool.config(&json!({ "sonarr": { "recordsize": "16K" } }));
    let before = pool.history();
    let out = pool.persistctl(&config, &["apply"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("(mountpoint=legacy) is not mounted"), "{text}");
    assert_eq!(pool.history(), before, "no writes");
    ok("mount", &["-t", "zfs", &pool.parent(), &pool.parent_mount()]);
    pool.apply(&config);
    assert!(is_mountpoint(&format!("{}/sonarr", pool.parent_mount())));
}

/// `find -printf` of every entry below `root`: path, type, mode, owner, group, size, mtime, link target,
/// sorted; plus the user xattrs of each file (what `cp -a` must carry over).
fn tree_listing(root: &str) -> String {
    let out = ok("find", &[root, "-mindepth", "1", "-printf", "%P %y %m %U %G %s %T@ %l\n"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    let xattrs = ok(
        "python3",
        &[
            "-c",
            "import os,sys\nfor d,_,fs in sorted(os.walk(sys.argv[1])):\n for f in sorted(fs):\n  p=os.path.join(d,f)\n  print(os.path.relpath(p,sys.argv[1]),[(a,os.getxattr(p,a)) for a in sorted(os.listxattr(p))])",
            root,
        ],
    );
    format!("{}\n{xattrs}", lines.join("\n"))
}

/// A service's old data at `root`: owned by another uid, odd modes, a symlink, a hard link, a user
/// xattr and 4 MB of random bytes.
fn old_service_data(root: &str) {
    let script = format!(
        "set -e; mkdir -p '{root}/Backups/daily'; head -c 4M /dev/urandom > '{root}/Backups/daily/b.zip'; \
         echo sqlite > '{root}/sonarr.db'; ln -s sonarr.db '{root}/current.db'; ln '{root}/sonarr.db' '{root}/hard.db'; \
         chmod 640 '{root}/sonarr.db'; chmod 750 '{root}'; chown -R 1234:2345 '{root}'; \
         python3 -c 'import os,sys; os.setxattr(sys.argv[1], \"user.origin\", b\"legacy\")' '{root}/sonarr.db'"
    );
    ok("sh", &["-c", &script]);
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn migrate_moves_legacy_data_into_its_dataset_exactly_and_keeps_the_old_copy() {
    let pool = TestPool::with_legacy_parent("pcl-migrate");
    let old = format!("{}/var/lib/sonarr", pool.parent_mount());
    old_service_data(&old);
    let want = tree_listing(&old);
    let config = pool.config(&json!({ "sonarr": { "recordsize": "16K" } }));
    let out = pool.persistctl(&config, &["migrate", "sonarr", "--from", &old, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["event"], "migrated", "{report}");
    let ds = format!("{}/sonarr", pool.parent());
    let mp = format!("{}/sonarr", pool.parent_mount());
    assert!(is_mountpoint(&mp));
    assert_eq!(zfs_get(&ds, "recordsize").0, "16384", "created as apply would");
    assert_eq!(tree_listing(&mp), want, "every entry, owner, mode, mtime, link and xattr");
    let (a, b) =
        (std::fs::metadata(format!("{mp}/sonarr.db")).unwrap(), std::fs::metadata(format!("{mp}/hard.db")).unwrap());
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "the hard link is still one file");
    ok("cmp", &[&format!("{old}/Backups/daily/b.zip"), &format!("{mp}/Backups/daily/b.zip")]);
    let root = std::fs::metadata(&mp).unwrap();
    assert_eq!((root.uid(), root.gid(), root.mode() & 0o7777), (1234, 2345, 0o750), "the root's owner and mode");
    assert_eq!(tree_listing(&old), want, "the old data is kept untouched");
    assert_eq!(zfs_get(&ds, "persistctl:restored-from"), ("migrate".into(), "local".into()));
    assert_eq!(zfs_get(&ds, "persistctl:restored-snapshot").0, old);
    assert_eq!(pool.persistctl(&config, &["plan"]).status.code(), Some(0), "in sync afterwards");
    let before = pool.history();
    let again = pool.persistctl(&config, &["migrate", "sonarr", "--from", &old]);
    assert!(again.status.success() && text(&again).contains("already-migrated"), "{}", text(&again));
    assert_eq!(pool.history(), before, "a rerun writes nothing");
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn migrate_in_place_moves_the_directory_aside_and_mounts_the_dataset_on_its_path() {
    let pool = TestPool::with_legacy_parent("pcl-migrate-in-place");
    let path = format!("{}/hass", pool.parent_mount());
    old_service_data(&path);
    let want = tree_listing(&path);
    let config = pool.config(&json!({ "hass": { "recordsize": "16K" } }));
    let refused = pool.persistctl(&config, &["apply"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains(&format!("persistctl migrate hass --from {path}")), "{}", text(&refused));
    // A process working in the directory blocks the migration; nothing moves.
    let mut user = Command::new("sleep").arg("60").current_dir(&path).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let busy = pool.persistctl(&config, &["migrate", "hass", "--from", &path]);
    let _ = user.kill();
    let _ = user.wait();
    assert_eq!(busy.status.code(), Some(1), "{}", text(&busy));
    assert!(text(&busy).contains("is in use"), "{}", text(&busy));
    assert_eq!(tree_listing(&path), want);
    let out = pool.persistctl(&config, &["migrate", "hass", "--from", &path]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(is_mountpoint(&path), "the dataset is mounted on the old path");
    assert_eq!(tree_listing(&path), want);
    assert_eq!(tree_listing(&format!("{path}.persistctl-migrated")), want, "the old directory is kept aside");
    assert_eq!(pool.persistctl(&config, &["plan"]).status.code(), Some(0), "in sync afterwards");
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn kill_9_during_a_migration_then_rerun_gives_the_exact_data() {
    use std::time::{Duration, Instant};
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let pool = TestPool::with_legacy_parent("pcl-migrate-kill");
    let old = format!("{}/var/lib/sonarr", pool.parent_mount());
    old_service_data(&old);
    let want = tree_listing(&old);
    let config = pool.config(&json!({ "sonarr": {} }));
    let ds = format!("{}/sonarr", pool.parent());
    let mp = format!("{}/sonarr", pool.parent_mount());
    let migrate = || {
        let mut cmd = pool.command(&config, &["migrate", "sonarr", "--from", &old]);
        cmd.stdout(std::process::Stdio::null());
        cmd.stderr(std::process::Stdio::null());
        cmd
    };
    let started = Instant::now();
    assert!(migrate().status().unwrap().success());
    let full = started.elapsed();
    let trials: u64 = std::env::var("MIGRATE_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(12);
    let mut seed: u64 = 0x5eed_0004;
    let (mut failures, mut killed_mid_run) = (0, 0);
    for trial in 0..trials {
        // Test-only reset (persistctl never destroys a dataset).
        ok("zfs", &["destroy", "-r", &ds]);
        let _ = std::fs::remove_dir(&mp);
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let span = u64::try_from(full.as_micros()).unwrap_or(u64::MAX) * 12 / 10 + 1;
        let delay = Duration::from_micros((seed >> 33) % span);
        // Its cp too, as systemd's cgroup kill or a power loss would (a kill -9 of persistctl alone
        // leaves cp reading the source, and the rerun refuses: "in use by pid N (cp)").
        if common::orphans::kill_9_after(migrate().spawn().unwrap(), delay) {
            killed_mid_run += 1;
        }
        let out = pool.persistctl(&config, &["migrate", "sonarr", "--from", &old]);
        let staging: Vec<String> = std::fs::read_dir(&mp)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let staging: Vec<&String> = staging.iter().filter(|n| n.starts_with(".persistctl")).collect();
        if !(out.status.success() && tree_listing(&mp) == want && staging.is_empty()) {
            failures += 1;
            eprintln!("trial {trial} (kill after {delay:?}): FAILED {} staging {staging:?}", text(&out));
        }
    }
    println!(
        "fault injection migrate: seed 0x5eed0004, {trials} trials ({killed_mid_run} killed mid-run), failures \
         {failures}, full run {full:?}"
    );
    assert_eq!(failures, 0);
    assert_eq!(tree_listing(&old), want, "the source is never changed");
}
