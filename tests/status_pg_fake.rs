//! `persistctl status`'s PostgreSQL checks (`postgresql.<service>`) against a fake `psql`
//! (tests/fakes/pg/psql, the cluster's `binDir`) and a fake `barman-cloud-backup-list`
//! (tests/fakes/barman, through `PERSISTCTL_BARMAN_DIR`): the checks' states and exit codes, what
//! psql and barman-cloud are run with (argv, user, environment), timeouts, masking, the JSON, the
//! Prometheus textfile and the change notification. The same against real PostgreSQL 15,
//! barman-cloud and moto: `pg_real.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::fake::Fake;
use common::text;
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const H: i64 = 3600;
const SECRET: &str = "s3cr3t-Value-42";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Who the fake psql must run as: `nobody` when the tests run as root (so that the switch of user
/// is seen), else the tests' own user (only root can switch).
fn pg_user() -> String {
    if nix::unistd::Uid::effective().is_root() {
        "nobody".into()
    } else {
        nix::unistd::User::from_uid(nix::unistd::Uid::effective()).unwrap().unwrap().name
    }
}

/// A fake machine with `tank/persist/db` and a `postgresql.db` cluster whose psql answers from
/// `<tmp>/sock` and whose archive is `<tmp>/barman`.
struct Lab {
    fake: Fake,
}

impl Lab {
    fn new() -> Self {
        let fake = Fake::empty();
        let mount = fake.path("persist");
        std::fs::create_dir_all(mount.join("db")).unwrap();
        fake.set_datasets(&json!({
            "tank": { "local": {} },
            "tank/persist": { "local": { "mountpoint": mount.display().to_string() } },
            "tank/persist/db": { "local": { "mountpoint": mount.join("db").display().to_string() }, "mounted": true },
        }));
        // The fake psql runs as the server's user and writes its log here.
        let sock = fake.path("sock");
        std::fs::create_dir_all(&sock).unwrap();
        std::fs::set_permissions(fake.path(""), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::create_dir_all(fake.path("barman")).unwrap();
        std::fs::write(
            fake.path("pitr.env"),
            format!(
                "AWS_ACCESS_KEY_ID=persistctl-test\nAWS_SECRET_ACCESS_KEY={SECRET}\nFAKE_BARMAN_STATE={}\n",
                fake.path_str("barman")
            ),
        )
        .unwrap();
        let lab = Self { fake };
        lab.backups(&[("20270114T000000", "DONE", NOW - 25 * H), ("20270115T070000", "DONE", NOW - H)]);
        lab.archiver(&archiver_row(&[]));
        lab
    }

    fn config(&self, pg_extra: &Value, monitoring: Option<&Value>) -> PathBuf {
        let mut pg = json!({
            "archive": { "destination": "s3://pitr/pg", "serverName": "main", "endpointUrl": "http://127.0.0.1:9",
                         "environmentFile": self.fake.path_str("pitr.env") },
            "binDir": repo().join("tests/fakes/pg").display().to_string(),
            "user": pg_user(),
            "socketDir": self.fake.path_str("sock"),
            "port": 5433
        });
        for (k, v) in pg_extra.as_object().unwrap() {
            pg[k] = v.clone();
        }
        let mut config = common::config::datasets("tank/persist", &self.fake.mount_root(), &json!({ "db": {} }));
        config["postgresql"] = json!({ "db": pg });
        if let Some(m) = monitoring {
            config["monitoring"] = m.clone();
        }
        self.fake.write_config(&config)
    }

    /// The archive's listing: (id, status, end).
    fn backups(&self, list: &[(&str, &str, i64)]) {
        let list: Vec<Value> = list
            .iter()
            .map(|(id, status, end)| {
                let end = jiff::Timestamp::from_second(*end).unwrap().to_string();
                json!({ "backup_id": id, "status": status, "end_time_iso": end,
                        "begin_wal": "000000010000000000000002", "end_wal": "000000010000000000000002" })
            })
            .collect();
        std::fs::write(self.fake.path("barman/list.json"), json!({ "backups_list": list }).to_string()).unwrap();
    }

    fn barman_file(&self, name: &str, text: &str) {
        std::fs::write(self.fake.path("barman").join(name), text).unwrap();
    }

    fn archiver(&self, row: &Value) {
        self.psql_file("psql.out", &format!("{row}\n"));
    }

    fn psql_file(&self, name: &str, text: &str) {
        std::fs::write(self.fake.path("sock").join(name), text).unwrap();
    }

    fn run(&self, config: &Path, args: &[&str]) -> Output {
        let now = NOW.to_string();
        let mut all = vec!["status", "--now", &now];
        all.extend_from_slice(args);
        let barman = repo().join("tests/fakes/barman");
        self.fake.run(
            config,
            &all,
            &[("PERSISTCTL_BARMAN_DIR", barman.to_str().unwrap()), ("AWS_SECRET_ACCESS_KEY", "inherited")],
        )
    }

    fn json(&self, config: &Path) -> (i32, Value) {
        let out = self.run(config, &["--json"]);
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (out.status.code().unwrap(), json)
    }

    fn psql_calls(&self) -> Vec<Value> {
        common::json_lines(&self.fake.path("sock/psql.log"))
    }

    fn barman_calls(&self) -> Vec<Value> {
        common::json_lines(&self.fake.path("barman/argv.log"))
    }
}

/// An archiver row (the fake psql's answer): nothing waiting, the last WAL archived 3 days ago,
/// with `set` overriding fields.
fn archiver_row(set: &[(&str, Value)]) -> Value {
    let mut row = json!({
        "archive_mode": "on", "in_recovery": false, "archived_count": 12,
        "last_archived_wal": "00000001000000000000000C", "last_archived_us": (NOW - 72 * H) * 1_000_000,
        "failed_count": 0, "last_failed_wal": null, "last_failed_us": null,
        "ready_count": 0, "oldest_ready": null, "oldest_ready_us": null
    });
    for (k, v) in set {
        row[*k] = v.clone();
    }
    row
}

fn check<'a>(json: &'a Value, name: &str) -> Option<&'a Value> {
    json["checks"].as_array().unwrap().iter().find(|c| c["check"] == name)
}

fn state(json: &Value, name: &str) -> String {
    check(json, name).unwrap_or_else(|| panic!("no {name}: {json:#}"))["state"].as_str().unwrap().to_string()
}

fn message(json: &Value, name: &str) -> String {
    check(json, name).unwrap()["message"].as_str().unwrap().to_string()
}

#[test]
fn a_fresh_backup_and_an_idle_archiver_are_ok() {
    let lab = Lab::new();
    let (code, json) = lab.json(&lab.config(&json!({ "retention": "REDUNDANCY 2" }), None));
    assert_eq!(code, 0, "{json:#}");
    for name in ["pg-base-backup-age", "pg-wal-archiving", "pg-retention"] {
        assert_eq!(state(&json, name), "ok", "{name}: {json:#}");
    }
    assert_eq!(check(&json, "pg-base-backup-age").unwrap()["value"], H);
    assert!(
        message(&json, "pg-wal-archiving").starts_with("nothing waiting to be archived; last archived"),
        "{json:#}"
    );
    let pg = &json["datasets"][0]["postgresql"];
    assert_eq!(pg["serverName"], "main");
    assert_eq!(pg["retention"], "REDUNDANCY 2");
    assert_eq!(
        pg["baseBackups"],
        json!({ "kind": "listed", "done": 2, "other": 0,
                "newest": { "id": "20270115T070000", "end": NOW - H },
                "oldest": { "id": "20270114T000000", "end": NOW - 25 * H } })
    );
    assert_eq!(pg["archiver"]["kind"], "stats");
    assert_eq!(pg["archiver"]["lastArchivedTime"], NOW - 72 * H);
    assert_eq!(pg["archiver"]["failing"], false);
}

#[test]
fn psql_runs_as_the_servers_user_over_its_socket_with_a_clean_environment() {
    let lab = Lab::new();
    let config = lab.config(&json!({ "passwordFile": "/run/secrets/pgpass" }), None);
    lab.json(&config);
    let calls = lab.psql_calls();
    assert_eq!(calls.len(), 1, "one psql per cluster: {calls:?}");
    let argv: Vec<&str> = calls[0]["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let sock = lab.fake.path_str("sock");
    let user = pg_user();
    assert_eq!(
        argv[..16],
        [
            "-X",
            "-A",
            "-t",
            "-q",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &sock,
            "-p",
            "5433",
            "-U",
            &user,
            "-d",
            "postgres",
            "-c"
        ]
    );
    assert!(argv[16].starts_with("SELECT json_build_object("), "{argv:?}");
    assert_eq!(calls[0]["user"], user.as_str());
    assert_eq!(calls[0]["cwd"], "/");
    let env = calls[0]["env"].as_object().unwrap();
    assert!(env.keys().all(|k| !k.starts_with("AWS_") && !k.starts_with("FAKE_")), "{env:?}");
    assert_eq!(env["PGPASSFILE"], "/run/secrets/pgpass");
    assert_eq!(env["PGAPPNAME"], "persistctl-status");
    let connect: u64 = env["PGCONNECT_TIMEOUT"].as_str().unwrap().parse().unwrap();
    assert!((20..=25).contains(&connect), "5 s inside --psql-timeout's 30 s: {connect}");
    let barman = lab.barman_calls();
    assert_eq!(barman.len(), 1, "{barman:?}");
    assert_eq!(
        barman[0]["argv"],
        json!(["--format", "json", "--endpoint-url", "http://127.0.0.1:9", "s3://pitr/pg", "main"])
    );
    assert_eq!(barman[0]["env"], json!(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]), "the environmentFile's only");
}

#[test]
fn no_done_backup_is_critical_and_a_failing_list_is_unknown_with_its_secret_masked() {
    let lab = Lab::new();
    let config = lab.config(&json!({ "retention": "RECOVERY WINDOW OF 7 DAYS" }), None);
    lab.backups(&[("20270115T070000", "FAILED", NOW - H), ("20270115T080000", "STARTED", NOW)]);
    let (code, json) = lab.json(&config);
    assert_eq!((code, state(&json, "pg-base-backup-age").as_str()), (2, "critical"), "{json:#}");
    assert!(
        message(&json, "pg-base-backup-age").contains("holds no DONE base backup of server main (2 not DONE"),
        "{json:#}"
    );
    assert_eq!(state(&json, "pg-retention"), "warning");

    lab.barman_file("list.rc", "4");
    lab.barman_file("list.err", "ERROR: Barman cloud backup list exception: key $AWS_SECRET_ACCESS_KEY refused\n");
    let prom = lab.fake.path("persistctl.prom");
    let state_file = lab.fake.path("status-state.json");
    let out = lab.run(
        &config,
        &["--json", "--prometheus", prom.to_str().unwrap(), "--state-file", state_file.to_str().unwrap()],
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "{json:#}");
    assert_eq!(state(&json, "pg-base-backup-age"), "unknown");
    assert_eq!(state(&json, "pg-retention"), "unknown", "cannot tell is never 'not covered'");
    let m = message(&json, "pg-base-backup-age");
    assert!(m.contains("barman-cloud-backup-list failed (exit 4)") && m.contains("key *** refused"), "{m}");
    for (what, text) in [
        ("stdout", String::from_utf8_lossy(&out.stdout).into_owned()),
        ("stderr", String::from_utf8_lossy(&out.stderr).into_owned()),
        ("prometheus", std::fs::read_to_string(&prom).unwrap()),
        ("state file", std::fs::read_to_string(&state_file).unwrap()),
    ] {
        assert!(!text.contains(SECRET), "{what} quotes the secret: {text}");
    }
    assert!(!std::fs::read_to_string(&prom).unwrap().contains("persistctl_pg_base_backups{"), "no count when unknown");

    std::fs::write(lab.fake.path("pitr.env"), "not a variable line\n").unwrap();
    let (_, json) = lab.json(&config);
    let m = message(&json, "pg-base-backup-age");
    assert!(m.contains("Bad barman-cloud environment file") && !m.contains("not a variable"), "{m}");
}

#[test]
fn a_failing_archive_command_is_critical_naming_the_wal_and_notifies_the_change() {
    let lab = Lab::new();
    let config = lab.config(&json!({}), None);
    let state_file = lab.fake.path("status-state.json");
    let hook_out = lab.fake.path("hook.out");
    let hook = format!(
        "echo \"$PERSISTCTL_STATUS_PREVIOUS $PERSISTCTL_STATUS_STATE $PERSISTCTL_STATUS_SUMMARY\" >> {}",
        hook_out.display()
    );
    let args = [
        "--state-file",
        state_file.to_str().unwrap(),
        "--notify-command",
        "sh",
        "--notify-command",
        "-c",
        "--notify-command",
        &hook,
    ];
    assert_eq!(lab.run(&config, &args).status.code(), Some(0));
    lab.archiver(&archiver_row(&[
        ("failed_count", json!(5)),
        ("last_failed_wal", json!("00000001000000000000000D")),
        ("last_failed_us", json!((NOW - 20) * 1_000_000)),
        ("ready_count", json!(1)),
        ("oldest_ready", json!("00000001000000000000000D.ready")),
        ("oldest_ready_us", json!((NOW - 300) * 1_000_000)),
    ]));
    let out = lab.run(&config, &args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = common::stdout(&out);
    assert!(stdout.starts_with("CRITICAL: 1 critical"), "{stdout}");
    assert!(stdout.contains("db pg-wal-archiving: archive_command fails: the last attempt, for 00000001000000000000000D, failed 20s ago (5 failure(s) counted)"), "{stdout}");
    let hooked = std::fs::read_to_string(&hook_out).unwrap();
    assert!(hooked.starts_with("OK CRITICAL CRITICAL: 1 critical"), "{hooked}");
    assert!(hooked.contains("pg-wal-archiving"), "{hooked}");
    // Archived since: OK again, and notified again.
    lab.archiver(&archiver_row(&[
        ("failed_count", json!(5)),
        ("last_failed_wal", json!("00000001000000000000000D")),
        ("last_failed_us", json!((NOW - 20) * 1_000_000)),
        ("last_archived_wal", json!("00000001000000000000000D")),
        ("last_archived_us", json!((NOW - 20) * 1_000_000 + 1)),
    ]));
    assert_eq!(lab.run(&config, &args).status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&hook_out).unwrap().lines().count(), 2);
}

#[test]
fn wal_waiting_is_aged_from_the_oldest_ready_file_against_the_thresholds() {
    let lab = Lab::new();
    // (oldest .ready age, thresholds, state)
    let cases: &[(i64, Option<Value>, &str)] = &[
        (5 * 60, None, "ok"),
        (2 * H, None, "warning"),
        (7 * H, None, "critical"),
        (2 * H, Some(json!({ "thresholds": { "walArchiveAge": { "warning": null, "critical": 3600 } } })), "critical"),
        (7 * H, Some(json!({ "thresholds": { "walArchiveAge": { "warning": null, "critical": null } } })), "ok"),
    ];
    for (waited, monitoring, want) in cases {
        lab.archiver(&archiver_row(&[
            ("ready_count", json!(2)),
            ("oldest_ready", json!("00000001000000000000000D.ready")),
            ("oldest_ready_us", json!((NOW - waited) * 1_000_000)),
        ]));
        let (_, json) = lab.json(&lab.config(&json!({}), monitoring.as_ref()));
        assert_eq!(state(&json, "pg-wal-archiving"), *want, "{waited} {monitoring:?}: {json:#}");
        assert_eq!(check(&json, "pg-wal-archiving").unwrap()["value"], *waited);
    }
}

#[test]
fn a_server_that_does_not_answer_is_unknown_never_ok() {
    let lab = Lab::new();
    let config = lab.config(&json!({}), None);
    lab.psql_file("psql.rc", "2");
    lab.psql_file(
        "psql.err",
        "psql: error: connection to server on socket \"/run/postgresql/.s.PGSQL.5433\" failed: No such file or directory\n\tIs the server running locally and accepting connections on that socket?\n",
    );
    let (code, json) = lab.json(&config);
    assert_eq!((code, state(&json, "pg-wal-archiving").as_str()), (3, "unknown"), "{json:#}");
    assert_eq!(
        message(&json, "pg-wal-archiving"),
        "could not query PostgreSQL: psql failed (exit 2): psql: error: connection to server on socket \"/run/postgresql/.s.PGSQL.5433\" failed: No such file or directory Is the server running locally and accepting connections on that socket?"
    );
    assert_eq!(state(&json, "pg-base-backup-age"), "ok", "the archive is read all the same");
    // An answer that is not the archiver row is not taken for one.
    lab.psql_file("psql.rc", "0");
    lab.psql_file("psql.out", "on|f|12\n");
    let (_, json) = lab.json(&config);
    assert!(message(&json, "pg-wal-archiving").contains("unexpected answer to the archiver query"), "{json:#}");
    // No such user.
    let (_, json) = lab.json(&lab.config(&json!({ "user": "no-such-user-persistctl" }), None));
    assert!(message(&json, "pg-wal-archiving").contains("no user \"no-such-user-persistctl\""), "{json:#}");
}

#[test]
fn a_hung_psql_and_a_hung_archive_are_given_up_at_their_timeouts() {
    let lab = Lab::new();
    let config = lab.config(&json!({}), None);
    lab.psql_file("psql.sleep", "60");
    lab.barman_file("list.sleep", "60");
    let started = Instant::now();
    let out = lab.run(&config, &["--json", "--psql-timeout", "1", "--barman-timeout", "1"]);
    assert!(started.elapsed() < Duration::from_secs(20), "waited {:?}", started.elapsed());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "{json:#}");
    for name in ["pg-wal-archiving", "pg-base-backup-age"] {
        assert_eq!(state(&json, name), "unknown");
        assert!(message(&json, name).contains("timed out after"), "{name}: {json:#}");
    }
}

#[test]
fn a_recovery_window_not_yet_covered_is_a_warning() {
    let lab = Lab::new();
    // (policy, state, message part); the backups ended 25 h and 1 h ago.
    let cases = [
        ("RECOVERY WINDOW OF 1 DAYS", "ok", "covered: the oldest DONE base backup 20270114T000000 ended 1d 1h ago"),
        ("RECOVERY WINDOW OF 2 DAYS", "warning", "window not yet covered: oldest backup is 1d 1h old"),
        ("REDUNDANCY 2", "ok", "2 DONE"),
        ("REDUNDANCY 3", "warning", "2 DONE base backup(s); REDUNDANCY 3 keeps 3"),
    ];
    for (policy, want, part) in cases {
        let (code, json) = lab.json(&lab.config(&json!({ "retention": policy }), None));
        assert_eq!(state(&json, "pg-retention"), want, "{policy}: {json:#}");
        assert_eq!(code, i32::from(want != "ok"), "{policy}");
        assert!(message(&json, "pg-retention").contains(part), "{policy}: {json:#}");
    }
    let (_, json) = lab.json(&lab.config(&json!({}), None));
    assert!(check(&json, "pg-retention").is_none(), "no retention, no check: {json:#}");
}

#[test]
fn base_backup_age_follows_its_thresholds_and_the_textfile_has_the_pg_families() {
    let lab = Lab::new();
    lab.backups(&[("20270113T000000", "DONE", NOW - 27 * H)]);
    let prom = lab.fake.path("persistctl.prom");
    let out = lab.run(&lab.config(&json!({}), None), &["--prometheus", prom.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        common::stdout(&out)
            .contains("pg-base-backup-age  newest DONE base backup 20270113T000000 ended 1d 3h ago > 1d 2h (1 DONE)"),
        "{}",
        text(&out)
    );
    let textfile = std::fs::read_to_string(&prom).unwrap();
    let l = r#"{service="db",dataset="tank/persist/db",server="main"}"#;
    for line in [
        format!("persistctl_pg_base_backups{l} 1"),
        format!("persistctl_pg_base_backup_age_seconds{l} {}", 27 * H),
        format!("persistctl_pg_wal_archive_failing{l} 0"),
        format!("persistctl_pg_wal_ready_files{l} 0"),
        format!("persistctl_pg_wal_oldest_ready_age_seconds{l} 0"),
        format!("persistctl_pg_wal_last_archived_age_seconds{l} {}", 72 * H),
        r#"persistctl_check_state{service="db",dataset="tank/persist/db",check="pg-base-backup-age"} 1"#.to_string(),
    ] {
        assert!(textfile.lines().any(|x| x == line), "missing {line} in\n{textfile}");
    }
    let (code, json) = lab.json(&lab.config(
        &json!({}),
        Some(&json!({ "thresholds": { "baseBackupAge": { "warning": null, "critical": 86400 } } })),
    ));
    assert_eq!((code, state(&json, "pg-base-backup-age").as_str()), (2, "critical"), "{json:#}");
}
