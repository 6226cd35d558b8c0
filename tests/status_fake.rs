//! `persistctl status` against the fake `zfs` (tests/fakes/zfs) and fake `restic` (tests/fakes/restic):
//! Nagios exit codes, worst-first table, JSON, the Prometheus textfile, the state file and its notify hook,
//! and how many zfs processes one run costs. The same on real OpenZFS, sanoid, syncoid and restic:
//! `status_real.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure
#![allow(clippy::needless_raw_string_hashes)] // expect-test (UPDATE_EXPECT=1) writes r#"..."#

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::fake::Fake;
use common::text;
use expect_test::expect;
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const H: i64 = 3600;

/// tank/persist with `a` (auto-snapshot, two snapshots, replicated to backup/a) and `b` (nothing), a
/// restic repository with a backup of `a` an hour old.
fn lab(snapshot_age: i64, common_age: i64) -> Fake {
    let fake = Fake::empty();
    let mount = fake.path("persist");
    std::fs::create_dir_all(mount.join("a")).unwrap();
    std::fs::create_dir_all(mount.join("b")).unwrap();
    fake.set_datasets(&json!({
        "tank": { "local": {} },
        "tank/persist": { "local": { "mountpoint": mount.display().to_string() } },
        "tank/persist/a": {
            "local": { "mountpoint": mount.join("a").display().to_string(), "com.sun:auto-snapshot": "true" },
            "mounted": true,
            "snapshots": ["synced", "newest"],
            "snapshot_info": {
                "synced": { "creation": NOW - common_age, "guid": "g1" },
                "newest": { "creation": NOW - snapshot_age, "guid": "g2" }
            }
        },
        "tank/persist/b": { "local": { "mountpoint": mount.join("b").display().to_string() }, "mounted": true },
        "backup": { "local": {} },
        "backup/a": { "local": {}, "snapshots": ["synced"], "snapshot_info": { "synced": { "creation": NOW - common_age, "guid": "g1" } } }
    }));
    std::fs::write(fake.path("password"), "pw\n").unwrap();
    backup_at(&fake, NOW - H);
    fake
}

/// The repository's one backup of `a`, taken at `time`.
fn backup_at(fake: &Fake, time: i64) {
    let stamp = Command::new("date").args(["-u", "-d", &format!("@{time}"), "+%Y-%m-%dT%H:%M:%SZ"]).output().unwrap();
    let a = fake.path("persist/a").display().to_string();
    fake.restic_repo_json(
        "pw",
        &json!([{ "id": "0123456789abcdef", "time": String::from_utf8(stamp.stdout).unwrap().trim(), "tags": ["a"],
                  "paths": [a], "hostname": "forge", "tree": a }]),
    );
}

/// The config: `a` and `b`, a's replica and backup, the preseed status file, and `monitoring`'s keys.
fn write_config(fake: &Fake, monitoring: &Value) -> PathBuf {
    let base = json!({
        "replication": { "a": { "dataset": "backup/a" } },
        "backups": { "a": { "repository": fake.path("repo").display().to_string(),
                            "passwordFile": fake.path("password").display().to_string() } },
        "preseedStatusFile": fake.path("preseed.json").display().to_string()
    });
    let mut config = common::config::datasets(
        "tank/persist",
        &fake.mount_root(),
        &json!({ "a": { "properties": { "com.sun:auto-snapshot": "true" } }, "b": {} }),
    );
    config["monitoring"] = common::config::merged(&base, monitoring);
    fake.write_config(&config)
}

/// `persistctl status --now NOW args`.
fn status(fake: &Fake, config: &Path, args: &[&str]) -> Output {
    let now = NOW.to_string();
    let mut all = vec!["status", "--now", &now];
    all.extend_from_slice(args);
    fake.run(config, &all, &[])
}

/// `persistctl status --json`: (exit code, JSON).
fn status_json(fake: &Fake, config: &Path) -> (i32, Value) {
    let out = status(fake, config, &["--json"]);
    (out.status.code().unwrap(), serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out))))
}

fn state_of<'a>(json: &'a Value, service: &str, check: &str) -> &'a str {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == service && c["check"] == check)
        .and_then(|c| c["state"].as_str())
        .unwrap_or_else(|| panic!("no {check} for {service}: {json:#}"))
}

#[test]
fn all_fresh_is_ok_and_exit_0() {
    let fake = lab(H, H);
    let config = write_config(&fake, &json!({}));
    let (code, json) = status_json(&fake, &config);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["state"], "ok");
    assert_eq!(state_of(&json, "a", "replication-lag"), "ok");
    assert_eq!(state_of(&json, "a", "backup-age"), "ok");
    let a = &json["datasets"][0];
    assert_eq!(
        a["replication"],
        json!({ "kind": "common", "target": "backup/a", "snapshot": "synced", "creation": NOW - H })
    );
    assert_eq!(a["snapshots"]["count"], 2);
    assert_eq!(a["backup"]["kind"], "newest");
}

#[test]
fn each_level_maps_to_its_nagios_exit_code() {
    // (snapshot age, lag, thresholds, exit code, state)
    let cases: &[(i64, i64, Value, i32, &str)] = &[
        (H, 13 * H, json!({}), 1, "warning"),
        (H, 25 * H, json!({}), 2, "critical"),
        (
            49 * H,
            49 * H,
            json!({ "thresholds": { "replicationLag": { "warning": null, "critical": null } } }),
            1,
            "warning",
        ),
        (H, 2 * H, json!({ "thresholds": { "replicationLag": { "warning": 3600, "critical": null } } }), 1, "warning"),
    ];
    for (snapshot_age, lag, monitoring, code, state) in cases {
        let fake = lab(*snapshot_age, *lag);
        let (got, json) = status_json(&fake, &write_config(&fake, monitoring));
        assert_eq!((got, json["state"].as_str().unwrap()), (*code, *state), "{monitoring} {lag}: {json:#}");
    }
}

#[test]
fn a_repository_that_does_not_answer_is_unknown_never_no_backup() {
    let fake = lab(H, H);
    std::fs::write(fake.path("password"), "wrong\n").unwrap();
    let (code, json) = status_json(&fake, &write_config(&fake, &json!({})));
    assert_eq!(state_of(&json, "a", "backup-age"), "unknown", "{json:#}");
    assert_eq!(code, 3);
}

#[test]
fn the_table_is_worst_first_after_the_nagios_line() {
    let fake = lab(H, 13 * H);
    std::fs::write(fake.path("preseed.json"), "{\"service\":\"b\",\"event\":\"failed\",\"detail\":\"no source\"}\n")
        .unwrap();
    let out = status(&fake, &write_config(&fake, &json!({})), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("CRITICAL: 1 critical, 1 warning, 6 ok — b preseed"), "{stdout}");
    let states: Vec<&str> =
        lines[3..].iter().take_while(|l| !l.is_empty()).map(|l| l.split_whitespace().next().unwrap()).collect();
    let mut sorted = states.clone();
    let rank = |s: &&str| ["CRITICAL", "WARNING", "UNKNOWN", "OK"].iter().position(|x| x == s).unwrap();
    sorted.sort_by_key(rank);
    assert_eq!(states, sorted, "{stdout}");
    assert!(stdout.contains("DATASET"), "{stdout}");
}

#[test]
fn one_run_is_two_zfs_gets_one_snapshot_list_and_one_per_replica() {
    let fake = lab(H, H);
    let config = write_config(&fake, &json!({}));
    let _ = fake.take_calls();
    status_json(&fake, &config);
    let calls = fake.take_calls();
    let verbs: Vec<String> = calls.iter().map(|c| format!("{} {}", c[0], c.last().unwrap())).collect();
    assert_eq!(verbs, ["get tank/persist", "get tank/persist", "list tank/persist", "list backup/a"], "{calls:?}");
    assert_eq!(calls[1][8], "used,available,quota,com.sun:auto-snapshot,type", "the second get is narrow");
    assert!(calls.iter().all(|c| c[0] == "get" || c[0] == "list"), "status never writes");
}

#[test]
fn prometheus_textfile_is_written_and_parses() {
    let fake = lab(H, 13 * H);
    let prom = fake.path("textfile/persistctl.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let out = status(&fake, &write_config(&fake, &json!({})), &["--prometheus", prom.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    expect![[r##"
        # HELP persistctl_status_state Overall state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
        # TYPE persistctl_status_state gauge
        persistctl_status_state 1
        # HELP persistctl_status_timestamp_seconds When persistctl status ran (its clock).
        # TYPE persistctl_status_timestamp_seconds gauge
        persistctl_status_timestamp_seconds 1800000000
        # HELP persistctl_check_state One check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
        # TYPE persistctl_check_state gauge
        persistctl_check_state{service="a",dataset="tank/persist/a",check="replication-lag"} 1
        persistctl_check_state{service="a",dataset="tank/persist/a",check="drift"} 0
        persistctl_check_state{service="a",dataset="tank/persist/a",check="capacity"} 0
        persistctl_check_state{service="a",dataset="tank/persist/a",check="snapshot-age"} 0
        persistctl_check_state{service="a",dataset="tank/persist/a",check="backup-age"} 0
        persistctl_check_state{service="b",dataset="tank/persist/b",check="drift"} 0
        persistctl_check_state{service="b",dataset="tank/persist/b",check="capacity"} 0
        # HELP persistctl_dataset_used_bytes The dataset's used property.
        # TYPE persistctl_dataset_used_bytes gauge
        persistctl_dataset_used_bytes{service="a",dataset="tank/persist/a"} 24576
        persistctl_dataset_used_bytes{service="b",dataset="tank/persist/b"} 24576
        # HELP persistctl_dataset_available_bytes The dataset's available property.
        # TYPE persistctl_dataset_available_bytes gauge
        persistctl_dataset_available_bytes{service="a",dataset="tank/persist/a"} 1000000000
        persistctl_dataset_available_bytes{service="b",dataset="tank/persist/b"} 1000000000
        # HELP persistctl_dataset_quota_bytes The dataset's quota (0: none).
        # TYPE persistctl_dataset_quota_bytes gauge
        persistctl_dataset_quota_bytes{service="a",dataset="tank/persist/a"} 0
        persistctl_dataset_quota_bytes{service="b",dataset="tank/persist/b"} 0
        # HELP persistctl_dataset_capacity_percent used / (used + available), percent.
        # TYPE persistctl_dataset_capacity_percent gauge
        persistctl_dataset_capacity_percent{service="a",dataset="tank/persist/a"} 0
        persistctl_dataset_capacity_percent{service="b",dataset="tank/persist/b"} 0
        # HELP persistctl_snapshot_count Snapshots of the dataset (not its children).
        # TYPE persistctl_snapshot_count gauge
        persistctl_snapshot_count{service="a",dataset="tank/persist/a"} 2
        persistctl_snapshot_count{service="b",dataset="tank/persist/b"} 0
        # HELP persistctl_snapshot_newest_age_seconds Age of the dataset's newest snapshot.
        # TYPE persistctl_snapshot_newest_age_seconds gauge
        persistctl_snapshot_newest_age_seconds{service="a",dataset="tank/persist/a"} 3600
        # HELP persistctl_replication_lag_seconds Age of the newest snapshot shared with the syncoid target (absent: no common snapshot or unknown).
        # TYPE persistctl_replication_lag_seconds gauge
        persistctl_replication_lag_seconds{service="a",dataset="tank/persist/a",target="backup/a"} 46800
        # HELP persistctl_backup_age_seconds Age of the newest restic snapshot for the service.
        # TYPE persistctl_backup_age_seconds gauge
        persistctl_backup_age_seconds{service="a",dataset="tank/persist/a"} 3600
        # HELP persistctl_preseed_failed 1 when the last preseed of the service failed closed.
        # TYPE persistctl_preseed_failed gauge
        # HELP persistctl_drift 1 when the dataset differs from the config (persistctl plan has work or problems).
        # TYPE persistctl_drift gauge
        persistctl_drift{service="a",dataset="tank/persist/a"} 0
        persistctl_drift{service="b",dataset="tank/persist/b"} 0
    "##]].assert_eq(&std::fs::read_to_string(&prom).unwrap());
    let leftovers: Vec<_> =
        std::fs::read_dir(prom.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn the_notify_hook_runs_on_a_change_of_state_only() {
    let fake = lab(H, H);
    let config = write_config(&fake, &json!({}));
    let state = fake.path("state/status-state.json");
    let log = fake.path("notified");
    let hook = format!("echo \"$PERSISTCTL_STATUS_PREVIOUS->$PERSISTCTL_STATUS_STATE\" >> {}", log.display());
    let run = |fake: &Fake| {
        status(
            fake,
            &config,
            &[
                "--state-file",
                state.to_str().unwrap(),
                "--notify-command",
                "sh",
                "--notify-command",
                "-c",
                "--notify-command",
                &hook,
            ],
        )
    };
    run(&fake); // OK on the first run: nothing to say
    assert!(!log.exists());
    std::fs::write(fake.path("preseed.json"), "{\"service\":\"a\",\"event\":\"failed\",\"detail\":\"x\"}\n").unwrap();
    run(&fake);
    run(&fake); // still critical: no second notification
    std::fs::remove_file(fake.path("preseed.json")).unwrap();
    run(&fake);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "OK->CRITICAL\nCRITICAL->OK\n");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!((saved["state"].as_str(), saved["lastRun"].as_i64()), (Some("ok"), Some(NOW)));
}

#[test]
fn failures_of_status_itself_are_unknown_exit_3() {
    let fake = lab(H, H);
    let missing = fake.path("nonexistent.json");
    let out = status(&fake, &missing, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("UNKNOWN: Failed to read config"), "{}", text(&out));
    // zfs failing is UNKNOWN too, never OK and never 1 (which would read as WARNING).
    let config = write_config(&fake, &json!({}));
    std::fs::write(fake.path("state.json"), "not json").unwrap();
    assert_eq!(status(&fake, &config, &[]).status.code(), Some(3));
}

#[test]
fn a_change_of_state_is_sent_through_the_configured_notifications() {
    let fake = lab(H, H);
    let config_path = write_config(&fake, &json!({}));
    let out = fake.path("sent");
    let hook = fake.path("hook.sh");
    common::write_script(
        &hook,
        &format!(
            "#!/bin/sh\nprintf '%s|%s\\n' \"$PERSISTCTL_NOTIFY_TEMPLATE\" \"$PERSISTCTL_NOTIFY_TITLE\" >> {}\n",
            out.display()
        ),
    );
    let mut config = common::read_json(&config_path);
    config["notifications"] =
        json!({ "backends": { "command": { "log": { "command": [hook.display().to_string()] } } } });
    std::fs::write(&config_path, config.to_string()).unwrap();
    let state = fake.path("state/status-state.json");
    let args = ["--state-file", state.to_str().unwrap()];
    status(&fake, &config_path, &args); // OK: nothing to say
    std::fs::write(fake.path("preseed.json"), "{\"service\":\"a\",\"event\":\"failed\",\"detail\":\"x\"}\n").unwrap();
    let run = status(&fake, &config_path, &args);
    assert_eq!(run.status.code(), Some(2), "critical: {}", text(&run));
    status(&fake, &config_path, &args); // unchanged: not sent again
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "status-change|Storage status: CRITICAL\n");
}
