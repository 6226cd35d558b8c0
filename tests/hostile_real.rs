//! Forged `zfs get` rows on REAL OpenZFS, inside the QEMU VM
//! (`SUITES=hostile_real tests/vm/real-zfs-tests.sh`): a real user property whose value holds a tab and a
//! line break forging a mountpoint row. persistctl never reads a foreign one (it asks for its properties
//! by name) and refuses one it reads, naming it; `zpool history` shows no write either way. On a host
//! without `/dev/zfs` they are ignored, and cargo counts them as ignored: never a silent pass.
//!
//! Each test makes its own pool on a sparse file in the guest's tmpfs and destroys it afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

/// The persistctl binary: `$PERSISTCTL_BIN`, or cargo's path (seen under /host inside the VM).
fn persistctl_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PERSISTCTL_BIN") {
        return bin.into();
    }
    let built = PathBuf::from(env!("CARGO_BIN_EXE_persistctl"));
    if built.exists() { built } else { Path::new("/host").join(built.strip_prefix("/").unwrap()) }
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A throwaway pool on a sparse file with `<pool>/persist` mounted at a directory, destroyed on drop.
struct Pool {
    name: String,
    dir: PathBuf,
}

impl Pool {
    fn new(name: &str) -> Self {
        let dir = PathBuf::from(format!("/tmp/persistctl-test-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("vdev.img");
        ok("truncate", &["-s", "256M", img.to_str().unwrap()]);
        ok("zpool", &["create", "-f", "-o", "cachefile=none", "-O", "mountpoint=none", name, img.to_str().unwrap()]);
        let pool = Self { name: name.to_string(), dir };
        ok("zfs", &["create", "-o", &format!("mountpoint={}", pool.parent_mount()), &pool.parent()]);
        std::fs::create_dir_all(pool.dir.join("decoy")).unwrap();
        pool
    }

    fn parent(&self) -> String {
        format!("{}/persist", self.name)
    }

    fn parent_mount(&self) -> String {
        self.dir.join("persist").display().to_string()
    }

    fn dataset(&self) -> String {
        format!("{}/sonarr", self.parent())
    }

    fn mountpoint(&self) -> PathBuf {
        self.dir.join("persist/sonarr")
    }

    fn config(&self) -> PathBuf {
        let text = json!({"version": 1, "datasets": {"parentDataset": self.parent(), "parentMount": self.parent_mount(),
        "services": {"sonarr": {
            "properties": {"com.sun:auto-snapshot": "true"},
            "preseed": {"enable": true, "sources": ["snapshot"]},
        }}}});
        let path = self.dir.join("config.json");
        std::fs::write(&path, text.to_string()).unwrap();
        path
    }

    /// `zpool history` lines: every write to the pool is logged there.
    fn history(&self) -> Vec<String> {
        ok("zpool", &["history", &self.name]).lines().filter(|l| !l.is_empty()).map(String::from).collect()
    }

    fn persistctl(&self, config: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(persistctl_bin());
        cmd.arg("--config").arg(config).args(args).env("PERSISTCTL_LOCK", self.dir.join("lock"));
        cmd.env("PERSISTCTL_PRESEED_STATUS", self.dir.join("preseed.json"));
        cmd.output().unwrap()
    }

    /// The service dataset created by `apply`, holding newer data, with a snapshot of an older state.
    fn with_service(name: &str) -> (Self, PathBuf) {
        let pool = Self::new(name);
        let config = pool.config();
        let out = pool.persistctl(&config, &["apply"]);
        assert!(out.status.success(), "{}", text(&out));
        std::fs::write(pool.mountpoint().join("config.xml"), "older").unwrap();
        ok("zfs", &["snapshot", &format!("{}@before", pool.dataset())]);
        std::fs::write(pool.mountpoint().join("config.xml"), "newer data").unwrap();
        (pool, config)
    }

    /// `x<TAB>local<LF><dataset><TAB>mountpoint<TAB><decoy><TAB>local`, set with `zfs set` as root would.
    fn forge(&self, property: &str) {
        let value = format!("x\tlocal\n{}\tmountpoint\t{}\tlocal", self.dataset(), self.dir.join("decoy").display());
        ok("zfs", &["set", &format!("{property}={value}"), &self.dataset()]);
        let raw = ok("zfs", &["get", "-H", "-o", "value", property, &self.dataset()]);
        assert!(raw.contains('\n') && raw.lines().count() > 1, "real zfs prints it raw: {raw:?}");
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = run("zpool", &["destroy", "-f", &self.name]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn a_real_foreign_property_forging_a_mountpoint_row_changes_nothing() {
    let (pool, config) = Pool::with_service("pcl-hostile-foreign");
    pool.forge("evil:x");
    let history = pool.history();
    let plan = pool.persistctl(&config, &["plan"]);
    assert_eq!(plan.status.code(), Some(0), "in sync, the decoy unseen: {}", text(&plan));
    let apply = pool.persistctl(&config, &["apply"]);
    assert!(apply.status.success(), "{}", text(&apply));
    let preseed = pool.persistctl(&config, &["preseed", "sonarr"]);
    assert!(preseed.status.success() && text(&preseed).contains("data present"), "{}", text(&preseed));
    assert_eq!(pool.history(), history, "zpool history shows no write");
    assert_eq!(std::fs::read_to_string(pool.mountpoint().join("config.xml")).unwrap(), "newer data", "not rolled back");
}

#[test]
#[ignore = "needs real ZFS: tests/vm/real-zfs-tests.sh"]
fn a_real_forged_row_in_a_property_persistctl_reads_is_refused_and_nothing_is_written() {
    for (property, commands) in [
        ("com.sun:auto-snapshot", &[&["plan"][..], &["apply"]][..]),
        ("persistctl:restored-from", &[&["preseed", "sonarr"][..]][..]),
    ] {
        let (pool, config) = Pool::with_service(&format!("pcl-hostile-{}", property.len()));
        pool.forge(property);
        let history = pool.history();
        for args in commands {
            let out = pool.persistctl(&config, args);
            let said = text(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?} with a forged {property}: {said}");
            assert!(said.contains("malformed `zfs get` output"), "{said}");
            assert!(said.contains(&format!("{}'s {property}", pool.dataset())), "names dataset and property: {said}");
        }
        assert_eq!(pool.history(), history, "{property}: zpool history shows no write");
        let data = std::fs::read_to_string(pool.mountpoint().join("config.xml")).unwrap();
        assert_eq!(data, "newer data", "not rolled back");
        // The way out the error names: clear it, and everything works again.
        ok("zfs", &["inherit", property, &pool.dataset()]);
        let out = pool.persistctl(&config, &["apply"]);
        assert!(out.status.success(), "{}", text(&out));
    }
}
