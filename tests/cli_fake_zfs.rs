//! The real binary against a fake `zfs` (tests/fakes/zfs): exact command lines, no-op re-runs,
//! dry runs, failures, bad configs. Fast and host-only; every capability here is also proven on real
//! `OpenZFS` in `real_zfs.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure
#![allow(clippy::needless_raw_string_hashes)] // expect-test (UPDATE_EXPECT=1) writes r#"..."#

mod common;

use std::path::Path;
use std::process::Command;

use common::fake::{Fake, argv_log, writes};
use common::{stderr, stdout};
use expect_test::expect;
use serde_json::{Value, json};

/// The planner's one read for the config file `config`: its properties by name, never `all`.
fn planner_read(config: &Path) -> Vec<String> {
    let validated = persistctl::config::load(config).unwrap();
    let asked = persistctl::zfs::tree_properties(&persistctl::apply::planner_properties(&validated));
    let args = persistctl::zfs::properties_tree_args("tank/persist", &asked);
    assert!(!args.contains(&"all".to_string()) && args[8].ends_with(",type"), "{args:?}");
    args
}

fn seed_services() -> Value {
    json!({
        "sonarr": { "recordsize": "16K", "compression": "lz4", "properties": { "com.sun:auto-snapshot": "true" } },
        "plex": { "recordsize": "1M", "compression": "lz4", "properties": { "com.sun:auto-snapshot": "false" } },
    })
}

fn base_pool() -> Value {
    json!({ "tank": { "local": {} }, "tank/persist": { "local": { "mountpoint": "legacy" }, "mounted": true } })
}

#[test]
fn apply_from_scratch_issues_exact_command_lines() {
    let fake = Fake::new(&base_pool());
    let config = fake.write_services(&seed_services());
    let out = fake.run(&config, &["apply"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let calls = fake.take_calls();
    assert_eq!(calls[0], planner_read(&config), "one read first");
    expect![[r#"
        zfs create -o recordsize=1M -o compression=lz4 -o com.sun:auto-snapshot=false -o mountpoint=<tmp>/persist/plex -o overlay=off tank/persist/plex
        zfs create -o recordsize=16K -o compression=lz4 -o com.sun:auto-snapshot=true -o mountpoint=<tmp>/persist/sonarr -o overlay=off tank/persist/sonarr"#]].assert_eq(&fake.anonymized(&argv_log(&calls[1..])));
    assert!(stdout(&out).contains("summary: 2 action(s) done, 0 failed"), "{}", stdout(&out));
}

#[test]
fn second_apply_makes_no_zfs_writes() {
    let fake = Fake::new(&base_pool());
    let config = fake.write_services(&seed_services());
    assert!(fake.run(&config, &["apply"], &[]).status.success());
    fake.take_calls();
    let out = fake.run(&config, &["apply"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fake.take_calls(), vec![planner_read(&config)], "exactly one zfs process, a read");
    let plan = fake.run(&config, &["plan"], &[]);
    assert_eq!(plan.status.code(), Some(0), "in sync");
    assert!(stdout(&plan).contains("in sync: nothing to do"));
}

#[test]
fn dry_run_and_dry_activate_make_no_zfs_writes() {
    for (args, env) in
        [(&["apply", "--dry-run"][..], &[][..]), (&["apply"][..], &[("NIXOS_ACTION", "dry-activate")][..])]
    {
        let fake = Fake::new(&base_pool());
        let config = fake.write_services(&seed_services());
        let before = fake.state();
        let out = fake.run(&config, args, env);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("dry run: nothing is changed"));
        assert!(stdout(&out).contains("create recordsize=16K"), "{}", stdout(&out));
        assert!(writes(&fake.take_calls()).is_empty());
        assert_eq!(fake.state(), before);
    }
}

#[test]
fn a_failing_set_exits_1_while_other_datasets_are_applied() {
    let mut pool = base_pool();
    pool["tank/persist/plex"] = json!({ "local": { "recordsize": "131072" } });
    pool["tank/persist/sonarr"] = json!({ "local": { "recordsize": "131072" } });
    let fake = Fake::new(&pool);
    let config = fake.write_services(&seed_services());
    let out = fake.run(&config, &["apply"], &[("FAKE_ZFS_FAIL", "set:tank/persist/plex")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("FAILED: `"), "{}", stdout(&out));
    assert!(stdout(&out).contains("fake failure injected by the test"), "stderr of zfs is in the report");
    let state = fake.state();
    assert_eq!(state["datasets"]["tank/persist/sonarr"]["local"]["recordsize"], "16384", "sonarr still applied");
    assert_eq!(state["datasets"]["tank/persist/plex"]["local"]["recordsize"], "131072");
}

#[test]
fn bad_configs_make_zero_zfs_calls_and_name_the_field() {
    let fake = Fake::new(&base_pool());
    let cases: &[(&str, &str)] = &[
        (
            r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/p", "services": {"s": {"recordsize": "15K"}}}}"#,
            "datasets.services.s.recordsize: \"15K\" is not a power of two between 512 and 16M",
        ),
        (
            r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/p", "services": {"s": {"compression": "fast"}}}}"#,
            "datasets.services.s.compression",
        ),
        (
            r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/p", "services": {"s": {"mode": "rwx"}}}}"#,
            "datasets.services.s.mode",
        ),
        (
            r#"{"version": 1, "datasets": {"parentDataset": "tank persist;", "parentMount": "/p"}}"#,
            "datasets.parentDataset",
        ),
        (
            r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/p", "services": {"s": {"properties": {"used": "1"}}}}}"#,
            "read-only",
        ),
        (r#"{"version": 3}"#, "unsupported config version 3"),
        (
            r#"{"version": 1, "datasets": {"parentDataset": "--help", "parentMount": "/p", "services": {"s": {}}}}"#,
            "pool name \"--help\" must start with a letter",
        ),
        (
            r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/p", "services": {"s": {"mode": "0700", "mode": "0777"}}}}"#,
            "datasets.services.s.mode: duplicate key \"mode\"",
        ),
        (
            r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/p", "services": {"s": {"preseed": {"timeout": 9223372036854775808}}}}}"#,
            "datasets.services.s.preseed.timeout",
        ),
        ("not json", "not valid JSON"),
    ];
    for (text, needle) in cases {
        let config = fake.write_raw_config(text);
        for cmd in [&["apply"][..], &["plan"][..], &["show"][..]] {
            let out = fake.run(&config, cmd, &[]);
            assert_eq!(out.status.code(), Some(1), "{text}");
            assert!(stderr(&out).contains(needle), "{cmd:?} {text}: {}", stderr(&out));
        }
        let out = fake.run(&config, &["check-config", config.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(needle));
    }
    assert!(fake.take_calls().is_empty(), "no zfs process for a bad config");
}

#[test]
fn check_config_accepts_a_good_file_without_zfs() {
    let fake = Fake::new(&base_pool());
    let config = fake.write_services(&seed_services());
    let out = fake.run(&config, &["check-config", config.to_str().unwrap()], &[("PERSISTCTL_ZFS", "/nonexistent/zfs")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ok (2 service dataset(s) under tank/persist)"));
}

#[test]
fn pool_not_imported_is_skipped_unless_required() {
    let fake = Fake::new(&json!({ "rpool": { "local": {} } }));
    let config = fake.write_services(&seed_services());
    let out = fake.run(&config, &["apply"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("not imported"), "{}", stderr(&out));
    assert!(stdout(&out).contains("pool tank is not imported"));
    let out = fake.run(&config, &["apply", "--require-pools"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let calls = fake.take_calls();
    assert!(writes(&calls).is_empty());
    assert!(
        calls.iter().any(|c| c[..2] == ["list".to_string(), "-H".to_string()]),
        "pool checked only after the get failed"
    );
}

#[test]
fn missing_parent_fails_closed_without_create_parent() {
    let fake = Fake::new(&json!({ "tank": { "local": {} } }));
    let config = fake.write_services(&seed_services());
    let out = fake.run(&config, &["apply"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("parent dataset tank/persist does not exist"), "{}", stdout(&out));
    assert!(writes(&fake.take_calls()).is_empty());
}

#[test]
fn plan_exit_codes_and_json_shape() {
    let fake = Fake::new(&base_pool());
    let config = fake.write_services(&seed_services());
    let out = fake.run(&config, &["plan", "--json"], &[]);
    assert_eq!(out.status.code(), Some(2), "changes pending");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["inSync"], false);
    assert_eq!(v["plan"]["datasets"][0]["service"], "plex");
    assert_eq!(v["plan"]["datasets"][0]["status"], "create");
    assert_eq!(v["plan"]["datasets"][0]["actions"][0]["kind"], "create");
    assert_eq!(v["plan"]["datasets"][0]["actions"][0]["properties"][0], json!(["recordsize", "1M"]));
    let out = fake.run(&config, &["apply", "--json"], &[]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failed"], false);
    assert_eq!(v["results"][1]["outcome"], "done");
    assert_eq!(v["results"][1]["dataset"], "tank/persist/sonarr");
    assert_eq!(fake.run(&config, &["plan"], &[]).status.code(), Some(0));
}

#[test]
fn show_lists_the_tree_with_sources() {
    let fake = Fake::new(&base_pool());
    let config = fake.write_services(&seed_services());
    fake.run(&config, &["apply"], &[]);
    let out = fake.run(&config, &["show"], &[]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.lines().next().unwrap().starts_with("DATASET"), "{text}");
    assert!(
        text.lines().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["tank/persist/sonarr", "recordsize", "16384", "local"]
        ),
        "{text}"
    );
    let out = fake.run(&config, &["show", "--json"], &[]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let row =
        rows.iter().find(|r| r["dataset"] == "tank/persist/plex" && r["property"] == "com.sun:auto-snapshot").unwrap();
    assert_eq!(row["value"], "false");
    assert_eq!(row["managed"], true);
}

#[test]
fn names_with_spaces_and_shell_characters_pass_through_argv_untouched() {
    let fake = Fake::new(&json!({ "tank": { "local": {} }, "tank/my persist": { "local": {}, "mounted": true } }));
    let root = fake.mount_root();
    let text = json!({
        "version": 1,
        "datasets": { "parentDataset": "tank/my persist", "parentMount": format!("{root} x"),
                      "services": { "my app": { "properties": { "note:x": "it's \"q\"; $(touch /tmp/pwned)" } } } }
    });
    let config = fake.write_raw_config(&text.to_string());
    let out = fake.run(&config, &["apply"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = fake.take_calls();
    assert_eq!(
        calls[1],
        [
            "create",
            "-o",
            "note:x=it's \"q\"; $(touch /tmp/pwned)",
            "-o",
            &format!("mountpoint={root} x/my app"),
            "-o",
            "overlay=off",
            "tank/my persist/my app"
        ]
    );
    assert!(!Path::new("/tmp/pwned").exists());
    let out = fake.run(&config, &["apply"], &[]);
    assert!(out.status.success());
    assert!(writes(&fake.take_calls()).is_empty(), "second run is a no-op with odd names too");
}

#[test]
fn never_mounts_over_a_directory_that_holds_files() {
    let fake = Fake::new(&base_pool());
    let config = fake.write_services(&seed_services());
    let occupied = fake.path("persist/sonarr");
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("sonarr.db"), "precious").unwrap();
    let out = fake.run(&config, &["apply"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("would hide"), "{}", stdout(&out));
    let calls = fake.take_calls();
    let created: Vec<&String> = writes(&calls).iter().map(|c| c.last().unwrap()).collect();
    assert_eq!(created, ["tank/persist/plex"], "only the free dataset is created");
    assert_eq!(std::fs::read_to_string(occupied.join("sonarr.db")).unwrap(), "precious");
}

#[test]
fn a_held_lock_makes_apply_wait_then_fail_without_writes() {
    let fake = Fake::new(&base_pool());
    let config = fake.write_services(&seed_services());
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(fake.path("lock")).unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let out = fake.run(&config, &["apply", "--lock-timeout", "1"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("another persistctl held it"), "{}", stderr(&out));
    assert!(fake.take_calls().is_empty());
    drop(held);
    assert!(fake.run(&config, &["apply"], &[]).status.success());
}

#[test]
fn guard_starts_a_service_only_on_its_own_mounted_dataset() {
    let fake = Fake::new(&base_pool());
    let config = fake.write_services(&seed_services());
    let table = fake.path("state.json.mountinfo").display().to_string();
    let env = [("PERSISTCTL_MOUNTINFO", table.as_str())];
    std::fs::write(&table, "").unwrap();
    // Nothing applied yet: no dataset is mounted, so both are refused, each named; zfs is never run.
    let out = fake.run(&config, &["guard", "sonarr", "plex"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for dataset in ["tank/persist/sonarr", "tank/persist/plex"] {
        assert!(stderr(&out).contains(dataset), "{}", stderr(&out));
    }
    assert!(fake.take_calls().is_empty(), "guard never runs zfs");
    assert!(fake.run(&config, &["apply"], &[]).status.success());
    let out = fake.run(&config, &["guard", "sonarr", "plex"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    // The dataset is empty while the service's old directory holds data: refused, naming migrate.
    let old = fake.path("old-sonarr");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("sonarr.db"), "data").unwrap();
    let old_arg = format!("sonarr={}", old.display());
    // A visible snapshot directory (snapdir=visible) is not data either.
    std::fs::create_dir_all(fake.path("persist/sonarr/.zfs")).unwrap();
    let out = fake.run(&config, &["guard", "sonarr", "--old-path", &old_arg], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("persistctl migrate sonarr --from {}", old.display())), "{}", stderr(&out));
    // Once the dataset holds data, the old directory no longer matters.
    std::fs::write(fake.path("persist/sonarr/sonarr.db"), "data").unwrap();
    let out = fake.run(&config, &["guard", "sonarr", "--old-path", &old_arg], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    // An unknown service is an error naming it.
    let out = fake.run(&config, &["guard", "nope"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
}

#[test]
fn a_zfs_that_never_returns_is_killed_at_its_deadline() {
    let fake = Fake::new(&base_pool());
    let config = fake.write_services(&seed_services());
    // A stand-in for a zfs blocked on a suspended pool: it never answers.
    let hang = fake.path("hanging-zfs");
    common::write_script(&hang, "#!/bin/sh\nexec sleep 600\n");
    let started = std::time::Instant::now();
    let out = fake.run(&config, &["--zfs-timeout", "2", "apply"], &[("PERSISTCTL_ZFS", hang.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out after"), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "returned in {:?}", started.elapsed());
}

#[test]
fn apply_leaves_a_dataset_alone_while_another_run_owns_it() {
    let fake = Fake::new(&base_pool());
    let config = fake.write_services(&seed_services());
    // A preseed restoring sonarr holds sonarr's own lock (stood in for by flock(1)).
    let own = format!("{}.tank%2Fpersist%2Fsonarr", fake.path("lock").display());
    let mut holder = Command::new("flock").args([own.as_str(), "sleep", "30"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = fake.run(&config, &["apply"], &[]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(out.status.success(), "deferred is not a failure: {}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("left alone"), "{}", stdout(&out));
    let creates: Vec<String> =
        writes(&fake.take_calls()).iter().filter(|c| c[0] == "create").map(|c| c.last().unwrap().clone()).collect();
    assert_eq!(creates, ["tank/persist/plex"], "only the dataset nobody owns");
}

#[test]
fn create_parent_makes_missing_ancestors_unmounted_one_by_one() {
    let fake = Fake::new(&json!({ "tank": { "local": {}, "mounted": false } }));
    let root = fake.mount_root();
    let text = json!({
        "version": 1,
        "datasets": { "parentDataset": "tank/a/persist", "parentMount": root, "createParent": true,
                      "services": { "app": {} } }
    });
    let config = fake.write_raw_config(&text.to_string());
    let out = fake.run(&config, &["apply"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let creates = fake.take_writes();
    // The ancestor unmounted, then the parent, then the service: one by one, never `create -p`.
    expect![[r#"
        zfs create -o canmount=off tank/a
        zfs create -o mountpoint=<tmp>/persist -o overlay=off tank/a/persist
        zfs create -o mountpoint=<tmp>/persist/app -o overlay=off tank/a/persist/app"#]]
    .assert_eq(&fake.anonymized(&argv_log(&creates)));
    assert!(creates.iter().all(|c| !c.contains(&"-p".to_string())), "{creates:?}");
    assert_eq!(fake.state()["datasets"]["tank/a"]["mounted"], false);
}

#[test]
fn durations_too_large_are_refused_by_the_parser_not_a_panic() {
    let fake = Fake::new(&base_pool());
    let config = fake.write_services(&seed_services());
    let huge = "9223372036854775808"; // 2^63 seconds: once a panic in `Instant + Duration`
    let cases: &[&[&str]] = &[
        &["--lock-timeout", huge, "apply"],
        &["migrate", "sonarr", "--from", "/x", "--timeout", huge],
        &["migrate", "sonarr", "--from", "/x", "--timeout", "604801"],
        &["status", "--restic-timeout", huge],
        &["status", "--restic-timeout", "0"],
    ];
    for args in cases {
        let out = fake.run(&config, args, &[]);
        assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {}", stderr(&out));
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("not in 0..=604800") || stderr(&out).contains("not in 1..=604800"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(fake.take_calls().is_empty(), "no zfs process");
}

#[test]
fn apply_with_a_huge_table_cell_reports_instead_of_panicking() {
    let fake = Fake::new(&base_pool());
    let props: serde_json::Map<String, Value> =
        (0..10).map(|i| (format!("note:p{i}"), Value::String("v".repeat(8000)))).collect();
    let config = fake.write_services(&json!({"big": {"properties": props}}));
    let out = fake.run(&config, &["apply"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("big"), "the report is printed: {}", &stdout(&out)[..stdout(&out).len().min(300)]);
    assert!(writes(&fake.take_calls()).iter().any(|c| c[0] == "create"));
}
