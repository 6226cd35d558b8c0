//! The one test harness of the integration suites: `mod common;` at the top of a test file.
//!
//! - [`fake`]: the fake machine of the host suites (`tests/fakes/zfs`, `tests/fakes/restic`, a temp dir
//!   holding their state and call logs) and persistctl run against it;
//! - [`real`]: the real-ZFS suites' side, inside the QEMU VM: the binary seen under `/host`, commands
//!   that must succeed, throwaway pools on sparse files, real restic repositories;
//! - [`config`]: config files as the Nix module writes them, and merging of a test's extra settings;
//! - [`recorded`]: what real OpenZFS answered to persistctl's reads (tests/fixtures/zfs), and a `zfs` replaying it;
//! - [`orphans`]: the fault-injection suites' cleanup of a killed persistctl's children;
//! - here: what every suite says about a finished process and a directory.
//!
//! Each integration test is its own crate and compiles this module again, using a part of it: what one
//! crate leaves unused is not dead code.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

pub mod config;
pub mod fake;
pub mod orphans;
pub mod real;
pub mod recorded;

use std::path::Path;
use std::process::Output;

/// Exit status, stdout and stderr of a finished process, for assertion messages and `contains` checks.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A process's stdout, lossily decoded.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A process's stderr, lossily decoded.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The entries of `dir` (names only), sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Writes an executable (mode 0755) script: a stand-in program for a test.
pub fn write_script(path: &Path, script: &str) {
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every JSON line of a file; none when it does not exist.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
