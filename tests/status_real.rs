//! `persistctl status` against REAL OpenZFS, REAL sanoid and syncoid (Debian's 2.1) and REAL restic
//! (0.14), inside the QEMU VM: `SUITES=status_real ZFS_LINES=2.3 tests/vm/real-zfs-tests.sh`. Ignored
//! elsewhere (counted as ignored, never a silent pass).
//!
//! Two pools: `stsrc` holds the service datasets (`tests/nix/replication-vm.nix`), `stdst` receives their
//! replica. sanoid runs from the sanoid.conf the module renders (`tests/fixtures/replication/sanoid.conf`),
//! syncoid with the command the module renders (`syncoid.json`). Ages are made real by moving the VM's
//! clock forward (`date -s`), and "what if" ages by `--now` (`PERSISTCTL_NOW`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::real::{persistctl_bin, repo_file, sh};
use common::text;
use serde_json::Value;

const DIR: &str = "/tmp/status-real";
const HOUR: i64 = 3600;

fn fixture(name: &str) -> PathBuf {
    repo_file(&format!("tests/fixtures/replication/{name}"))
}

fn clock() -> i64 {
    sh("date +%s").trim().parse().unwrap()
}

struct Lab;

impl Drop for Lab {
    fn drop(&mut self) {
        for pool in ["stsrc", "stdst"] {
            let _ = Command::new("zpool").args(["destroy", "-f", pool]).output();
        }
        let _ = std::fs::remove_dir_all(DIR);
    }
}

/// One `persistctl status --json --prometheus`: (exit code, JSON, Prometheus samples).
struct Status {
    code: i32,
    json: Value,
    metrics: BTreeMap<String, i64>,
}

impl Status {
    fn check(&self, service: &str, check: &str) -> &Value {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["service"] == service && c["check"] == check)
            .unwrap_or_else(|| panic!("no {check} check for {service} in {:#}", self.json["checks"]))
    }

    fn state(&self, service: &str, check: &str) -> &str {
        self.check(service, check)["state"].as_str().unwrap()
    }
}

fn status(config: &Path, now: Option<i64>) -> Status {
    let prom = Path::new(DIR).join("textfile/persistctl.prom");
    let mut cmd = Command::new(persistctl_bin());
    cmd.arg("--config").arg(config).args(["status", "--json", "--prometheus"]).arg(&prom);
    cmd.env("PERSISTCTL_LOCK", Path::new(DIR).join("lock")).env_remove("PERSISTCTL_NOW");
    if let Some(now) = now {
        cmd.args(["--now", &now.to_string()]);
    }
    let out = cmd.output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(&out)));
    let metrics = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    let code = out.status.code().unwrap();
    // The exit code, the JSON and the textfile agree.
    let state = json["state"].as_str().unwrap();
    let want = match state {
        "ok" => 0,
        "warning" => 1,
        "critical" => 2,
        _ => 3,
    };
    assert_eq!(code, want, "exit code vs JSON state {state}:\n{}", text(&out));
    assert_eq!(metrics["persistctl_status_state"], i64::from(want));
    Status { code, json, metrics }
}

/// `name{labels} value` lines → map; checks every sample follows its `# TYPE` line.
fn parse_prometheus(text: &str) -> BTreeMap<String, i64> {
    // Every value persistctl writes is an integer (seconds, bytes, percent, states).
    let mut samples = BTreeMap::new();
    let mut family = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            family = parts.next().unwrap().to_string();
            assert_eq!(parts.next(), Some("gauge"), "{line}");
        } else if !line.starts_with('#') && !line.is_empty() {
            let (key, value) = line.rsplit_once(' ').unwrap();
            assert_eq!(key.split('{').next(), Some(family.as_str()), "sample outside its family: {line}");
            samples.insert(key.to_string(), value.parse::<i64>().unwrap_or_else(|_| panic!("bad value: {line}")));
        }
    }
    samples
}

fn syncoid() {
    // The command the module renders into services.syncoid.commands.
    let rendered: Value = serde_json::from_str(&std::fs::read_to_string(fixture("syncoid.json")).unwrap()).unwrap();
    let (_, c) = rendered["commands"].as_object().unwrap().iter().next().unwrap();
    let mut args = vec!["--no-privilege-elevation".to_string()];
    if c["recursive"] == true {
        args.push("-r".into());
    }
    args.extend([c["source"].as_str().unwrap().to_string(), c["target"].as_str().unwrap().to_string()]);
    let out = Command::new("syncoid").args(&args).output().unwrap();
    assert!(out.status.success(), "syncoid {args:?}:\n{}", text(&out));
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
#[allow(clippy::too_many_lines)] // one story, step by step: every VM boot is expensive
fn status_follows_real_sanoid_syncoid_and_restic_across_every_threshold() {
    let _ = std::fs::remove_dir_all(DIR);
    let lab = Lab;
    std::fs::create_dir_all(format!("{DIR}/textfile")).unwrap();
    for pool in ["stsrc", "stdst"] {
        sh(&format!(
            "truncate -s 256M {DIR}/{pool}.img && zpool create -f -o cachefile=none -O mountpoint=none {pool} {DIR}/{pool}.img"
        ));
    }
    sh(&format!("zfs create -o mountpoint={DIR}/persist stsrc/persist"));

    // The rendered config, plus a restic repository for app and a preseed status file.
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    assert_eq!(config["datasets"]["parentDataset"], "stsrc/persist");
    std::fs::write(format!("{DIR}/restic-password"), "pw\n").unwrap();
    config["monitoring"]["backups"]["app"] =
        serde_json::json!({ "repository": format!("{DIR}/restic"), "passwordFile": format!("{DIR}/restic-password") });
    config["monitoring"]["preseedStatusFile"] = format!("{DIR}/preseed.json").into();
    let config_path = Path::new(DIR).join("config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let apply = Command::new(persistctl_bin()).arg("--config").arg(&config_path).arg("apply").output().unwrap();
    assert!(apply.status.success(), "apply:\n{}", text(&apply));
    sh(&format!("echo data > {DIR}/persist/app/file"));

    // sanoid from the rendered sanoid.conf: app (com.sun:auto-snapshot=true) gets production snapshots.
    sh(&format!("mkdir -p {DIR}/sanoid && cp {} {DIR}/sanoid/sanoid.conf", fixture("sanoid.conf").display()));
    sh(&format!(
        "sanoid --take-snapshots --configdir={DIR}/sanoid --cache-dir={DIR}/sanoid/cache --run-dir={DIR}/sanoid/run --verbose"
    ));
    let snaps = sh("zfs list -H -o name -t snapshot -r stsrc");
    assert!(snaps.lines().any(|l| l.starts_with("stsrc/persist/app@autosnap_") && l.ends_with("_hourly")), "{snaps}");
    assert!(!snaps.contains("scratch@"), "scratch has no auto-snapshot: {snaps}");

    // Before any sync: the replica does not exist.
    let s = status(&config_path, None);
    assert_eq!(s.state("app", "replication-lag"), "critical", "{:#}", s.json);
    assert!(s.check("app", "replication-lag")["message"].as_str().unwrap().contains("does not exist"));

    // The restic backup (tag app) and a preseed that found data.
    let restic_env = format!("RESTIC_PASSWORD_FILE={DIR}/restic-password RESTIC_REPOSITORY={DIR}/restic");
    sh(&format!("{restic_env} restic init && {restic_env} restic backup --tag app {DIR}/persist/app"));
    std::fs::write(
        format!("{DIR}/preseed.json"),
        r#"{"service":"app","dataset":"stsrc/persist/app","event":"skipped","detail":"data present","at":"2024-01-01T00:00:00Z"}
"#,
    )
    .unwrap();

    syncoid();
    let t0 = clock();
    let s = status(&config_path, None);
    assert_eq!(s.code, 0, "all fresh: {:#}", s.json);
    let lag = s.check("app", "replication-lag");
    assert!(lag["value"].as_u64().unwrap() < 600, "{lag}");
    let facts = &s.json["datasets"].as_array().unwrap().iter().find(|d| d["service"] == "app").unwrap().clone();
    assert_eq!(facts["replication"]["target"], "stdst/replica/app");
    assert!(facts["replication"]["snapshot"].as_str().unwrap().starts_with("syncoid_"), "{facts}");
    assert!(facts["snapshots"]["count"].as_u64().unwrap() >= 3, "sanoid's and syncoid's: {facts}");
    assert_eq!(facts["backup"]["kind"], "newest");
    assert_eq!(s.state("app", "preseed"), "ok");
    let key =
        r#"persistctl_replication_lag_seconds{service="app",dataset="stsrc/persist/app",target="stdst/replica/app"}"#;
    assert_eq!(s.metrics[key], lag["value"].as_i64().unwrap(), "the textfile says what the JSON says");
    assert!(s.metrics.contains_key(r#"persistctl_backup_age_seconds{service="app",dataset="stsrc/persist/app"}"#));

    // What if it were later: every age threshold, crossed by the injected clock.
    let cases: &[(i64, &str, &str, &str, i32)] = &[
        (13, "warning", "ok", "ok", 1),
        (25, "critical", "warning", "ok", 2),
        (49, "critical", "critical", "warning", 2),
    ];
    for (hours, lag, backup, snapshot, code) in cases {
        let s = status(&config_path, Some(t0 + hours * HOUR));
        let got =
            (s.state("app", "replication-lag"), s.state("app", "backup-age"), s.state("app", "snapshot-age"), s.code);
        assert_eq!(got, (*lag, *backup, *snapshot, *code), "+{hours} h: {:#}", s.json["checks"]);
    }

    // Real time passes (the VM's clock moves 25 h): lag is critical, until syncoid runs again.
    sh(&format!("date -s @{} >/dev/null", t0 + 25 * HOUR));
    let before = status(&config_path, None);
    assert_eq!(before.state("app", "replication-lag"), "critical", "{:#}", before.json["checks"]);
    syncoid();
    let after = status(&config_path, None);
    assert_eq!(after.state("app", "replication-lag"), "ok", "{:#}", after.json["checks"]);
    assert!(after.check("app", "replication-lag")["value"].as_u64().unwrap() < 600);
    assert_eq!(after.state("app", "backup-age"), "warning", "the backup is 25 h old");
    assert_eq!(after.code, 1);

    // Capacity: a quota that makes the data 85 %, then 95 % of the space.
    sh(&format!("head -c 8M /dev/urandom > {DIR}/persist/app/blob && sync && zpool sync stsrc"));
    let used: u64 = sh("zfs get -H -p -o value used stsrc/persist/app").trim().parse().unwrap();
    for (pct, want) in [(85_u32, "warning"), (95_u32, "critical")] {
        sh(&format!("zfs set quota={} stsrc/persist/app", used * 100 / u64::from(pct)));
        let s = status(&config_path, None);
        assert_eq!(s.state("app", "capacity"), want, "{pct}%: {:#}", s.json["checks"]);
        let metric = s.metrics[r#"persistctl_dataset_capacity_percent{service="app",dataset="stsrc/persist/app"}"#];
        assert!((i64::from(pct) - 1..=i64::from(pct) + 1).contains(&metric), "{metric}");
    }
    sh("zfs set quota=none stsrc/persist/app");

    // A failed preseed is critical; a property changed behind the config's back is drift.
    sh(&format!(
        r#"echo '{{"service":"app","event":"failed","detail":"no source","at":"2024-01-02T00:00:00Z"}}' >> {DIR}/preseed.json"#
    ));
    sh("zfs set com.sun:auto-snapshot=false stsrc/persist/app");
    let s = status(&config_path, None);
    assert_eq!(s.state("app", "preseed"), "critical");
    assert_eq!(s.state("app", "drift"), "warning", "{:#}", s.json["checks"]);
    assert_eq!(s.code, 2);
    assert_eq!(s.json["checks"][0]["state"], "critical", "worst first");
    assert_eq!(s.metrics[r#"persistctl_preseed_failed{service="app",dataset="stsrc/persist/app"}"#], 1);
    assert_eq!(s.metrics[r#"persistctl_drift{service="app",dataset="stsrc/persist/app"}"#], 1);
    drop(lab);
}
