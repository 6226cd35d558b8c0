//! The fake machine of the host suites: a temp dir holding the fake `zfs`'s state (`state.json`, its
//! mount table `state.json.mountinfo`), its call log, the fake `restic`'s log, and persistctl run
//! against them with nothing of the real machine's `zfs`, `restic` or mount table.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

/// The fake `zfs` (tests/fakes/zfs).
pub fn fake_zfs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/zfs")
}

/// The fake `restic` 0.18 (tests/fakes/restic).
pub fn fake_restic() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/restic")
}

/// The zfs calls that change something (everything but `get` and `list`).
pub fn writes(calls: &[Vec<String>]) -> Vec<&Vec<String>> {
    calls.iter().filter(|c| c[0] != "get" && c[0] != "list").collect()
}

/// One line a zfs call, shell-quoted as persistctl prints commands (`zfs create -o 'a b=c' tank/x`): an
/// argv log that reads as what was run, for snapshots (`expect!`).
pub fn argv_log<C: AsRef<[String]>>(calls: &[C]) -> String {
    calls.iter().map(|c| persistctl::zfs::display_argv("zfs", c.as_ref())).collect::<Vec<_>>().join("\n")
}

/// id, time, tags, path, files (name, contents) of a snapshot in a fake restic repository.
pub type ResticSnapshot<'a> = (&'a str, &'a str, &'a [&'a str], &'a str, &'a [(&'a str, &'a str)]);

/// A fake machine in a temp dir (removed on drop).
pub struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    /// A fake whose pool holds `datasets` (name → state entry: `local` properties, `mounted`, `snapshots`,
    /// ...; see tests/fakes/zfs).
    pub fn new(datasets: &Value) -> Self {
        let fake = Self::empty();
        fake.set_datasets(datasets);
        fake
    }

    /// A fake with no state yet: [`Fake::set_datasets`] next (for trees that name the fake's own paths).
    pub fn empty() -> Self {
        let fake = Self { dir: tempfile::tempdir().unwrap() };
        std::fs::write(fake.zfs_log(), "").unwrap();
        std::fs::write(fake.restic_log(), "").unwrap();
        fake
    }

    /// Replaces the fake pool's datasets.
    pub fn set_datasets(&self, datasets: &Value) {
        self.put_state(&json!({ "datasets": datasets }));
    }

    /// `name` in the fake's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `text` with the temp dir's path written `<tmp>`, so that a snapshot of it is the same on every run.
    pub fn anonymized(&self, text: &str) -> String {
        text.replace(&self.dir.path().display().to_string(), "<tmp>")
    }

    /// [`Fake::path`] as a string.
    pub fn path_str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// `<tmp>/persist`: where the configs here mount `tank/persist`.
    pub fn mount_root(&self) -> String {
        self.path("persist").display().to_string()
    }

    /// `<tmp>/persist/<service>`.
    pub fn mountpoint(&self, service: &str) -> PathBuf {
        self.path("persist").join(service)
    }

    /// The fake zfs' log: one JSON array (argv without the program) a call.
    pub fn zfs_log(&self) -> PathBuf {
        self.path("zfs.log")
    }

    /// The fake restic's log: one JSON object a call.
    pub fn restic_log(&self) -> PathBuf {
        self.path("restic.log")
    }

    /// The mount table the fake zfs keeps, in `/proc/self/mountinfo`'s format.
    pub fn mountinfo(&self) -> PathBuf {
        self.path("state.json.mountinfo")
    }

    /// persistctl with `--config config`, then `args`, against the fakes: the fake zfs and restic, their
    /// state and logs, the fake's mount table, a lock in the temp dir; `RUST_LOG`, `NIXOS_ACTION`,
    /// `PERSISTCTL_NOW` and `PERSISTCTL_PRESEED_STATUS` of the caller removed.
    pub fn command(&self, config: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_persistctl"));
        cmd.arg("--config").arg(config).args(args);
        cmd.env("PERSISTCTL_ZFS", fake_zfs())
            .env("PERSISTCTL_RESTIC", fake_restic())
            .env("PERSISTCTL_LOCK", self.path("lock"))
            .env("PERSISTCTL_MOUNTINFO", self.mountinfo())
            .env("FAKE_ZFS_STATE", self.path("state.json"))
            .env("FAKE_ZFS_LOG", self.zfs_log())
            .env("FAKE_RESTIC_LOG", self.restic_log())
            .env_remove("NIXOS_ACTION")
            .env_remove("PERSISTCTL_NOW")
            .env_remove("PERSISTCTL_PRESEED_STATUS")
            .env_remove("RUST_LOG");
        cmd
    }

    /// [`Fake::command`] with `env` added, run to the end.
    pub fn run(&self, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(config, args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// The fake zfs itself with `args`: its state and log here, none of its knobs (`FAKE_ZFS_FAIL`,
    /// `FAKE_ZFS_KILL_AT`, `FAKE_ZFS_KILL_BEFORE`, `FAKE_ZFS_HANG`, `FAKE_ZFS_SLOW`) inherited.
    pub fn zfs_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("python3");
        cmd.arg(fake_zfs()).args(args);
        cmd.env("FAKE_ZFS_STATE", self.path("state.json")).env("FAKE_ZFS_LOG", self.zfs_log());
        for knob in ["FAKE_ZFS_FAIL", "FAKE_ZFS_KILL_AT", "FAKE_ZFS_KILL_BEFORE", "FAKE_ZFS_HANG", "FAKE_ZFS_SLOW"] {
            cmd.env_remove(knob);
        }
        cmd
    }

    /// [`Fake::zfs_command`], run to the end.
    pub fn zfs(&self, args: &[&str]) -> Output {
        self.zfs_command(args).output().unwrap()
    }

    /// [`Fake::zfs`], which must succeed; returns its stdout.
    pub fn zfs_ok(&self, args: &[&str]) -> String {
        let out = self.zfs(args);
        assert!(out.status.success(), "zfs {args:?}: {}", super::text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every zfs call so far, and then forgets them.
    pub fn take_calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.zfs_log()).unwrap();
        std::fs::write(self.zfs_log(), "").unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The changing zfs calls so far (see [`writes`]), and then forgets every call.
    pub fn take_writes(&self) -> Vec<Vec<String>> {
        writes(&self.take_calls()).into_iter().cloned().collect()
    }

    /// Every restic call so far (`{"argv", "env"}`), kept.
    pub fn restic_calls(&self) -> Vec<Value> {
        super::json_lines(&self.restic_log())
    }

    /// The fake zfs' whole state.
    pub fn state(&self) -> Value {
        super::read_json(&self.path("state.json"))
    }

    /// Replaces the fake zfs' whole state.
    pub fn put_state(&self, state: &Value) {
        std::fs::write(self.path("state.json"), state.to_string()).unwrap();
    }

    /// The datasets of the fake's state.
    pub fn datasets(&self) -> Value {
        self.state()["datasets"].clone()
    }

    /// The state entry of `dataset`.
    pub fn dataset(&self, name: &str) -> Value {
        self.state()["datasets"][name].clone()
    }

    /// Replaces (or adds) the state entry of `dataset`.
    pub fn set_dataset(&self, name: &str, entry: &Value) {
        let mut state = self.state();
        state["datasets"][name] = entry.clone();
        self.put_state(&state);
    }

    /// The local properties of `dataset`.
    pub fn local_props(&self, dataset: &str) -> Value {
        self.state()["datasets"][dataset]["local"].clone()
    }

    /// Sets a local property on a dataset in the fake's state (as `zfs set` by someone else would).
    pub fn set_local(&self, dataset: &str, property: &str, value: &str) {
        let mut state = self.state();
        state["datasets"][dataset]["local"][property] = json!(value);
        self.put_state(&state);
    }

    /// Writes `config` as `config.json` in the temp dir.
    pub fn write_config(&self, config: &Value) -> PathBuf {
        super::config::write(&self.path("config.json"), config)
    }

    /// Writes a config of `services` under `tank/persist` mounted at [`Fake::mount_root`].
    pub fn write_services(&self, services: &Value) -> PathBuf {
        self.write_config(&super::config::datasets("tank/persist", &self.mount_root(), services))
    }

    /// Writes raw text as `config.json`.
    pub fn write_raw_config(&self, text: &str) -> PathBuf {
        let path = self.path("config.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A snapshot's contents, as the fake's rollback and persistctl's look into `.zfs/snapshot` see them.
    pub fn snapshot_contents(&self, service: &str, snap: &str, files: &[(&str, &str)]) {
        let dir = self.mountpoint(service).join(".zfs/snapshot").join(snap);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    /// A fake restic repository `<tmp>/repo` with this `password` whose snapshots hold `files` under
    /// their `path`; returns the repository.
    pub fn restic_repo(&self, password: &str, snapshots: &[ResticSnapshot<'_>]) -> String {
        let mut list = Vec::new();
        for (id, time, tags, path, files) in snapshots {
            let tree = self.path(&format!("tree-{id}"));
            let at = tree.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(&at).unwrap();
            for (name, text) in *files {
                std::fs::create_dir_all(at.join(name).parent().unwrap()).unwrap();
                std::fs::write(at.join(name), text).unwrap();
            }
            list.push(json!({"id": id, "time": time, "tags": tags, "paths": [path], "hostname": "h",
                             "tree": tree.display().to_string()}));
        }
        self.restic_repo_json(password, &Value::Array(list))
    }

    /// A fake restic repository `<tmp>/repo` with this `password` and these snapshot records (`id`,
    /// `time`, `tags`, `paths`, `hostname`, `tree`); returns the repository.
    pub fn restic_repo_json(&self, password: &str, snapshots: &Value) -> String {
        let repo = self.path("repo");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("repo.json"), json!({"password": password, "snapshots": snapshots}).to_string())
            .unwrap();
        repo.display().to_string()
    }
}
