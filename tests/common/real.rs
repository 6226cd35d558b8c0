//! The real-ZFS suites' side, run inside the QEMU VM (`tests/vm/real-zfs-tests.sh`): the host's build
//! seen under `/host`, commands that must succeed, throwaway pools on sparse files in the guest's tmpfs,
//! real restic repositories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::text;

/// `path` as the guest sees it: itself when it exists, else under `/host` (the host's `/`, read-only).
pub fn host_path(path: &Path) -> PathBuf {
    if path.exists() { path.to_path_buf() } else { Path::new("/host").join(path.strip_prefix("/").unwrap()) }
}

/// The persistctl binary: `$PERSISTCTL_BIN`, or cargo's path (seen under /host inside the VM).
pub fn persistctl_bin() -> PathBuf {
    std::env::var_os("PERSISTCTL_BIN")
        .map_or_else(|| host_path(Path::new(env!("CARGO_BIN_EXE_persistctl"))), PathBuf::from)
}

/// A file of the repository (`tests/...`), seen under /host inside the VM.
pub fn repo_file(relative: &str) -> PathBuf {
    host_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
}

/// Runs a program to the end, whatever its exit status.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?} failed: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a shell script that must succeed; returns its stdout.
pub fn sh(script: &str) -> String {
    ok("sh", &["-c", script])
}

/// `path` single-quoted for a shell script.
pub fn q(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// `path` as a `&str` (the tests' paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// (value, source) of one property, as `zfs get -H -p` prints them.
pub fn zfs_get(dataset: &str, property: &str) -> (String, String) {
    let out = ok("zfs", &["get", "-H", "-p", "-o", "value,source", property, dataset]);
    let (value, source) = out.trim_end().split_once('\t').unwrap();
    (value.to_string(), source.to_string())
}

/// The `-p` value of one property.
pub fn zfs_value(dataset: &str, property: &str) -> String {
    zfs_get(dataset, property).0
}

/// The value of one property as `zfs get -H -o value` prints it (not `-p`: sizes as `16K`).
pub fn zfs_prop(dataset: &str, property: &str) -> String {
    ok("zfs", &["get", "-H", "-o", "value", property, dataset]).trim().to_string()
}

/// The loaded module's (major, minor).
pub fn zfs_version() -> (u32, u32) {
    let text = std::fs::read_to_string("/sys/module/zfs/version").unwrap();
    let mut parts = text.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap(), parts.next().unwrap())
}

/// Whether `path` is a mount point in `/proc/self/mounts`.
pub fn is_mountpoint(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1).map(|p| p.replace("\\040", " ")) == Some(path.to_string()))
}

/// sha256 of every file under `dir` (names relative, sorted), `.zfs` excluded.
pub fn checksums(dir: &Path) -> String {
    sh(&format!("cd {} && find . -path ./.zfs -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum", q(dir)))
}

/// `\040`-style escapes of /proc/self/mountinfo.
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            out.push(u8::from_str_radix(&field[i + 1..i + 4], 8).unwrap());
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// (major:minor, mount point, fstype, source) of every line of /proc/self/mountinfo, oldest first.
pub fn mountinfo() -> Vec<(String, String, String, String)> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    table
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-").unwrap();
            (fields[2].to_string(), unescape(fields[4]), fields[dash + 1].to_string(), unescape(fields[dash + 2]))
        })
        .collect()
}

/// Runs restic on `repo` with `password`; it must succeed. Returns its stdout.
pub fn restic(repo: &Path, password: &Path, args: &[&str]) -> String {
    let out = Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD_FILE", password)
        .output()
        .unwrap();
    assert!(out.status.success(), "restic {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// tests/vm/suspend-pool.sh, seen under /host inside the VM.
pub fn suspend_script() -> PathBuf {
    repo_file("tests/vm/suspend-pool.sh")
}

/// Waits until no process (but this one) has `needle` in its command line.
pub fn wait_for_no_process_mentioning(needle: &str, limit: Duration) {
    let me = std::process::id().to_string();
    let started = Instant::now();
    while started.elapsed() < limit {
        let busy = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name != me
                && name.bytes().all(|b| b.is_ascii_digit())
                && std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(needle))
        });
        if !busy {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A throwaway pool `name` on a sparse file in `/tmp/persistctl-test-<name>` (its directory: the vdev,
/// the parent's mount point `persist/`, configs, the lock). Drop unmounts whatever the test mounted
/// below that directory, destroys the pool and removes the directory (and a freezable vdev's ext4).
pub struct TestPool {
    /// The pool's name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    freezable: bool,
}

impl TestPool {
    fn dir_for(name: &str) -> PathBuf {
        let dir = PathBuf::from(format!("/tmp/persistctl-test-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A pool on a 256 MB sparse file, its root `mountpoint=none`.
    pub fn new(name: &str) -> Self {
        Self::with_size(name, "256M")
    }

    /// A pool on a sparse file of `size` (`truncate -s`), its root `mountpoint=none`.
    pub fn with_size(name: &str, size: &str) -> Self {
        let dir = Self::dir_for(name);
        let img = dir.join("vdev.img");
        ok("truncate", &["-s", size, s(&img)]);
        ok("zpool", &["create", "-f", "-o", "cachefile=none", "-O", "mountpoint=none", name, s(&img)]);
        Self { name: name.to_string(), dir, freezable: false }
    }

    /// A pool whose only vdev is a file on an ext4 that `suspend("freeze")` can freeze; failmode=wait.
    pub fn freezable(name: &str) -> Self {
        let dir = Self::dir_for(name);
        let dev = ok(s(&suspend_script()), &["make", name, "256M"]).trim().to_string();
        ok(
            "zpool",
            &["create", "-f", "-o", "cachefile=none", "-o", "failmode=wait", "-O", "mountpoint=none", name, &dev],
        );
        Self { name: name.to_string(), dir, freezable: true }
    }

    /// A pool with the seed's base layer: `<pool>/persist` with mountpoint=legacy, mounted by "fileSystems".
    pub fn with_legacy_parent(name: &str) -> Self {
        let pool = Self::new(name);
        pool.legacy_parent();
        pool
    }

    /// `<pool>/persist`.
    pub fn parent(&self) -> String {
        format!("{}/persist", self.name)
    }

    /// `<dir>/persist`: where the parent is mounted.
    pub fn parent_dir(&self) -> PathBuf {
        self.dir.join("persist")
    }

    /// [`TestPool::parent_dir`] as a string.
    pub fn parent_mount(&self) -> String {
        self.parent_dir().display().to_string()
    }

    /// `<pool>/persist/<service>`.
    pub fn dataset(&self, service: &str) -> String {
        format!("{}/{service}", self.parent())
    }

    /// `<dir>/persist/<service>`.
    pub fn mountpoint(&self, service: &str) -> PathBuf {
        self.parent_dir().join(service)
    }

    /// The seed's base layer: `<pool>/persist` with mountpoint=legacy, mounted by "fileSystems".
    pub fn legacy_parent(&self) {
        ok("zfs", &["create", "-o", "mountpoint=legacy", &self.parent()]);
        std::fs::create_dir_all(self.parent_dir()).unwrap();
        ok("mount", &["-t", "zfs", &self.parent(), &self.parent_mount()]);
    }

    /// `<pool>/persist` with mountpoint=<dir>/persist, canmount=on: mounted by `zfs mount -a` at boot.
    pub fn plain_parent(&self) {
        ok("zfs", &["create", "-o", &format!("mountpoint={}", self.parent_mount()), &self.parent()]);
    }

    /// Writes `<dir>/config.json`: `services` under the parent, no createParent.
    pub fn config(&self, services: &Value) -> PathBuf {
        self.config_with(services, false)
    }

    /// Writes `<dir>/config.json`: `services` under the parent.
    pub fn config_with(&self, services: &Value, create_parent: bool) -> PathBuf {
        self.config_at(&self.parent(), &self.parent_dir(), services, create_parent)
    }

    /// Writes `<dir>/config.json`: `services` under another parent.
    pub fn config_at(&self, parent: &str, parent_mount: &Path, services: &Value, create_parent: bool) -> PathBuf {
        let config = super::config::datasets_create_parent(parent, s(parent_mount), services, create_parent);
        super::config::write(&self.dir.join("config.json"), &config)
    }

    /// `zpool history` lines: every write to the pool is logged there.
    pub fn history(&self) -> Vec<String> {
        ok("zpool", &["history", &self.name]).lines().filter(|l| !l.is_empty()).map(String::from).collect()
    }

    /// persistctl with `--config` first, then `args` (global flags, the subcommand, its flags); the lock
    /// and the preseed status file in the pool's directory.
    pub fn command(&self, config: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(persistctl_bin());
        cmd.arg("--config")
            .arg(config)
            .args(args)
            .env("PERSISTCTL_LOCK", self.dir.join("lock"))
            .env("PERSISTCTL_PRESEED_STATUS", self.dir.join("status.json"));
        cmd
    }

    /// [`TestPool::command`], run to the end.
    pub fn persistctl(&self, config: &Path, args: &[&str]) -> Output {
        self.command(config, args).output().unwrap()
    }

    /// [`TestPool::command`] with `env` added, run to the end.
    pub fn persistctl_env(&self, config: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut cmd = self.command(config, args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// `apply`, which must succeed; returns what it said.
    pub fn apply(&self, config: &Path) -> String {
        let out = self.persistctl(config, &["apply"]);
        assert!(out.status.success(), "apply failed:\n{}", text(&out));
        text(&out)
    }

    /// `zpool export`, then `zpool import -N` as NixOS does at boot: nothing of the pool is mounted.
    pub fn export_and_import_unmounted(&self) {
        self.unmount_below_dir();
        ok("zpool", &["export", &self.name]);
        let vdevs =
            if self.freezable { format!("/tmp/suspend-pool-{}/fs", self.name) } else { self.dir.display().to_string() };
        ok("zpool", &["import", "-N", "-d", &vdevs, "-o", "cachefile=none", &self.name]);
    }

    /// tests/vm/suspend-pool.sh `verb` (freeze, thaw) on this pool.
    pub fn suspend(&self, verb: &str) {
        ok(s(&suspend_script()), &[verb, &self.name]);
    }

    /// Lazily unmounts every mount below the pool's directory, newest first.
    pub fn unmount_below_dir(&self) {
        let prefix = format!("{}/", self.dir.display());
        for (_, mp, _, _) in mountinfo().into_iter().rev() {
            if mp.starts_with(&prefix) {
                let _ = run("umount", &["-l", &mp]);
            }
        }
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        if self.freezable {
            let _ = run(s(&suspend_script()), &["thaw", &self.name]);
            // zfs calls that blocked while frozen finish now; the pool cannot be destroyed under them.
            wait_for_no_process_mentioning(&self.name, Duration::from_secs(60));
        }
        self.unmount_below_dir();
        let _ = run("zpool", &["destroy", "-f", &self.name]);
        if self.freezable {
            let _ = run(s(&suspend_script()), &["remove", &self.name]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
