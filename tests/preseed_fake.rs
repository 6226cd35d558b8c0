//! `persistctl preseed` against a fake `zfs` (tests/fakes/zfs) and a fake restic 0.18
//! (tests/fakes/restic): every decision, every source's success and failure modes, fail-closed, dry run,
//! crash leftovers. Fast and host-only; `preseed_real.rs` proves the same on real `OpenZFS` and restic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure
#![allow(clippy::needless_raw_string_hashes)] // expect-test (UPDATE_EXPECT=1) writes r#"..."#

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::fake::{Fake, argv_log, writes};
use common::text;
use expect_test::expect;
use serde_json::{Value, json};

const DS: &str = "tank/persist/sonarr";

/// A pool with `tank/persist` mounted at `<tmp>/persist` and, unless `None`, the service dataset
/// `service` mounted with these snapshots; the password `right` in `<tmp>/password`.
fn service_lab(service: &str, dataset: Option<&[&str]>) -> Fake {
    let fake = Fake::empty();
    let mut datasets = json!({
        "tank": {"local": {"mountpoint": "none"}},
        "tank/persist": {"local": {"mountpoint": fake.mount_root()}, "mounted": true},
    });
    std::fs::create_dir_all(fake.mountpoint(service)).unwrap();
    if let Some(snaps) = dataset {
        datasets[format!("tank/persist/{service}")] = json!({"local": {}, "mounted": true, "snapshots": snaps});
    }
    fake.set_datasets(&datasets);
    std::fs::write(fake.path("password"), "right\n").unwrap();
    fake
}

/// A config with the one service `service` and its `preseed` settings.
fn preseed_config(fake: &Fake, service: &str, preseed: &Value) -> PathBuf {
    fake.write_services(&json!({service: {"preseed": preseed}}))
}

/// Restoring from the service's snapshots, then restic `repo` with the lab's password file; `extra` set.
fn restic_preseed(fake: &Fake, repo: &str, extra: &Value) -> Value {
    common::config::restic_preseed(repo, &fake.path("password"), extra)
}

/// `persistctl preseed SERVICE args` with the status file in the temp dir and a `RESTIC_PASSWORD` that
/// persistctl must not hand on.
fn run_preseed(fake: &Fake, config: &Path, service: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = fake.command(config, &[&["preseed", service], args].concat());
    cmd.env("PERSISTCTL_PRESEED_STATUS", fake.path("status/preseed.json"))
        .env("RESTIC_PASSWORD", "inherited-must-be-scrubbed");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The lines of the preseed status file.
fn status_lines(fake: &Fake) -> Vec<Value> {
    common::json_lines(&fake.path("status/preseed.json"))
}

/// The entries of the service's mountpoint but `.zfs`, sorted.
fn entries(fake: &Fake, service: &str) -> Vec<String> {
    common::entries(&fake.mountpoint(service)).into_iter().filter(|n| n != ".zfs").collect()
}

const T1: &str = "2024-05-01T10:00:00+02:00";
const T2: &str = "2024-05-02T10:00:00Z";

#[test]
fn data_present_exits_zero_and_touches_nothing() {
    let fake = service_lab("sonarr", Some(&["a"]));
    std::fs::write(fake.mountpoint("sonarr").join("config.xml"), "live").unwrap();
    let repo = fake.restic_repo("right", &[]);
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &json!({})));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("skipped: data present (config.xml)"), "{}", text(&out));
    assert_eq!(fake.take_calls().len(), 1, "one zfs get, nothing else");
    assert!(fake.restic_calls().is_empty(), "no source is even asked");
    assert_eq!(status_lines(&fake)[0]["event"], "skipped");
}

#[test]
fn a_status_file_planted_as_a_symlink_is_never_written_through() {
    let fake = service_lab("sonarr", Some(&["a"]));
    std::fs::write(fake.mountpoint("sonarr").join("config.xml"), "live").unwrap();
    let victim = fake.path("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir_all(fake.path("status")).unwrap();
    std::os::unix::fs::symlink(&victim, fake.path("status/preseed.json")).unwrap();
    let repo = fake.restic_repo("right", &[]);
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &json!({})));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "the result stands: {}", text(&out));
    assert!(text(&out).contains("preseed status file"), "the refusal is logged: {}", text(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn data_markers_refuse_a_dataset_holding_only_pre_created_entries() {
    let fake = service_lab("sonarr", Some(&["a"]));
    // A tmpfiles rule or StateDirectory made logs/ before the first start; the database is gone.
    std::fs::create_dir(fake.mountpoint("sonarr").join("logs")).unwrap();
    let repo = fake.restic_repo("right", &[]);
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &json!({"dataMarkers": ["sonarr.db"]})));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("none of preseed.dataMarkers exists"), "{}", text(&out));
    assert!(writes(&fake.take_calls()).is_empty(), "nothing restored over the entries");
    assert!(fake.restic_calls().is_empty());
    assert_eq!(status_lines(&fake)[0]["event"], "failed", "recorded like any failure");
    // The marker there: data present.
    std::fs::write(fake.mountpoint("sonarr").join("sonarr.db"), "live").unwrap();
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("data marker sonarr.db exists"), "{}", text(&out));
}

#[test]
fn empty_dataset_rolls_back_to_its_newest_snapshot() {
    let fake = service_lab("sonarr", Some(&["old", "new"]));
    std::fs::create_dir(fake.mountpoint("sonarr").join("lost+found")).unwrap();
    fake.snapshot_contents("sonarr", "old", &[("db", "old")]);
    fake.snapshot_contents("sonarr", "new", &[("db", "new")]);
    let config = preseed_config(&fake, "sonarr", &json!({"enable": true, "sources": ["snapshot"]}));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(fake.mountpoint("sonarr").join("db")).unwrap(), "new");
    // Marked before the rollback; the mark goes once the provenance is recorded.
    let at =
        |a: String| if a.starts_with("persistctl:restored-at=") { "persistctl:restored-at=<now>".into() } else { a };
    let w: Vec<Vec<String>> = fake.take_writes().into_iter().map(|c| c.into_iter().map(at).collect()).collect();
    expect![[r#"
        zfs set persistctl:rolling-back=tank/persist/sonarr@new tank/persist/sonarr
        zfs rollback tank/persist/sonarr@new
        zfs set persistctl:restored-from=snapshot 'persistctl:restored-at=<now>' persistctl:restored-snapshot=tank/persist/sonarr@new tank/persist/sonarr
        zfs inherit persistctl:rolling-back tank/persist/sonarr"#]].assert_eq(&argv_log(&w));
    let props = fake.local_props(DS);
    assert_eq!(props["persistctl:restored-from"], "snapshot");
    assert_eq!(props["persistctl:restored-snapshot"], format!("{DS}@new"));
    // A rerun sees real data.
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(text(&out).contains("skipped"), "{}", text(&out));
    assert!(writes(&fake.take_calls()).is_empty());
}

#[test]
fn an_older_snapshot_with_data_behind_an_empty_newest_one_fails_closed_and_destroys_nothing() {
    let fake = service_lab("sonarr", Some(&["full", "empty"]));
    fake.snapshot_contents("sonarr", "full", &[("db", "x")]);
    fake.snapshot_contents("sonarr", "empty", &[]);
    let config =
        preseed_config(&fake, "sonarr", &json!({"enable": true, "sources": ["snapshot"], "allowEmptyBootstrap": true}));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("never does"), "{}", text(&out));
    assert!(writes(&fake.take_calls()).is_empty(), "no rollback, no -r, no set");
}

#[test]
fn a_missing_dataset_is_created_then_restored_from_the_newest_restic_snapshot_at_an_old_path() {
    let fake = service_lab("sonarr", None);
    let repo = fake.restic_repo(
        "right",
        &[
            ("1111111111", T1, &["sonarr"], "/old/var/lib/sonarr", &[("db", "older")]),
            ("2222222222", T2, &["sonarr"], "/old/var/lib/sonarr", &[("db", "newest"), ("sub dir/x", "y")]),
            ("3333333333", "2024-06-01T00:00:00Z", &["other"], "/old/var/lib/sonarr", &[("db", "other")]),
        ],
    );
    let config = preseed_config(
        &fake,
        "sonarr",
        &restic_preseed(&fake, &repo, &json!({"restic": {"path": "/old/var/lib/sonarr"}})),
    );
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let mp = fake.mountpoint("sonarr");
    assert_eq!(std::fs::read_to_string(mp.join("db")).unwrap(), "newest");
    assert_eq!(std::fs::read_to_string(mp.join("sub dir/x")).unwrap(), "y");
    assert_eq!(entries(&fake, "sonarr"), ["db", "sub dir"], "no staging left");
    let calls = fake.take_calls();
    assert_eq!(writes(&calls)[0][0], "create");
    let props = fake.local_props(DS);
    assert_eq!(props["persistctl:restored-from"], "restic");
    assert_eq!(props["persistctl:restored-snapshot"], "2222222222");
    assert!(text(&out).contains("full send"), "{}", text(&out));
    for call in fake.restic_calls() {
        let argv = call["argv"].to_string();
        assert!(!argv.contains("right") && !argv.contains(&repo), "no secret or repository on argv: {argv}");
        let env = call["env"].to_string();
        assert!(env.contains("RESTIC_PASSWORD_FILE") && !env.contains("\"RESTIC_PASSWORD\""), "{env}");
    }
    let status = status_lines(&fake);
    assert_eq!(status[0]["event"], "restored");
    assert!(status[0]["note"].as_str().unwrap().contains("full send"));
}

fn fails_closed(fake: &Fake, out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    assert!(text(out).contains(needle), "wanted {needle:?} in {}", text(out));
    assert!(entries(fake, "sonarr").is_empty(), "the dataset is left empty, no staging: {:?}", entries(fake, "sonarr"));
    assert_eq!(status_lines(fake).last().unwrap()["event"], "failed");
    assert!(fake.local_props(DS).get("persistctl:restored-from").is_none());
}

#[test]
fn wrong_password_fails_closed_even_with_allow_empty_bootstrap() {
    let fake = service_lab("sonarr", Some(&[]));
    let repo = fake.restic_repo("other", &[("1111111111", T1, &["sonarr"], "/x", &[("db", "x")])]);
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &json!({"allowEmptyBootstrap": true})));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    fails_closed(&fake, &out, "wrong password");
}

#[test]
fn unreachable_repository_fails_closed() {
    let fake = service_lab("sonarr", Some(&[]));
    let config = preseed_config(
        &fake,
        "sonarr",
        &restic_preseed(
            &fake,
            &fake.path("unmounted-nas").display().to_string(),
            &json!({"allowEmptyBootstrap": true}),
        ),
    );
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    fails_closed(&fake, &out, "does not exist or cannot be opened (exit 10)");
}

#[test]
fn no_backup_anywhere_fails_closed_unless_empty_bootstrap_is_allowed() {
    let fake = service_lab("sonarr", Some(&[]));
    let repo = fake.restic_repo("right", &[("1111111111", T1, &["other"], "/x", &[("db", "x")])]);
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &json!({})));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    fails_closed(&fake, &out, "no source holds a backup");
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &json!({"allowEmptyBootstrap": true})));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fake.local_props(DS)["persistctl:restored-from"], "empty");
    assert_eq!(status_lines(&fake).last().unwrap()["event"], "empty-bootstrap");
}

#[test]
fn a_corrupt_snapshot_fails_closed_and_its_staging_is_removed() {
    let fake = service_lab("sonarr", Some(&[]));
    let repo = fake.restic_repo("right", &[("1111111111", T1, &["sonarr"], "/x", &[("db", "x")])]);
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &json!({"restic": {"path": "/x"}})));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[("FAKE_RESTIC_FAIL", "restore")]);
    fails_closed(&fake, &out, "ciphertext verification failed");
}

#[test]
fn a_failing_verify_hook_rejects_the_source_and_a_passing_one_sees_the_staged_data() {
    let fake = service_lab("sonarr", Some(&[]));
    let repo = fake.restic_repo("right", &[("1111111111", T1, &["sonarr"], "/x", &[("db", "x")])]);
    let reject = json!({"restic": {"path": "/x"}, "verifyCommand": ["sh", "-c", "echo bad db >&2; exit 3", "verify"]});
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &reject));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    fails_closed(&fake, &out, "verify command rejected");
    assert!(text(&out).contains("bad db"), "{}", text(&out));
    let accept =
        json!({"restic": {"path": "/x"}, "verifyCommand": ["sh", "-c", "test \"$(cat \"$1/db\")\" = x", "verify"]});
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &accept));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(entries(&fake, "sonarr"), ["db"]);
}

#[test]
fn a_timeout_kills_restic_and_fails_closed() {
    let fake = service_lab("sonarr", Some(&[]));
    let repo = fake.restic_repo("right", &[("1111111111", T1, &["sonarr"], "/x", &[("db", "x")])]);
    let config = preseed_config(
        &fake,
        "sonarr",
        &restic_preseed(
            &fake,
            &repo,
            &json!({"sourceTimeout": 1, "allowEmptyBootstrap": true, "restic": {"path": "/x"}}),
        ),
    );
    let started = std::time::Instant::now();
    let out = run_preseed(&fake, &config, "sonarr", &[], &[("FAKE_RESTIC_HANG", "30")]);
    assert!(started.elapsed().as_secs() < 10, "killed at the timeout");
    fails_closed(&fake, &out, "timed out");
}

#[test]
fn a_failed_source_is_followed_by_the_next_one() {
    let fake = service_lab("sonarr", Some(&["s1"]));
    fake.snapshot_contents("sonarr", "s1", &[("db", "snap")]);
    let repo = fake.restic_repo("other", &[]);
    let mut p = restic_preseed(&fake, &repo, &json!({}));
    p["sources"] = json!(["restic", "snapshot"]);
    let config = preseed_config(&fake, "sonarr", &p);
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("restic    failed: wrong password"), "{}", text(&out));
    assert_eq!(fake.local_props(DS)["persistctl:restored-from"], "snapshot");
}

#[test]
fn dry_run_says_which_source_and_why_and_changes_nothing() {
    let fake = service_lab("sonarr", None);
    let repo = fake.restic_repo("right", &[("1111111111", T1, &["sonarr"], "/x", &[("db", "x")])]);
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &json!({"restic": {"path": "/x"}})));
    let out = run_preseed(&fake, &config, "sonarr", &["--dry-run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("would restore from restic"), "{}", text(&out));
    assert!(writes(&fake.take_calls()).is_empty());
    assert!(fake.restic_calls().iter().all(|c| c["argv"][1] == "snapshots"));
    assert!(entries(&fake, "sonarr").is_empty());
    assert!(status_lines(&fake).is_empty(), "a dry run records nothing");
}

#[test]
fn names_with_spaces_work() {
    let fake = service_lab("my app", Some(&[]));
    let repo = fake.restic_repo("right", &[("1111111111", T1, &["my app"], "/old path/my app", &[("a file", "x")])]);
    let config = preseed_config(
        &fake,
        "my app",
        &restic_preseed(&fake, &repo, &json!({"restic": {"path": "/old path/my app"}})),
    );
    let out = run_preseed(&fake, &config, "my app", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(entries(&fake, "my app"), ["a file"]);
    assert_eq!(fake.local_props("tank/persist/my app")["persistctl:restored-from"], "restic");
}

#[test]
fn a_killed_runs_leftovers_are_removed_or_finished() {
    let fake = service_lab("sonarr", Some(&[]));
    let repo = fake.restic_repo("right", &[("1111111111", T1, &["sonarr"], "/x", &[("db", "restored")])]);
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &json!({"restic": {"path": "/x"}})));
    let mp = fake.mountpoint("sonarr");
    // Unverified (no swap.json): removed, then a fresh restore.
    std::fs::create_dir_all(mp.join(".persistctl-staging-restic-99/data/x")).unwrap();
    private(&mp.join(".persistctl-staging-restic-99"));
    std::fs::write(mp.join(".persistctl-staging-restic-99/data/x/db"), "partial").unwrap();
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(mp.join("db")).unwrap(), "restored");
    assert_eq!(entries(&fake, "sonarr"), ["db"]);
    // Verified and half swapped: finished without asking restic again.
    std::fs::remove_file(mp.join("db")).unwrap();
    let st = mp.join(".persistctl-staging-restic-98");
    std::fs::create_dir_all(st.join("data/x/sub")).unwrap();
    private(&st);
    std::fs::write(st.join("data/x/sub/f"), "rest").unwrap();
    std::fs::write(mp.join("db"), "moved before the crash").unwrap();
    std::fs::write(st.join("swap.json"), r#"{"source":"restic","snapshot":"1111111111","data_root":"data/x"}"#)
        .unwrap();
    let calls_before = fake.restic_calls().len();
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("finished the swap"), "{}", text(&out));
    assert_eq!(entries(&fake, "sonarr"), ["db", "sub"]);
    assert_eq!(fake.restic_calls().len(), calls_before);
}

/// Mode 0700, as persistctl makes its staging directories (it runs as root, so they are root's).
fn private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn planted_staging_is_refused_and_left_in_place() {
    use std::os::unix::fs::PermissionsExt as _;
    let fake = service_lab("sonarr", Some(&[]));
    let repo = fake.restic_repo("right", &[("1111111111", T1, &["sonarr"], "/x", &[("db", "restored")])]);
    let config = preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &json!({"restic": {"path": "/x"}})));
    let mp = fake.mountpoint("sonarr");
    let elsewhere = fake.path("elsewhere");
    std::fs::create_dir_all(elsewhere.join("data")).unwrap();
    std::fs::write(elsewhere.join("data/secret"), "not yours").unwrap();
    std::fs::set_permissions(elsewhere.join("data"), std::fs::Permissions::from_mode(0o711)).unwrap();
    let journal = |root: &str| format!(r#"{{"source":"restic","snapshot":"1111111111","data_root":"{root}"}}"#);
    std::fs::write(elsewhere.join("swap.json"), journal("data")).unwrap();
    // 1. A symlink with a staging name (the service user owns the dataset root and can plant it).
    let link = mp.join(".persistctl-staging-restic-97");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(".persistctl-staging-restic-97"), "names it: {}", text(&out));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "left in place");
    assert_eq!(std::fs::read_to_string(elsewhere.join("data/secret")).unwrap(), "not yours", "nothing moved");
    assert!(!mp.join("secret").exists());
    let mode = std::fs::metadata(&mp).unwrap().permissions().mode() & 0o7777;
    assert_ne!(mode, 0o711, "the dataset root did not take another path's mode");
    std::fs::remove_file(&link).unwrap();
    // 2. A real 0700 directory whose journal's data_root leaves it.
    let st = mp.join(".persistctl-staging-restic-96");
    std::fs::create_dir(&st).unwrap();
    private(&st);
    std::fs::write(st.join("swap.json"), journal(&format!("../../{}", "elsewhere/data"))).unwrap();
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("data_root"), "{}", text(&out));
    assert!(st.join("swap.json").exists(), "left in place");
    assert_eq!(std::fs::read_to_string(elsewhere.join("data/secret")).unwrap(), "not yours");
    assert!(fake.local_props(DS).get("persistctl:restored-from").is_none());
}

#[test]
fn the_notify_hook_gets_the_event_and_its_failure_changes_nothing() {
    let fake = service_lab("sonarr", Some(&[]));
    std::fs::write(fake.mountpoint("sonarr").join("db"), "x").unwrap();
    let config = preseed_config(&fake, "sonarr", &json!({"enable": true, "sources": ["snapshot"]}));
    let log = fake.path("notify.log");
    let script = format!("printf '%s\\n' \"$@\" > '{}'; exit 7", log.display());
    let out = run_preseed(
        &fake,
        &config,
        "sonarr",
        &["--notify-command", "sh", "--notify-command", "-c", "--notify-command", &script, "--notify-command", "hook"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(args.starts_with("preseed-skipped\nservice=sonarr\ndataset=tank/persist/sonarr\n"), "{args}");
    assert!(text(&out).contains("notify command failed"), "{}", text(&out));
}

#[test]
fn a_dataset_that_exists_but_is_not_mounted_is_mounted_only_where_nothing_is_hidden() {
    let fake = service_lab("sonarr", Some(&[]));
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(fake.path("state.json")).unwrap()).unwrap();
    state["datasets"][DS]["mounted"] = json!(false);
    std::fs::write(fake.path("state.json"), state.to_string()).unwrap();
    let config = preseed_config(&fake, "sonarr", &json!({"enable": true, "sources": [], "allowEmptyBootstrap": true}));
    // Files at the mountpoint: mounting would hide them, so it fails closed and mounts nothing.
    std::fs::write(fake.mountpoint("sonarr").join("stray"), "x").unwrap();
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not mounted"), "{}", text(&out));
    assert!(writes(&fake.take_calls()).is_empty(), "nothing mounted or changed");
    // A free mountpoint (a run killed inside `zfs create` leaves this): mounted, then judged as usual.
    std::fs::remove_file(fake.mountpoint("sonarr").join("stray")).unwrap();
    let dry = run_preseed(&fake, &config, "sonarr", &["--dry-run"], &[]);
    assert!(dry.status.success() && text(&dry).contains("would mount it at"), "{}", text(&dry));
    assert!(writes(&fake.take_calls()).is_empty(), "a dry run mounts nothing");
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success() && text(&out).contains("starting empty"), "{}", text(&out));
    assert_eq!(writes(&fake.take_calls())[0], &["mount", DS]);
    // canmount=noauto is the owner's choice: never mounted by preseed.
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(fake.path("state.json")).unwrap()).unwrap();
    state["datasets"][DS]["mounted"] = json!(false);
    state["datasets"][DS]["local"]["canmount"] = json!("noauto");
    std::fs::write(fake.path("state.json"), state.to_string()).unwrap();
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!writes(&fake.take_calls()).iter().any(|c| c[0] == "mount"));
}

/// Adds a replica pool `backup` with `backup/replica/<service>` holding `snapshots`, each with `files`.
fn with_replica(fake: &Fake, service: &str, snapshots: &[(&str, &[(&str, &str)])]) -> String {
    let path = fake.path("state.json");
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let replica = format!("backup/replica/{service}");
    let mnt = fake.path("replica-mnt");
    state["datasets"]["backup"] = json!({"local": {"mountpoint": "none"}});
    state["datasets"]["backup/replica"] = json!({"local": {}});
    let names: Vec<&str> = snapshots.iter().map(|(n, _)| *n).collect();
    state["datasets"][&replica] =
        json!({"local": {"mountpoint": mnt.display().to_string()}, "mounted": false, "snapshots": names});
    for (snap, files) in snapshots {
        let dir = mnt.join(".zfs/snapshot").join(snap);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in *files {
            std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    std::fs::write(&path, state.to_string()).unwrap();
    replica
}

#[test]
fn replica_is_received_beside_the_target_verified_and_swapped_in_keeping_the_empty_one() {
    let fake = service_lab("sonarr", Some(&[]));
    let replica = with_replica(&fake, "sonarr", &[("r0", &[("old", "x")]), ("r1", &[("db", "v1"), ("sub/f", "2")])]);
    let seen = fake.path("seen");
    let verify = json!({"verifyCommand": ["sh", "-c", format!("ls \"$1\" > '{}'", seen.display()), "v"]});
    let config = preseed_config(&fake, "sonarr", &common::config::replica_preseed(&replica, &verify));
    let dry = run_preseed(&fake, &config, "sonarr", &["--dry-run"], &[]);
    assert!(text(&dry).contains("would restore from replica: newest of 2 snapshot(s)"), "{}", text(&dry));
    assert!(writes(&fake.take_calls()).is_empty(), "dry run writes nothing");
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("lineage is kept"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "db\nsub\n", "verified at a private mountpoint");
    assert_eq!(entries(&fake, "sonarr"), ["db", "sub"]);
    let calls = fake.take_calls();
    let send = calls.iter().find(|c| c[0] == "send").unwrap();
    assert_eq!(send, &["send", "-L", "-e", "-c", "backup/replica/sonarr@r1"]);
    let recv = calls.iter().find(|c| c[0] == "receive").unwrap();
    assert_eq!(recv[..6], ["receive", "-u", "-o", "canmount=noauto", "-o", "mountpoint=none"]);
    assert_eq!(recv.last().unwrap(), "tank/persist/sonarr.persistctl-staging");
    let ds = fake.datasets();
    let aside: Vec<&String> =
        ds.as_object().unwrap().keys().filter(|k| k.starts_with("tank/persist/sonarr.persistctl-empty-")).collect();
    assert_eq!(aside.len(), 1, "{ds}");
    assert_eq!(ds[aside[0]]["local"]["canmount"], "noauto");
    assert_eq!(ds[aside[0]]["local"]["mountpoint"], "none");
    assert!(text(&out).contains(aside[0].as_str()), "the note names the kept dataset: {}", text(&out));
    assert!(ds.get("tank/persist/sonarr.persistctl-staging").is_none());
    let props = fake.local_props(DS);
    assert_eq!(props["persistctl:restored-from"], "replica");
    assert_eq!(props["persistctl:restored-snapshot"], "backup/replica/sonarr@r1");
    assert!(props.get("persistctl:staging").is_none() && props.get("canmount").is_none(), "{props}");
    assert_eq!(props["mountpoint"], fake.mountpoint("sonarr").display().to_string());
    assert_eq!(fake.datasets()[DS]["snapshots"], json!(["r1"]), "lineage: the replica's snapshot");
    let again = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(again.status.success() && text(&again).contains("skipped"), "{}", text(&again));
}

#[test]
fn replica_restores_a_missing_dataset_without_creating_an_empty_one_first() {
    let fake = service_lab("sonarr", None);
    std::fs::remove_dir(fake.mountpoint("sonarr")).unwrap();
    let replica = with_replica(&fake, "sonarr", &[("r1", &[("db", "v1")])]);
    let config = preseed_config(&fake, "sonarr", &common::config::replica_preseed(&replica, &json!({})));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(entries(&fake, "sonarr"), ["db"]);
    let calls = fake.take_calls();
    assert!(!calls.iter().any(|c| c[0] == "create"), "{calls:?}");
    assert!(!fake.datasets().as_object().unwrap().keys().any(|k| k.contains("persistctl-empty")));
}

#[test]
fn replica_missing_fails_closed_and_no_snapshots_is_no_backup() {
    let fake = service_lab("sonarr", Some(&[]));
    let allow = json!({"allowEmptyBootstrap": true, "sources": ["replica"]});
    let config = preseed_config(&fake, "sonarr", &common::config::replica_preseed("backup/replica/sonarr", &allow));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    fails_closed(&fake, &out, "does not exist");
    with_replica(&fake, "sonarr", &[]);
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success() && text(&out).contains("has no snapshots"), "{}", text(&out));
    assert!(text(&out).contains("starting empty"), "{}", text(&out));
}

#[test]
fn a_killed_replica_swap_is_finished_from_each_leftover_state() {
    let fake = service_lab("sonarr", Some(&[]));
    let replica = with_replica(&fake, "sonarr", &[("r1", &[("db", "v1")])]);
    let config =
        preseed_config(&fake, "sonarr", &common::config::replica_preseed(&replica, &json!({"sources": ["replica"]})));
    let snap = "backup/replica/sonarr@r1";
    let staging_props = |state: &str| {
        json!({"canmount": "noauto", "mountpoint": "none", "persistctl:staging": state,
               "persistctl:staging-snapshot": snap})
    };
    let put = |name: &str, entry: Value| {
        let path = fake.path("state.json");
        let mut state: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if entry.is_null() {
            state["datasets"].as_object_mut().unwrap().remove(name);
        } else {
            state["datasets"][name] = entry;
        }
        std::fs::write(&path, state.to_string()).unwrap();
    };
    let store = |name: &str| {
        let dir = fake.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("db"), "v1").unwrap();
        dir.display().to_string()
    };
    let st = "tank/persist/sonarr.persistctl-staging";
    // 1. Verified staging beside an empty target: swapped in without receiving again.
    put(st, json!({"local": staging_props("verified"), "mounted": false, "snapshots": ["r1"], "store": store("s1")}));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success() && text(&out).contains("swap in the verified"), "{}", text(&out));
    assert!(!fake.take_calls().iter().any(|c| c[0] == "send"));
    assert_eq!(entries(&fake, "sonarr"), ["db"]);
    // 2. Renamed into place but not settled (unmounted, mountpoint=none, still marked).
    put(DS, json!({"local": staging_props("verified"), "mounted": false, "snapshots": ["r1"], "store": store("s2")}));
    std::fs::remove_dir_all(fake.mountpoint("sonarr")).unwrap();
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success() && text(&out).contains("finish the replica restore"), "{}", text(&out));
    assert_eq!(entries(&fake, "sonarr"), ["db"]);
    assert_eq!(fake.local_props(DS)["persistctl:restored-from"], "replica");
    // 3. Target marked aside and unmounted, staging only received: unmarked, then received again and used.
    let mp = fake.mountpoint("sonarr").display().to_string();
    std::fs::remove_dir_all(fake.mountpoint("sonarr")).unwrap();
    std::fs::create_dir_all(fake.path("s3")).unwrap();
    put(
        DS,
        json!({"local": {"mountpoint": mp, "canmount": "noauto", "persistctl:empty-aside": "x"}, "mounted": false,
               "store": fake.path("s3").display().to_string()}),
    );
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success() && text(&out).contains("unmark"), "{}", text(&out));
    assert_eq!(entries(&fake, "sonarr"), ["db"]);
    // 4. A dataset with the staging name that persistctl did not mark is never touched.
    put(DS, json!({"local": {"mountpoint": mp}, "mounted": true}));
    std::fs::remove_file(fake.mountpoint("sonarr").join("db")).unwrap();
    put(st, json!({"local": {}, "mounted": false, "snapshots": ["r1"]}));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not a persistctl staging dataset"), "{}", text(&out));
    assert!(fake.datasets().get(st).is_some());
}

#[test]
fn outcomes_go_out_through_the_notifications_section_and_a_failing_backend_changes_nothing() {
    let fake = service_lab("sonarr", Some(&[]));
    let replica = with_replica(&fake, "sonarr", &[("r1", &[("db", "v1")])]);
    let log = fake.path("notified");
    let record = format!(
        "echo \"$PERSISTCTL_NOTIFY_TEMPLATE|$PERSISTCTL_NOTIFY_TITLE|$PERSISTCTL_NOTIFY_VARS\" >> '{}'",
        log.display()
    );
    let mut text_config: Value = serde_json::from_str(
        &std::fs::read_to_string(preseed_config(
            &fake,
            "sonarr",
            &common::config::replica_preseed(&replica, &json!({})),
        ))
        .unwrap(),
    )
    .unwrap();
    text_config["notifications"] = json!({"timeout": 5, "attempts": 1, "retryDelay": 0, "backends": {"command": {
        "log": {"command": ["sh", "-c", record]},
        "broken": {"command": ["sh", "-c", "exit 3"]}}}});
    let config = fake.path("notify.json");
    std::fs::write(&config, text_config.to_string()).unwrap();
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "a failing backend never changes the result: {}", text(&out));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("preseed-success|Data Restored: sonarr|"), "{}", lines[0]);
    let vars: Value = serde_json::from_str(lines[0].splitn(3, '|').nth(2).unwrap()).unwrap();
    assert_eq!(vars["restoreSource"], "replica");
    assert_eq!(vars["snapshot"], "backup/replica/sonarr@r1");
    assert!(vars["note"].as_str().unwrap().contains("lineage is kept"), "{vars}");
    assert!(lines[1].starts_with("preseed-skipped|"), "{}", lines[1]);
}

/// The calls that change the fake's state (its CHANGING list). A `zfs send` orphaned by a kill may still
/// log itself during the next run: it reads only.
fn changing(calls: &[Vec<String>]) -> Vec<&Vec<String>> {
    let verbs = ["create", "set", "rollback", "mount", "unmount", "inherit", "rename", "receive"];
    calls.iter().filter(|c| verbs.contains(&c[0].as_str())).collect()
}

/// Kills persistctl right before and right after each changing zfs call of a restore in turn (the
/// fake's `FAKE_ZFS_KILL_BEFORE` / `FAKE_ZFS_KILL_AT`), then reruns it: every rerun must end with the exact data, nothing of ours left
/// over, and a third run that changes nothing. A dry run on each crash state changes nothing. `setup` builds the scenario; `check` judges the result.
fn every_kill_point(setup: impl Fn() -> (Fake, PathBuf), check: impl Fn(&Fake)) -> usize {
    use std::os::unix::process::ExitStatusExt as _;
    let (fake, config) = setup();
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "uninterrupted run: {}", text(&out));
    check(&fake);
    let changes: usize = std::fs::read_to_string(fake.path("state.json.changes")).unwrap().parse().unwrap();
    assert!(changes > 0, "the restore changes something");
    let points = (1..=changes).flat_map(|n| [("FAKE_ZFS_KILL_BEFORE", n), ("FAKE_ZFS_KILL_AT", n)]);
    for (when, n) in points {
        let kill_at = format!("{when}={n}");
        let (fake, config) = setup();
        let killed = run_preseed(&fake, &config, "sonarr", &[], &[(when, &n.to_string())]);
        assert_eq!(killed.status.signal(), Some(9), "killed after change {kill_at}: {}", text(&killed));
        let before = std::fs::read_to_string(fake.path("state.json")).unwrap();
        fake.take_calls();
        let dry = run_preseed(&fake, &config, "sonarr", &["--dry-run"], &[]);
        assert!(changing(&fake.take_calls()).is_empty(), "kill at {kill_at}: a dry run writes nothing: {}", text(&dry));
        assert_eq!(std::fs::read_to_string(fake.path("state.json")).unwrap(), before, "kill at {kill_at}");
        let rerun = run_preseed(&fake, &config, "sonarr", &[], &[]);
        assert!(rerun.status.success(), "rerun after a kill at change {kill_at}: {}", text(&rerun));
        check(&fake);
        fake.take_calls();
        let third = run_preseed(&fake, &config, "sonarr", &[], &[]);
        assert!(text(&third).contains("skipped"), "kill at {kill_at}, third run: {}", text(&third));
        assert!(changing(&fake.take_calls()).is_empty(), "kill at {kill_at}: the third run changes nothing");
    }
    changes
}

/// The data is `db` = `v1`, and no staging of ours is left in the dataset or beside it.
fn restored_exactly(fake: &Fake, from: &str, snapshot: &str) {
    assert_eq!(entries(fake, "sonarr"), ["db"]);
    assert_eq!(std::fs::read_to_string(fake.mountpoint("sonarr").join("db")).unwrap(), "v1");
    let props = fake.local_props(DS);
    assert_eq!(props["persistctl:restored-from"], from, "{props}");
    assert_eq!(props["persistctl:restored-snapshot"], snapshot, "{props}");
    for leftover in ["persistctl:staging", "persistctl:staging-snapshot", "persistctl:empty-aside", "canmount"] {
        assert!(props.get(leftover).is_none(), "{leftover} left on the target: {props}");
    }
    let datasets = fake.datasets();
    assert!(datasets.get(format!("{DS}.persistctl-staging")).is_none(), "{datasets}");
    for (name, entry) in datasets.as_object().unwrap().iter().filter(|(n, _)| n.contains(".persistctl-empty-")) {
        assert_eq!(entry["local"]["canmount"], "noauto", "{name} kept aside, never mounting: {entry}");
        assert_eq!(entry["local"]["mountpoint"], "none", "{name}: {entry}");
    }
}

#[test]
fn a_kill_after_any_step_of_a_replica_restore_into_an_empty_dataset_is_finished_by_the_rerun() {
    let setup = || {
        let fake = service_lab("sonarr", Some(&[]));
        let replica = with_replica(&fake, "sonarr", &[("r1", &[("db", "v1")])]);
        let config = preseed_config(
            &fake,
            "sonarr",
            &common::config::replica_preseed(&replica, &json!({"sources": ["replica"]})),
        );
        (fake, config)
    };
    let changes = every_kill_point(setup, |fake| {
        restored_exactly(fake, "replica", "backup/replica/sonarr@r1");
        let asides = fake.datasets().as_object().unwrap().keys().filter(|n| n.contains("-empty-")).count();
        assert!(asides <= 1, "at most the one empty dataset is kept aside");
    });
    assert!(changes >= 8, "receive, verify mount, swap and settle are separate steps ({changes})");
}

#[test]
fn a_kill_after_any_step_of_a_replica_restore_of_a_missing_dataset_is_finished_by_the_rerun() {
    let setup = || {
        let fake = service_lab("sonarr", None);
        std::fs::remove_dir(fake.mountpoint("sonarr")).unwrap();
        let replica = with_replica(&fake, "sonarr", &[("r1", &[("db", "v1")])]);
        let config = preseed_config(&fake, "sonarr", &common::config::replica_preseed(&replica, &json!({})));
        (fake, config)
    };
    every_kill_point(setup, |fake| restored_exactly(fake, "replica", "backup/replica/sonarr@r1"));
}

#[test]
fn a_kill_after_any_step_of_a_snapshot_rollback_is_finished_by_the_rerun() {
    let setup = || {
        let fake = service_lab("sonarr", Some(&["s1"]));
        fake.snapshot_contents("sonarr", "s1", &[("db", "v1")]);
        let config = preseed_config(&fake, "sonarr", &json!({"enable": true, "sources": ["snapshot"]}));
        (fake, config)
    };
    every_kill_point(setup, |fake| restored_exactly(fake, "snapshot", "tank/persist/sonarr@s1"));
}

#[test]
fn a_kill_after_any_step_of_a_restic_restore_of_a_missing_dataset_is_finished_by_the_rerun() {
    let setup = || {
        let fake = service_lab("sonarr", None);
        std::fs::remove_dir(fake.mountpoint("sonarr")).unwrap();
        let repo = fake.restic_repo("right", &[("abc123", T2, &["sonarr"], "/var/lib/sonarr", &[("db", "v1")])]);
        let preseed =
            restic_preseed(&fake, &repo, &json!({"sources": ["restic"], "restic": {"path": "/var/lib/sonarr"}}));
        let config = preseed_config(&fake, "sonarr", &preseed);
        (fake, config)
    };
    every_kill_point(setup, |fake| restored_exactly(fake, "restic", "abc123"));
}

#[test]
fn a_failed_rollback_whose_mark_cannot_be_cleared_stops_the_chain_and_the_rerun_clears_it() {
    let fake = service_lab("sonarr", Some(&["s1"]));
    fake.snapshot_contents("sonarr", "s1", &[("db", "v1")]);
    let repo = fake.restic_repo("right", &[("abc123", T2, &["sonarr"], "/var/lib/sonarr", &[("db", "old")])]);
    let preseed = restic_preseed(&fake, &repo, &json!({"restic": {"path": "/var/lib/sonarr"}}));
    let config = preseed_config(&fake, "sonarr", &preseed);
    let fail = format!("rollback:{DS}@s1,inherit:{DS}");
    let out = run_preseed(&fake, &config, "sonarr", &[], &[("FAKE_ZFS_FAIL", &fail)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not trying further sources"), "{}", text(&out));
    assert!(fake.restic_calls().is_empty(), "restic is not asked once the dataset carries a stale mark");
    assert_eq!(fake.local_props(DS)["persistctl:rolling-back"], format!("{DS}@s1"));
    let out = run_preseed(&fake, &config, "sonarr", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(fake.mountpoint("sonarr").join("db")).unwrap(), "v1");
    let props = fake.local_props(DS);
    assert!(props.get("persistctl:rolling-back").is_none(), "{props}");
    assert_eq!(props["persistctl:restored-from"], "snapshot");
}

/// Secrets that must never leave persistctl: in its output, the status file, a notification or a hook.
const SECRETS: &[&str] =
    &["hunter2", "pw-s3cret-value", "aws-secret-value", "inherited-must-be-scrubbed", "parent-aws"];

/// A notification command backend and a `--notify-command` hook that each write their argv and
/// environment to a file; returns (config with notifications, the hook's argv for `preseed`).
fn recording_hooks(fake: &Fake, config: &Path) -> (PathBuf, Vec<String>) {
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    let backend = format!("{{ printf '%s\\n' \"$@\"; env; }} > '{}'", fake.path("backend.out").display());
    value["notifications"] = json!({"timeout": 5, "attempts": 1, "retryDelay": 0, "backends": {"command": {
        "rec": {"command": ["sh", "-c", backend, "backend"]}}}});
    let with_notifications = fake.path("notify.json");
    std::fs::write(&with_notifications, value.to_string()).unwrap();
    let hook = format!("{{ printf '%s\\n' \"$@\"; env; }} > '{}'", fake.path("hook.out").display());
    let argv = ["sh", "-c", hook.as_str(), "hook"].map(|a| ["--notify-command".to_string(), a.to_string()]);
    (with_notifications, argv.concat())
}

/// Everything persistctl said or handed on: stdout, stderr, the status file, the backend's and the hook's
/// argv and environment.
fn everything_said(fake: &Fake, out: &Output) -> String {
    let read = |name: &str| std::fs::read_to_string(fake.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    format!(
        "{}\nstatus:\n{}\nbackend:\n{}\nhook:\n{}",
        text(out),
        read("status/preseed.json"),
        read("backend.out"),
        read("hook.out")
    )
}

#[test]
fn a_restic_error_quoting_a_url_password_and_known_secrets_reaches_no_output_file_or_notification() {
    use std::os::unix::fs::PermissionsExt as _;
    let fake = service_lab("sonarr", Some(&[]));
    std::fs::write(fake.path("password"), "pw-s3cret-value\n").unwrap();
    let repo = fake.restic_repo("pw-s3cret-value", &[("1111111111", T1, &["sonarr"], "/x", &[("db", "x")])]);
    std::fs::write(fake.path("restic.env"), "AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY=aws-secret-value\n")
        .unwrap();
    let env_file = fake.path("restic.env").display().to_string();
    let config = preseed_config(
        &fake,
        "sonarr",
        &restic_preseed(&fake, &repo, &json!({"restic": {"environmentFile": env_file}})),
    );
    let (config, hook) = recording_hooks(&fake, &config);
    // An older status file, world-readable: made private on the next append.
    std::fs::create_dir_all(fake.path("status")).unwrap();
    std::fs::write(fake.path("status/preseed.json"), "").unwrap();
    std::fs::set_permissions(fake.path("status/preseed.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let message = "Fatal: unable to open repository at sftp://u:hunter2@h/srv/restic: ssh: pw-s3cret-value \
                   aws-secret-value rejected";
    let hook: Vec<&str> = hook.iter().map(String::as_str).collect();
    let out = run_preseed(
        &fake,
        &config,
        "sonarr",
        &hook,
        &[
            ("FAKE_RESTIC_FAIL", "snapshots"),
            ("FAKE_RESTIC_FAIL_MESSAGE", message),
            ("AWS_SECRET_ACCESS_KEY", "parent-aws"),
            ("RUST_LOG", "debug"),
        ],
    );
    fails_closed(&fake, &out, "sftp://u:***@h/srv/restic");
    let said = everything_said(&fake, &out);
    for secret in SECRETS {
        assert!(!said.contains(secret), "{secret:?} leaked:\n{said}");
    }
    assert!(said.contains("ssh: *** *** rejected"), "known secrets are masked, the rest kept:\n{said}");
    let hook_env = std::fs::read_to_string(fake.path("hook.out")).unwrap();
    assert!(hook_env.contains("\nPATH=") && hook_env.starts_with("preseed-failed\n"), "{hook_env}");
    assert!(!hook_env.contains("RESTIC_") && !hook_env.contains("AWS_") && !hook_env.contains("FAKE_"), "{hook_env}");
    let backend_env = std::fs::read_to_string(fake.path("backend.out")).unwrap();
    assert!(backend_env.contains("PERSISTCTL_NOTIFY_TEMPLATE=preseed-failure"), "{backend_env}");
    assert!(!backend_env.contains("RESTIC_") && !backend_env.contains("AWS_"), "{backend_env}");
    let mode = std::fs::metadata(fake.path("status/preseed.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the status file quotes errors: root only");
}

#[test]
fn a_bare_secret_line_in_the_environment_file_is_named_by_its_line_number_never_quoted() {
    let fake = service_lab("sonarr", Some(&[]));
    let repo = fake.restic_repo("right", &[("1111111111", T1, &["sonarr"], "/x", &[("db", "x")])]);
    let env_file = fake.path("restic.env");
    // A pasted key on its own line, and one whose part before '=' is not a name.
    std::fs::write(&env_file, "# S3\nAWS_ACCESS_KEY_ID=AKIAEXAMPLE\nwJalrXUtnFEMI/K7MDENG+bPxRfiCYhunter2\n").unwrap();
    let env = env_file.display().to_string();
    let config =
        preseed_config(&fake, "sonarr", &restic_preseed(&fake, &repo, &json!({"restic": {"environmentFile": env}})));
    let (config, hook) = recording_hooks(&fake, &config);
    let hook: Vec<&str> = hook.iter().map(String::as_str).collect();
    let out = run_preseed(&fake, &config, "sonarr", &hook, &[]);
    fails_closed(&fake, &out, &format!("Bad restic environment file {env}: line 3: expected KEY=value"));
    let said = everything_said(&fake, &out);
    for secret in ["wJalrXUtnFEMI", "hunter2", "AKIAEXAMPLE"] {
        assert!(!said.contains(secret), "{secret:?} leaked:\n{said}");
    }
    std::fs::write(&env_file, "AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nsecret/part+x=hunter2\n").unwrap();
    let out = run_preseed(&fake, &config, "sonarr", &hook, &[]);
    fails_closed(&fake, &out, "line 2: the part before '=' is not a variable name");
    let said = everything_said(&fake, &out);
    for secret in ["secret/part", "hunter2", "AKIAEXAMPLE"] {
        assert!(!said.contains(secret), "{secret:?} leaked:\n{said}");
    }
}
