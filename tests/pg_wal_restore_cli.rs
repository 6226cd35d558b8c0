//! `persistctl pg-wal-restore` against a stand-in `barman-cloud-wal-restore` (a script exiting as
//! told): every way of not fetching the file except "not in the archive" must reach PostgreSQL as a
//! status above 125. The real tools are `tests/pg_real.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A directory with a `barman-cloud-wal-restore` that records its argv and runs `body`.
fn stand_in(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("barman-cloud-wal-restore");
    let argv = dir.path().join("argv");
    std::fs::write(&script, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n{body}\n", argv.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn wal_restore(barman_dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_persistctl"))
        .arg("pg-wal-restore")
        .args(extra)
        .args([
            "--destination",
            "s3://pitr/pg",
            "--server-name",
            "main",
            "000000010000000000000005",
            "pg_wal/RECOVERYXLOG",
        ])
        .env("PERSISTCTL_BARMAN_DIR", barman_dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn only_fetched_and_not_in_the_archive_pass_through() {
    for (barman_exit, want) in [(0, 0), (1, 1), (2, 200), (3, 200), (4, 200), (125, 200), (137, 200)] {
        let dir = stand_in(&format!("exit {barman_exit}"));
        let (code, stderr) = wal_restore(dir.path(), &[]);
        assert_eq!(code, Some(want), "barman exit {barman_exit}: {stderr}");
    }
    let killed = stand_in("kill -9 $$");
    assert_eq!(wal_restore(killed.path(), &[]).0, Some(200), "killed by a signal");
}

#[test]
fn the_archive_and_the_file_reach_barman_in_its_argument_order() {
    let dir = stand_in("exit 0");
    let (code, _) = wal_restore(dir.path(), &["--endpoint-url", "http://127.0.0.1:9000", "--cloud-provider", "aws-s3"]);
    assert_eq!(code, Some(0));
    let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [
            "--cloud-provider",
            "aws-s3",
            "--endpoint-url",
            "http://127.0.0.1:9000",
            "s3://pitr/pg",
            "main",
            "000000010000000000000005",
            "pg_wal/RECOVERYXLOG"
        ]
    );
}

#[test]
fn a_hung_store_is_given_up_at_the_timeout() {
    let dir = stand_in("sleep 60");
    let started = Instant::now();
    let (code, stderr) = wal_restore(dir.path(), &["--timeout", "1"]);
    assert_eq!(code, Some(200), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "waited {:?}", started.elapsed());
    assert!(stderr.contains("aborting the recovery"), "{stderr}");
}

#[test]
fn a_missing_program_a_bad_argument_and_help_abort_too() {
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(wal_restore(empty.path(), &[]).0, Some(200), "barman-cloud-wal-restore not found");
    let dir = stand_in("exit 0");
    assert_eq!(wal_restore(dir.path(), &["--no-such-option"]).0, Some(200), "clap would exit 2");
    assert_eq!(wal_restore(dir.path(), &["--timeout", "0"]).0, Some(200), "out of range");
    assert_eq!(wal_restore(dir.path(), &["--help"]).0, Some(200), "clap would exit 0: 'fetched'");
    assert!(!dir.path().join("argv").exists(), "barman-cloud-wal-restore was never run for those");
}

#[test]
fn other_commands_keep_their_exit_codes_and_take_any_bytes() {
    use std::os::unix::ffi::OsStrExt as _;
    let out = Command::new(env!("CARGO_BIN_EXE_persistctl")).args(["plan", "--no-such-option"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    let odd = std::ffi::OsStr::from_bytes(b"/nonexistent/\xff.json");
    let out = Command::new(env!("CARGO_BIN_EXE_persistctl")).arg("--config").arg(odd).arg("plan").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}
