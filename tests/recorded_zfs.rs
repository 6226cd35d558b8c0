//! What REAL OpenZFS answered to persistctl's reads, recorded on every line we test (2.3 and 2.1) by
//! `tests/fixtures/zfs/record.sh` inside the VM, fed into the public parsers and the planner here, on the
//! host, and replayed to the binary (`tests/fakes/zfs-replay`). The recorded tree (a legacy parent,
//! service datasets with local and received properties, persistctl's marks, an unmounted and a
//! `canmount=off` dataset, a mount option, snapshots, a replica) matches `tests/fixtures/zfs/config.json`.
//!
//! The first test says when the recording is stale: persistctl now asks something it was not recorded
//! answering. Then run `bash tests/fixtures/zfs/record.sh` (a VM per line, about a minute each).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure
#![allow(clippy::needless_raw_string_hashes)] // expect-test (UPDATE_EXPECT=1) writes r#"..."#

mod common;

use std::collections::BTreeMap;
use std::process::Output;

use common::fake::Fake;
use common::recorded::{self, Call};
use common::text;
use expect_test::expect;
use persistctl::config::Validated;
use persistctl::plan::{LiveState, ParentState, PathProbe, Plan};
use persistctl::zfs::list::{parse_snapshot_list, snapshot_list_args};
use persistctl::zfs::parse::{TreeParser, parse_names};
use persistctl::zfs::{LiveDataset, PropertySource, properties_tree_args, snapshots_args, tree_properties};
use serde_json::{Value, json};

/// What `status` reads besides the planner's view (`src/status/mod.rs`).
const STATUS_PROPERTIES: &[&str] = &["used", "available", "quota", "com.sun:auto-snapshot"];

fn recorded_config() -> Validated {
    persistctl::config::load(&recorded::config_path()).unwrap()
}

/// The config with `edit` applied to its JSON.
fn edited_config(edit: impl FnOnce(&mut Value)) -> Validated {
    let mut value = common::read_json(&recorded::config_path());
    edit(&mut value);
    persistctl::config::parse(&value.to_string()).unwrap()
}

fn planner_properties(config: &Validated) -> Vec<&str> {
    tree_properties(&persistctl::apply::planner_properties(config))
}

/// A recorded `zfs get` parsed row by row, as persistctl reads it: the properties are the ones its argv
/// asked for, the root its last argument.
fn parse_get(call: &Call) -> BTreeMap<String, LiveDataset> {
    assert_eq!(call.rc, 0, "{call:?}");
    assert!(call.stderr.is_empty(), "{call:?}");
    let properties: Vec<&str> = call.argv[8].split(',').collect();
    TreeParser::parse(call.argv.last().unwrap(), &properties, &call.stdout)
        .unwrap_or_else(|e| panic!("{}: {e}", call.argv.join(" ")))
}

fn value<'a>(tree: &'a BTreeMap<String, LiveDataset>, dataset: &str, property: &str) -> (&'a str, &'a PropertySource) {
    let p = &tree[dataset].properties[property];
    (p.value.as_str(), &p.source)
}

/// The live state of the recorded tree as apply would gather it: every path the planner asks about is
/// a directory where a mounted dataset of the tree is mounted, and absent elsewhere.
fn live_state(line: &str, config: &Validated) -> LiveState {
    let tree = parse_get(&recorded::call(line, "planner-get"));
    let mounted: Vec<String> = tree
        .values()
        .filter(|d| d.is_mounted())
        .filter_map(|d| d.value("mountpoint").map(String::from))
        .filter(|mp| mp.starts_with('/'))
        .collect();
    let parent = ParentState::Present(tree);
    let d = &config.config.datasets;
    let paths = persistctl::plan::paths_to_probe(&config.specs, &parent, &d.parent_mount)
        .into_iter()
        .map(|path| {
            let probe = if mounted.contains(&path) {
                PathProbe::Directory { empty: false, uid: 0, gid: 0, mode: 0o755 }
            } else {
                PathProbe::Absent
            };
            (path, probe)
        })
        .collect();
    LiveState {
        parent,
        paths,
        users: BTreeMap::new(),
        groups: BTreeMap::new(),
        zfs_version: Some(recorded::module_version(line)),
    }
}

fn plan(line: &str, config: &Validated) -> Plan {
    let d = &config.config.datasets;
    persistctl::plan::plan(
        &d.parent_dataset,
        &d.parent_mount,
        d.create_parent,
        &config.specs,
        &live_state(line, config),
    )
}

/// `render(line)` for every recorded line; they must all be the same, and that is returned.
fn on_every_line(render: impl Fn(&str) -> String) -> String {
    let lines = recorded::lines();
    let first = render(&lines[0]);
    for line in &lines[1..] {
        assert_eq!(render(line), first, "{line} differs from {}", lines[0]);
    }
    first
}

#[test]
fn every_line_is_recorded_and_the_recording_asks_what_persistctl_asks_today() {
    let lines = recorded::lines();
    assert!(lines.contains(&"2.3".to_string()) && lines.contains(&"2.1".to_string()), "{lines:?}");
    let config = recorded_config();
    let planner = planner_properties(&config);
    let target = tree_properties(persistctl::preseed::decide::TARGET_PROPERTIES);
    let expected: [(&str, Vec<String>); 9] = [
        ("planner-get", properties_tree_args("tank/persist", &planner)),
        ("missing-get", properties_tree_args("tank/nope/persist", &planner)),
        ("status-get", properties_tree_args("tank/persist", &tree_properties(STATUS_PROPERTIES))),
        ("preseed-get", properties_tree_args("tank/persist/sonarr", &target)),
        ("preseed-marked-get", properties_tree_args("tank/persist/lidarr", &target)),
        ("snapshots-of", snapshots_args("tank/persist/sonarr")),
        ("snapshots-tree", snapshot_list_args("tank/persist", None)),
        ("snapshots-replica", snapshot_list_args("tank/backup/sonarr", Some(1))),
        ("exists-list", ["list", "-H", "-o", "name", "-d", "0", "tank", "tank/nope"].map(String::from).to_vec()),
    ];
    for line in &lines {
        for (name, argv) in &expected {
            assert_eq!(
                &recorded::call(line, name).argv,
                argv,
                "{line}/{name}: persistctl reads differently now; re-record: bash tests/fixtures/zfs/record.sh"
            );
        }
    }
}

#[test]
fn the_recorded_trees_parse_row_by_row_with_every_source_form() {
    for line in recorded::lines() {
        let tree = parse_get(&recorded::call(&line, "planner-get"));
        let names: Vec<&str> = tree.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "tank/persist",
                "tank/persist/lidarr",
                "tank/persist/media",
                "tank/persist/media-cache",
                "tank/persist/media/photos",
                "tank/persist/plex",
                "tank/persist/postgres-data",
                "tank/persist/radarr",
                "tank/persist/sonarr"
            ],
            "{line}"
        );
        assert_eq!(value(&tree, "tank/persist", "mountpoint"), ("legacy", &PropertySource::Local), "{line}");
        assert_eq!(value(&tree, "tank/persist/sonarr", "recordsize"), ("16384", &PropertySource::Local), "{line}");
        assert_eq!(value(&tree, "tank/persist/lidarr", "recordsize"), ("16384", &PropertySource::Received), "{line}");
        assert_eq!(
            value(&tree, "tank/persist/lidarr", "com.sun:auto-snapshot"),
            ("true", &PropertySource::Received),
            "{line}"
        );
        assert_eq!(value(&tree, "tank/persist/media-cache", "atime"), ("off", &PropertySource::Temporary), "{line}");
        assert_eq!(
            value(&tree, "tank/persist/media/photos", "mountpoint"),
            ("/persist/media/photos", &PropertySource::Inherited("tank/persist/media".into())),
            "{line}"
        );
        assert_eq!(value(&tree, "tank/persist/radarr", "mounted"), ("no", &PropertySource::None), "{line}");
        assert_eq!(value(&tree, "tank/persist/media", "canmount"), ("off", &PropertySource::Local), "{line}");
        assert_eq!(value(&tree, "tank/persist/plex", "canmount"), ("on", &PropertySource::Default), "{line}");
        // An unset user property (`-` / `-`) is left out; the foreign one is never asked for.
        assert!(!tree["tank/persist/postgres-data"].properties.contains_key("com.sun:auto-snapshot"), "{line}");
        assert!(tree.values().all(|d| !d.properties.contains_key("note:owner")), "{line}");
        // Where the lines differ, as recorded: the -p form of an unlimited limit, the default compression.
        let (limit, compression) = match line.as_str() {
            "2.1" => ("18446744073709551615", "off"),
            _ => ("none", "on"),
        };
        assert_eq!(value(&tree, "tank/persist", "filesystem_limit").0, limit, "{line}");
        assert_eq!(value(&tree, "tank/persist", "compression"), (compression, &PropertySource::Default), "{line}");
    }
}

#[test]
fn the_narrow_reads_of_status_and_preseed_parse() {
    for line in recorded::lines() {
        let space = parse_get(&recorded::call(&line, "status-get"));
        assert_eq!(space.len(), 9, "{line}");
        for (name, dataset) in &space {
            for number in ["used", "available", "quota"] {
                let v = dataset.value(number).unwrap();
                assert!(v.parse::<u64>().is_ok(), "{line}: {name} {number}={v}");
            }
        }
        let sonarr = parse_get(&recorded::call(&line, "preseed-get"));
        assert_eq!(sonarr.keys().collect::<Vec<_>>(), ["tank/persist/sonarr"], "{line}");
        assert!(sonarr["tank/persist/sonarr"].properties.keys().all(|p| !p.starts_with("persistctl:")), "{line}");
        let lidarr = parse_get(&recorded::call(&line, "preseed-marked-get"));
        let marks: Vec<(&str, &str)> = lidarr["tank/persist/lidarr"]
            .properties
            .iter()
            .filter(|(k, v)| k.starts_with("persistctl:") && v.source == PropertySource::Local)
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            marks,
            [
                ("persistctl:restored-at", "2024-05-01T10:00:00Z"),
                ("persistctl:restored-from", "replica"),
                ("persistctl:restored-snapshot", "tank/backup/sonarr@a")
            ],
            "{line}"
        );
    }
}

#[test]
fn the_recorded_snapshot_lists_parse_and_a_received_snapshot_keeps_its_guid() {
    for line in recorded::lines() {
        let tree = recorded::call(&line, "snapshots-tree");
        assert_eq!((tree.rc, tree.stderr.as_str()), (0, ""), "{line}");
        let by_dataset = parse_snapshot_list(&tree.stdout).unwrap();
        let names = |dataset: &str| by_dataset[dataset].iter().map(|s| s.name.as_str()).collect::<Vec<_>>();
        assert_eq!(by_dataset.len(), 3, "{line}: {by_dataset:?}");
        assert_eq!(names("tank/persist/sonarr"), ["a", "b"], "{line}: oldest first");
        assert_eq!(names("tank/persist/lidarr"), ["a"], "{line}");
        assert_eq!(names("tank/persist/media/photos"), ["x"], "{line}");
        let replica = parse_snapshot_list(&recorded::call(&line, "snapshots-replica").stdout).unwrap();
        let guid = |list: &persistctl::zfs::SnapshotsByDataset, dataset: &str| list[dataset][0].guid.clone();
        assert_eq!(guid(&replica, "tank/backup/sonarr"), guid(&by_dataset, "tank/persist/sonarr"), "{line}");
        assert_eq!(guid(&by_dataset, "tank/persist/lidarr"), guid(&by_dataset, "tank/persist/sonarr"), "{line}");
        assert_ne!(by_dataset["tank/persist/sonarr"][1].guid, by_dataset["tank/persist/sonarr"][0].guid, "{line}");
        let own = recorded::call(&line, "snapshots-of");
        assert_eq!(parse_names(&own.stdout), ["tank/persist/sonarr@a", "tank/persist/sonarr@b"], "{line}");
    }
}

#[test]
fn a_missing_parent_is_zfs_saying_so_and_the_existence_read_names_what_exists() {
    for line in recorded::lines() {
        let get = recorded::call(&line, "missing-get");
        assert_eq!((get.rc, get.stdout.as_str()), (1, ""), "{line}");
        assert_eq!(get.stderr, "cannot open 'tank/nope/persist': dataset does not exist\n", "{line}");
        let list = recorded::call(&line, "exists-list");
        assert_eq!(list.rc, 1, "{line}: some names do not exist");
        assert_eq!(parse_names(&list.stdout), ["tank"], "{line}");
        assert_eq!(list.stderr, "cannot open 'tank/nope': dataset does not exist\n", "{line}");
    }
}

#[test]
fn the_recorded_tree_with_its_config_plans_nothing_on_every_line() {
    let config = recorded_config();
    let texts = on_every_line(|line| {
        let plan = plan(line, &config);
        assert_eq!(plan.actions().count(), 0, "{line}: {plan:#?}");
        assert!(!plan.has_problems(), "{line}: {plan:#?}");
        persistctl::output::plan_text(&plan)
    });
    // The same plan on every line: values are compared in the form each line reads them back.
    expect![[r#"
            SERVICE        DATASET                     STATUS   ACTION
            lidarr         tank/persist/lidarr         in-sync
            plex           tank/persist/plex           in-sync
            postgres-data  tank/persist/postgres-data  in-sync
            radarr         tank/persist/radarr         in-sync
            sonarr         tank/persist/sonarr         in-sync

            findings:
              tank/persist/postgres-data: local property atime=off is not in the config (left alone)
              tank/persist/radarr: local property canmount=noauto is not in the config (left alone)
              tank/persist/radarr: not mounted: owner/mode not checked

            unmanaged datasets under tank/persist (not in the config, untouched):
              tank/persist/media
              tank/persist/media-cache
              tank/persist/media/photos

            in sync: nothing to do
        "#]]
    .assert_eq(&texts);
}

#[test]
fn a_changed_config_plans_exactly_the_changes_on_every_line() {
    let config = edited_config(|c| {
        let services = &mut c["datasets"]["services"];
        services["sonarr"]["recordsize"] = json!("1M");
        services["lidarr"]["compression"] = json!("zstd"); // received now: set locally
        services["plex"]["properties"]["com.sun:auto-snapshot"] = json!("true");
        services["postgres-data"]["properties"]["casesensitivity"] = json!("insensitive"); // create-time only
        services["radarr"]["recordsize"] = json!("32K"); // not mounted: set all the same
        services["bazarr"] = json!({ "recordsize": "16K" });
    });
    let said = on_every_line(|line| {
        let plan = plan(line, &config);
        assert!(!plan.has_problems(), "{line}: {plan:#?}");
        let mut said: Vec<String> = plan.parent_actions.iter().map(|a| format!("parent: {}", a.describe())).collect();
        for d in &plan.datasets {
            said.extend(d.actions.iter().map(|a| format!("{}: {}", d.service, a.describe())));
            said.extend(d.findings.iter().map(|f| format!("{}: ({})", d.service, f.describe())));
        }
        said.join("\n")
    });
    expect![[r#"
        bazarr: create recordsize=16K mountpoint=/persist/bazarr overlay=off
        lidarr: set compression=zstd (was lz4)
        plex: set com.sun:auto-snapshot=true (was false)
        postgres-data: (casesensitivity is sensitive, config wants insensitive: create-time only; create a new dataset with -o casesensitivity=insensitive, copy the data into it (rsync; zfs send keeps the old value), then rename it into place)
        postgres-data: (local property atime=off is not in the config (left alone))
        radarr: set recordsize=32K (was 16384)
        radarr: (local property canmount=noauto is not in the config (left alone))
        radarr: (not mounted: owner/mode not checked)
        sonarr: set recordsize=1M (was 16384)"#]].assert_eq(&said);
}

/// persistctl with `args` against `zfs-replay` answering from `line`'s recording; also every zfs call.
fn replayed(line: &str, config: &std::path::Path, args: &[&str]) -> (Output, Vec<Vec<String>>) {
    let fake = Fake::empty();
    let log = fake.path("replay.log");
    let out = fake
        .command(config, args)
        .env("PERSISTCTL_ZFS", recorded::replay_zfs())
        .env("ZFS_REPLAY_DIR", recorded::dir(line))
        .env("ZFS_REPLAY_LOG", &log)
        .env("PERSISTCTL_PRESEED_STATUS", fake.path("preseed.json"))
        .output()
        .unwrap();
    (out, common::json_lines(&log).into_iter().map(|c| serde_json::from_value(c).unwrap()).collect())
}

#[test]
fn the_binary_plans_the_recorded_tree_in_sync_with_one_read() {
    for line in recorded::lines() {
        let (out, calls) = replayed(&line, &recorded::config_path(), &["plan"]);
        assert_eq!(out.status.code(), Some(0), "{line}: {}", text(&out));
        assert!(common::stdout(&out).ends_with("in sync: nothing to do\n"), "{line}: {}", text(&out));
        assert_eq!(calls, [recorded::call(&line, "planner-get").argv], "{line}");
    }
}

#[test]
fn the_binary_reports_a_missing_parent_from_the_recorded_answers() {
    let fake = Fake::empty();
    let mut value = common::read_json(&recorded::config_path());
    value["datasets"]["parentDataset"] = json!("tank/nope/persist");
    let config = fake.write_config(&value);
    for line in recorded::lines() {
        let (out, calls) = replayed(&line, &config, &["plan"]);
        assert_eq!(out.status.code(), Some(1), "{line}: {}", text(&out));
        assert!(text(&out).contains("parent dataset tank/nope/persist does not exist"), "{line}: {}", text(&out));
        let want = [recorded::call(&line, "missing-get").argv, recorded::call(&line, "exists-list").argv];
        assert_eq!(calls, want, "{line}");
    }
}

#[test]
fn the_binary_reads_status_from_the_recorded_answers() {
    let checks = on_every_line(|line| {
        let (out, calls) = replayed(line, &recorded::config_path(), &["status", "--json", "--now", "1800000000"]);
        assert_eq!(out.status.code(), Some(2), "{line}: the replica lags: {}", text(&out));
        let names = ["planner-get", "status-get", "snapshots-tree", "snapshots-replica"];
        let want: Vec<Vec<String>> = names.iter().map(|n| recorded::call(line, n).argv).collect();
        assert_eq!(calls, want, "{line}: the planner's read, the narrow one, the snapshots, the replica's");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        let check = |c: &Value| {
            format!(
                "{:8} {:13} {}",
                c["state"].as_str().unwrap(),
                c["service"].as_str().unwrap(),
                c["check"].as_str().unwrap()
            )
        };
        json["checks"].as_array().unwrap().iter().map(check).collect::<Vec<_>>().join("\n")
    });
    expect![[r#"
        critical sonarr        replication-lag
        warning  lidarr        snapshot-age
        warning  radarr        drift
        warning  sonarr        snapshot-age
        ok       lidarr        drift
        ok       lidarr        capacity
        ok       plex          drift
        ok       plex          capacity
        ok       postgres-data drift
        ok       postgres-data capacity
        ok       radarr        capacity
        ok       sonarr        drift
        ok       sonarr        capacity"#]]
    .assert_eq(&checks);
}
