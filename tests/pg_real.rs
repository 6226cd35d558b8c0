//! PostgreSQL point-in-time recovery against the real tools: PostgreSQL 15, barman-cloud and an S3
//! server (moto) on 127.0.0.1, installed by `tests/pg/setup.sh`. `tests/pg/facts.sh` drives them
//! (every wait with a deadline); this test runs it with this build of persistctl and holds the
//! results to what the design relies on. A second test holds `persistctl status`'s PostgreSQL checks
//! to a real cluster and archive (fake zfs only for the datasets part). Ignored by a plain
//! `cargo test`; `tests/run-all.sh` runs them with `--ignored` after the setup.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// id → (expected, observed, verdict), from the script's `facts.tsv`.
fn run_facts() -> BTreeMap<String, (String, String, String)> {
    let work = tempfile::Builder::new().prefix("persistctl-pgfacts.").tempdir_in("/tmp").unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pg/facts.sh");
    let out = Command::new("timeout")
        .args(["--kill-after=30", "1500", "bash"])
        .arg(&script)
        .env("PERSISTCTL", env!("CARGO_BIN_EXE_persistctl"))
        .env("FACTS_WORK", work.path())
        .env("FACTS_KEEP", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "facts.sh failed ({}):\n{stdout}\n{stderr}", out.status);
    println!("{stdout}");
    let table = std::fs::read_to_string(work.path().join("facts.tsv")).unwrap();
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 5).then(|| (f[0].to_string(), (f[2].to_string(), f[3].to_string(), f[4].to_string())))
        })
        .collect()
}

#[test]
#[ignore = "needs PostgreSQL 15, barman-cloud and moto (tests/pg/setup.sh); run by tests/run-all.sh"]
fn pg_wal_restore_aborts_a_recovery_the_archive_cannot_finish_and_completes_one_it_can() {
    let facts = run_facts();
    assert!(facts.len() > 50, "facts.sh reported too little: {facts:?}");
    let ok = |id: &str| {
        let (expected, observed, verdict) = facts.get(id).unwrap_or_else(|| panic!("no fact {id}: {facts:?}"));
        assert_eq!(verdict, "OK", "{id}: expected [{expected}], observed [{observed}]");
    };
    // The hazard: with barman-cloud-wal-restore as restore_command, an S3 outage mid-replay ends the
    // recovery early and PostgreSQL promotes a database without the rows archived after it.
    ok("outage-1");
    // persistctl pg-wal-restore: the same outage aborts the recovery (the server does not start, the
    // timeline is not raised) ...
    ok("persistctl-1");
    // ... with the store up it recovers to the end of the archive ...
    ok("persistctl-2");
    // ... and a hung store is given up at --timeout, aborting the recovery.
    ok("persistctl-3");
    // What the design leans on besides: PostgreSQL aborts on a status above 125 or a signal and
    // ends recovery on 1; barman-cloud-restore refuses a non-empty directory; point-in-time and
    // to-the-end recoveries of a real backup give exactly the rows of their time.
    for id in ["pg-1", "pg-200", "pg-kill9", "restore-1", "cycle-3", "cycle-5", "keep-1"] {
        ok(id);
    }
    // barman-cloud-restore's `latest` takes the newest backup whatever its status (a FAILED one),
    // so persistctl must choose a DONE backup itself: if barman ever changes that, say so here.
    let (_, observed, _) = &facts["failed-latest"];
    assert!(observed.starts_with("FAILED"), "barman's `latest` now picks {observed}");
}

#[test]
#[ignore = "needs PostgreSQL 15, barman-cloud and moto (tests/pg/setup.sh); run by tests/run-all.sh"]
fn preseed_restores_postgresql_from_barman_cloud_to_a_time_or_the_end_and_fails_closed() {
    // The scenarios of issue 11 against the real tools, with the fake zfs (datasets are directories;
    // the real-ZFS runs are in the VM): to T and to the end of the archive, the store hanging
    // mid-replay, an empty bucket, an unreachable endpoint, the new timeline, a separate WAL dataset,
    // retention while pinned, and seeded kill -9 trials (PITR_KILL_TRIALS, default 20).
    let work = tempfile::Builder::new().prefix("persistctl-pitr.").tempdir_in("/tmp").unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pg/pitr.sh");
    let trials = std::env::var("PITR_KILL_TRIALS").unwrap_or_else(|_| "20".into());
    let out = Command::new("timeout")
        .args(["--kill-after=30", "2400", "bash"])
        .arg(&script)
        .arg(work.path())
        .env("PERSISTCTL", env!("CARGO_BIN_EXE_persistctl"))
        .env("KILL_TRIALS", &trials)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    let table = std::fs::read_to_string(work.path().join("results.tsv")).unwrap_or_default();
    let different: Vec<&str> = table.lines().filter(|l| !l.ends_with("\tOK")).collect();
    assert!(
        table.lines().count() >= 35,
        "pitr.sh checked too little:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(different.is_empty(), "checks that differ:\n{}\n\n{stdout}", different.join("\n"));
    assert!(out.status.success(), "pitr.sh failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(table.contains(&format!("kill -9 trials failed (of {trials};")), "{table}");
}

#[test]
#[ignore = "needs PostgreSQL 15, barman-cloud and moto (tests/pg/setup.sh); run by tests/run-all.sh"]
fn wal_archiving_and_restore_work_under_the_postgresql_units_sandbox() {
    // tests/pg/sandbox.sh rebuilds nixpkgs' postgresql.service seccomp filter (SystemCallFilter,
    // MemoryDenyWriteExecute, ...) and runs barman-cloud's archiver, its restore and persistctl
    // pg-wal-restore under it, with a whole PostgreSQL archiving through it (tests/pg/FACTS.md).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pg/sandbox.sh");
    let out = Command::new("timeout")
        .args(["--kill-after=30", "1200", "bash"])
        .arg(&script)
        .env("PERSISTCTL", env!("CARGO_BIN_EXE_persistctl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "sandbox.sh failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- persistctl status against the real tools -------------------------------------------------

/// Bash with `tests/pg/lib.sh` sourced, for the steps of a real scenario: every wait has a deadline.
const PRELUDE: &str = r#"
set -euo pipefail
S3SH=$PGT_LIB_DIR/s3.sh
# wait_q NAME SECS SQL WANT: until the query on cluster NAME prints WANT.
wait_q() {
    local deadline=$((SECONDS + $2)) got
    while :; do
        got=$(pg_q "$1" "$3" 2>&1 || true)
        [ "$got" = "$4" ] && return 0
        [ $SECONDS -lt $deadline ] || { echo "timed out after $2 s waiting for [$3] = [$4]; got [$got]" >&2; return 1; }
        sleep 0.2
    done
}
ready_q="select count(*) from pg_ls_archive_statusdir() where name like '%.ready'"
# archive_to NAME COMMAND: a new archive_command, applied by a reload.
archive_to() {
    pg_q "$1" "alter system set archive_command = '$2'" >/dev/null
    pg_q "$1" "select pg_reload_conf()" >/dev/null
}
"#;

/// A work directory with moto servers, a PostgreSQL 15 cluster archiving to one, and the fake
/// machine (fake zfs, for the datasets part) whose config names them; all stopped when dropped.
struct RealPg {
    work: tempfile::TempDir,
    fake: common::fake::Fake,
    configs: std::cell::Cell<u32>,
    started: std::time::Instant,
}

impl RealPg {
    fn new() -> Self {
        let work = tempfile::Builder::new().prefix("persistctl-pgstatus.").tempdir_in("/tmp").unwrap();
        let lab = Self {
            work,
            fake: common::fake::Fake::empty(),
            configs: std::cell::Cell::new(0),
            started: std::time::Instant::now(),
        };
        let mount = lab.fake.path("persist");
        std::fs::create_dir_all(mount.join("db")).unwrap();
        lab.fake.set_datasets(&json!({
            "tank": { "local": {} },
            "tank/persist": { "local": { "mountpoint": mount.display().to_string() } },
            "tank/persist/db": { "local": { "mountpoint": mount.join("db").display().to_string() }, "mounted": true },
        }));
        lab
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    /// Runs `script` after [`PRELUDE`]; it must succeed. Its stdout.
    fn sh(&self, script: &str) -> String {
        println!("[+{:5.1}s] {}", self.started.elapsed().as_secs_f64(), script.lines().next().unwrap_or_default());
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pg/lib.sh");
        let out = Command::new("timeout")
            .args(["--kill-after=10", "300", "bash", "-c"])
            .arg(format!(". '{}'\n{PRELUDE}\n{script}", lib.display()))
            .env("PGT_WORK", self.dir())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{script}\nfailed ({}):\n{stdout}\n{stderr}", out.status);
        stdout
    }

    fn url(&self, s3: &str) -> String {
        std::fs::read_to_string(self.dir().join(s3).join("url")).unwrap().trim().to_string()
    }

    /// A new config file: `postgresql.db` is the cluster `primary`, its archive `s3://pitr` `main` on
    /// the moto server `s3-a` (or at `endpoint`), with `retention`.
    fn config(&self, retention: Option<&str>, endpoint: Option<&str>) -> PathBuf {
        let port = std::fs::read_to_string(self.dir().join("primary.port")).unwrap();
        let mut config = common::config::datasets("tank/persist", &self.fake.mount_root(), &json!({ "db": {} }));
        config["postgresql"] = json!({ "db": {
            "archive": { "destination": "s3://pitr", "serverName": "main",
                         "endpointUrl": endpoint.map_or_else(|| self.url("s3-a"), str::to_string),
                         "environmentFile": self.dir().join("s3-a/env").display().to_string() },
            "binDir": "/usr/lib/postgresql/15/bin",
            "user": "postgres",
            "socketDir": self.dir().join("sock").display().to_string(),
            "port": port.trim().parse::<u16>().unwrap(),
            "retention": retention,
        }});
        self.configs.set(self.configs.get() + 1);
        common::config::write(&self.fake.path(&format!("config-{}.json", self.configs.get())), &config)
    }

    /// `persistctl status --json` (at `now`, else by the clock) with barman-cloud from the venv:
    /// (exit code, JSON, stdout).
    fn status(&self, config: &Path, now: Option<i64>) -> (i32, Value, String) {
        println!("[+{:5.1}s] status {} at {now:?}", self.started.elapsed().as_secs_f64(), config.display());
        let now = now.map(|n| n.to_string());
        let mut args = vec!["status", "--json", "--barman-timeout", "60", "--psql-timeout", "20"];
        if let Some(now) = &now {
            args.extend(["--now", now]);
        }
        let out = self.fake.run(config, &args, &[("PERSISTCTL_BARMAN_DIR", "/opt/persistctl-test/venv/bin")]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {}", common::text(&out)));
        (out.status.code().unwrap(), json, stdout)
    }
}

impl Drop for RealPg {
    fn drop(&mut self) {
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pg/lib.sh");
        let script = format!(
            ". '{}'\nS3SH=$PGT_LIB_DIR/s3.sh\n[ -f \"$PGT_WORK/primary.port\" ] && pg_stop primary immediate\n\
             for d in \"$PGT_WORK\"/s3-*; do [ -d \"$d\" ] && \"$S3SH\" stop \"$d\" >/dev/null; done\ntrue",
            lib.display()
        );
        let _ = Command::new("timeout").args(["60", "bash", "-c", &script]).env("PGT_WORK", self.dir()).status();
    }
}

/// The pg-* checks: name → (state, message).
fn pg_checks(json: &Value) -> BTreeMap<String, (String, String)> {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"].as_str().unwrap().starts_with("pg-"))
        .map(|c| {
            let name = c["check"].as_str().unwrap().to_string();
            (name, (c["state"].as_str().unwrap().to_string(), c["message"].as_str().unwrap().to_string()))
        })
        .collect()
}

fn epoch() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

const PRIMARY: &str = r#"chmod 755 "$PGT_WORK"; chown "$PGT_USER:" "$PGT_WORK"
"$S3SH" start "$PGT_WORK/s3-a" >/dev/null
chmod 644 "$PGT_WORK/s3-a/env"
bc mkbucket "$PGT_WORK/s3-a/env" check-wal-archive s3://pitr main
[ "$RC" = 0 ] || { cat "$PGT_WORK/log/mkbucket.err" >&2; exit 1; }
url=$(cat "$PGT_WORK/s3-a/url")
printf '%s\n' "wal_level = replica" "archive_mode = on" "max_wal_senders = 3" \
    "archive_command = '$VENV/bin/barman-cloud-wal-archive --endpoint-url $url s3://pitr main %p'" | pg_init primary
pg_start primary "$PGT_WORK/s3-a/env"
[ "$RC" = 0 ] || { cat "$PGT_WORK/primary.log" >&2; exit 1; }
wait_q primary 60 "$ready_q" 0"#;

#[test]
#[ignore = "needs PostgreSQL 15, barman-cloud and moto (tests/pg/setup.sh); run by tests/run-all.sh"]
#[allow(clippy::too_many_lines)] // one scenario, step by step
fn status_judges_base_backups_wal_archiving_and_retention_of_a_real_cluster() {
    let lab = RealPg::new();
    lab.sh(PRIMARY);
    let window = lab.config(Some("RECOVERY WINDOW OF 1 DAYS"), None);

    // No base backup yet: CRITICAL; the window is not covered; nothing waits to be archived.
    let (code, json, _) = lab.status(&window, None);
    let c = pg_checks(&json);
    assert_eq!(code, 2, "{json:#}");
    assert_eq!(c["pg-base-backup-age"].0, "critical", "{c:?}");
    assert!(c["pg-base-backup-age"].1.contains("s3://pitr holds no DONE base backup of server main"), "{c:?}");
    let uncovered = "RECOVERY WINDOW OF 1 DAYS not covered: no DONE base backup";
    assert_eq!(c["pg-retention"], ("warning".to_string(), uncovered.to_string()));
    assert_eq!(c["pg-wal-archiving"].0, "ok", "{c:?}");

    // A fresh base backup: OK, but a one-day window is not covered yet.
    lab.sh(
        r#"bc backup1 "$PGT_WORK/s3-a/env" backup -h "$PGT_WORK/sock" -p "$(pg_port primary)" -U postgres s3://pitr main
        [ "$RC" = 0 ] || { cat "$PGT_WORK/log/backup1.err" >&2; exit 1; }
        wait_q primary 60 "$ready_q" 0"#,
    );
    let (code, json, _) = lab.status(&window, None);
    let c = pg_checks(&json);
    assert_eq!(code, 1, "only the window is not OK: {json:#}");
    assert_eq!(c["pg-base-backup-age"].0, "ok", "{c:?}");
    assert_eq!(c["pg-wal-archiving"].0, "ok", "{c:?}");
    let idle = "nothing waiting to be archived; last archived 0000000100000000000000";
    assert!(c["pg-wal-archiving"].1.starts_with(idle), "{c:?}");
    assert_eq!(c["pg-retention"].0, "warning", "{c:?}");
    assert!(c["pg-retention"].1.contains("window not yet covered: oldest backup is"), "{c:?}");
    let pg = &json["datasets"][0]["postgresql"];
    assert_eq!(pg["baseBackups"]["done"], 1, "{pg:#}");
    assert!(pg["archiver"]["archivedCount"].as_u64().unwrap() >= 2, "{pg:#}");
    assert_eq!(pg["archiver"]["failing"], false);
    let (code, json, _) = lab.status(&lab.config(Some("REDUNDANCY 1"), None), None);
    assert_eq!(code, 0, "{json:#}");
    // Three days later (the same facts, a later clock): the backup is late, the window covered, and
    // the idle server that archived nothing for three days is still OK.
    let (code, json, _) = lab.status(&window, Some(epoch() + 3 * 86_400));
    let c = pg_checks(&json);
    assert_eq!(code, 2, "{json:#}");
    assert_eq!(c["pg-base-backup-age"].0, "critical", "{c:?}");
    assert_eq!(c["pg-retention"].0, "ok", "{c:?}");
    assert!(c["pg-retention"].1.contains("covered: the oldest DONE base backup"), "{c:?}");
    assert_eq!(c["pg-wal-archiving"].0, "ok", "{c:?}");

    // A hung store (moto frozen): WAL waits without failing, aged from when it became ready.
    lab.sh(r#""$S3SH" start "$PGT_WORK/s3-h" >/dev/null
        hung=$(cat "$PGT_WORK/s3-h/url")
        bc mkbucket-h "$PGT_WORK/s3-a/env" check-wal-archive --endpoint-url "$hung" s3://pitr main
        [ "$RC" = 0 ] || { cat "$PGT_WORK/log/mkbucket-h.err" >&2; exit 1; }
        "$S3SH" freeze "$PGT_WORK/s3-h" >/dev/null
        archive_to primary "$VENV/bin/barman-cloud-wal-archive --endpoint-url $hung s3://pitr main %p"
        pg_q primary "create table t (id int); insert into t select generate_series(1, 1000)"
        pg_q primary "select pg_walfile_name(pg_current_wal_lsn())" > "$PGT_WORK/hung.wal"
        pg_q primary "select pg_switch_wal()" >/dev/null
        wait_q primary 30 "$ready_q" 1"#);
    let hung_wal = std::fs::read_to_string(lab.dir().join("hung.wal")).unwrap().trim().to_string();
    let (_, json, _) = lab.status(&window, None);
    let c = pg_checks(&json);
    assert_eq!(c["pg-wal-archiving"].0, "ok", "seconds, not hours: {c:?}");
    let waiting = format!("1 WAL file(s) waiting to be archived, the oldest ({hung_wal}) for");
    assert!(c["pg-wal-archiving"].1.contains(&waiting), "{c:?}");
    let (_, json, _) = lab.status(&window, Some(epoch() + 2 * 3600));
    let c = pg_checks(&json);
    assert_eq!(c["pg-wal-archiving"].0, "warning", "two hours later: {c:?}");
    assert!(c["pg-wal-archiving"].1.contains("> 1h 0m"), "{c:?}");

    // archive_command broken (its store gone, then an endpoint that refuses): CRITICAL, naming the
    // WAL that waits.
    lab.sh(
        r#"closed=$("$S3SH" closed-port)
        archive_to primary "$VENV/bin/barman-cloud-wal-archive --endpoint-url $closed s3://pitr main %p"
        "$S3SH" stop "$PGT_WORK/s3-h" >/dev/null
        wait_q primary 120 "select last_failed_time > coalesce(last_archived_time, '-infinity') from pg_stat_archiver" t"#,
    );
    let (code, json, _) = lab.status(&window, None);
    let c = pg_checks(&json);
    assert_eq!(code, 2, "{json:#}");
    assert_eq!(c["pg-wal-archiving"].0, "critical", "{c:?}");
    let fails = format!("archive_command fails: the last attempt, for {hung_wal}, failed");
    assert!(c["pg-wal-archiving"].1.starts_with(&fails), "{c:?}");
    assert!(json["datasets"][0]["postgresql"]["archiver"]["readyCount"].as_u64().unwrap() >= 1, "{json:#}");

    // Fixed: the waiting WAL reaches the archive and the check is OK again.
    lab.sh(
        r#"archive_to primary "$VENV/bin/barman-cloud-wal-archive --endpoint-url $(cat "$PGT_WORK/s3-a/url") s3://pitr main %p"
        wait_q primary 180 "$ready_q" 0"#,
    );
    let (_, json, _) = lab.status(&window, None);
    let c = pg_checks(&json);
    assert_eq!(c["pg-wal-archiving"].0, "ok", "{c:?}");
    assert!(c["pg-wal-archiving"].1.contains(&format!("last archived {hung_wal}")), "{c:?}");

    // The archive does not answer: UNKNOWN, never "no backup", and no key quoted.
    let closed = lab.sh(r#""$S3SH" closed-port"#);
    let (code, json, stdout) = lab.status(&lab.config(Some("REDUNDANCY 1"), Some(closed.trim())), None);
    let c = pg_checks(&json);
    assert_eq!(code, 3, "{json:#}");
    assert_eq!(c["pg-base-backup-age"].0, "unknown", "{c:?}");
    assert!(c["pg-base-backup-age"].1.contains("barman-cloud-backup-list failed (exit 4)"), "{c:?}");
    assert_eq!(c["pg-retention"].0, "unknown", "{c:?}");
    let env = std::fs::read_to_string(lab.dir().join("s3-a/env")).unwrap();
    let secret = env.lines().find_map(|l| l.strip_prefix("AWS_SECRET_ACCESS_KEY=")).unwrap();
    assert!(!stdout.contains(secret), "the key is quoted: {stdout}");

    // PostgreSQL stopped: UNKNOWN, saying why; the archive is still read. (With the window's
    // WARNING the overall state would be WARNING: UNKNOWN ranks below it.)
    lab.sh("pg_stop primary");
    let (code, json, _) = lab.status(&lab.config(Some("REDUNDANCY 1"), None), None);
    let c = pg_checks(&json);
    assert_eq!(code, 3, "{json:#}");
    assert_eq!(c["pg-wal-archiving"].0, "unknown", "{c:?}");
    let down = "could not query PostgreSQL: psql failed (exit 2): psql: error: connection to server on socket";
    assert!(c["pg-wal-archiving"].1.starts_with(down), "{c:?}");
    assert_eq!(c["pg-base-backup-age"].0, "ok", "{c:?}");
}
