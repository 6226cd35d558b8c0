//! What real OpenZFS answered to persistctl's reads, recorded per OpenZFS line by
//! `tests/fixtures/zfs/record.sh` inside the VM: `tests/fixtures/zfs/<line>/<name>.{argv,stdout,stderr,rc}`,
//! the config the recorded tree matches (`config.json`), and `tests/fakes/zfs-replay`, a `zfs` that
//! answers from a recording.

use std::path::{Path, PathBuf};

/// One recorded `zfs` call.
#[derive(Debug, Clone)]
pub struct Call {
    /// Its arguments, without the program.
    pub argv: Vec<String>,
    /// What it printed on stdout, exactly.
    pub stdout: String,
    /// What it printed on stderr, exactly.
    pub stderr: String,
    /// Its exit code.
    pub rc: i32,
}

/// `tests/fixtures/zfs`.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zfs")
}

/// The config the recorded tree was built for.
pub fn config_path() -> PathBuf {
    root().join("config.json")
}

/// The recorded OpenZFS lines (`2.1`, `2.3`, ...), sorted; at least one.
pub fn lines() -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_dir(root())
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("planner-get.argv").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    lines.sort();
    assert!(!lines.is_empty(), "no recording in {}: run tests/fixtures/zfs/record.sh", root().display());
    lines
}

/// The directory of one line's recording.
pub fn dir(line: &str) -> PathBuf {
    root().join(line)
}

/// The recorded call `name` of `line`.
pub fn call(line: &str, name: &str) -> Call {
    let read = |ext: &str| {
        let path = dir(line).join(format!("{name}.{ext}"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    Call {
        argv: read("argv").lines().map(String::from).collect(),
        stdout: read("stdout"),
        stderr: read("stderr"),
        rc: read("rc").trim().parse().unwrap(),
    }
}

/// The loaded module's (major, minor) when `line` was recorded (`module 2.3.2-2~bpo12+2` in `version`).
pub fn module_version(line: &str) -> (u32, u32) {
    let text = std::fs::read_to_string(dir(line).join("version")).unwrap();
    let module = text.lines().find_map(|l| l.strip_prefix("module ")).unwrap();
    let mut parts = module.split(['.', '-']).map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

/// `tests/fakes/zfs-replay`.
pub fn replay_zfs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/zfs-replay")
}
