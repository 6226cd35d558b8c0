//! Finds what the Nix evaluation tests (`tests/nix_eval.rs`) need, so that a test that cannot run
//! is reported as ignored, never as passed:
//!
//! - `cfg(nix_instantiate)` when `nix-instantiate --version` runs;
//! - `cfg(nixpkgs_lib)` when, in addition, a nixpkgs `lib/` is found: `NIXPKGS_LIB`, or else
//!   `<repository>/../shared/nixpkgs-lib` (the shared test input); its path is passed to the
//!   tests as `PERSISTCTL_NIXPKGS_LIB`.
//!
//! The binary itself does not depend on any of this.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(nixpkgs_lib)");
    println!("cargo::rustc-check-cfg=cfg(nix_instantiate)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=NIXPKGS_LIB");
    println!("cargo::rerun-if-env-changed=PATH");

    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let fallback = manifest_dir.join("../shared/nixpkgs-lib");

    let dir = std::env::var_os("NIXPKGS_LIB").filter(|d| !d.is_empty()).map_or(fallback, PathBuf::from);
    watch(&dir.join("lib/default.nix"));
    let lib = Some(dir).filter(|d| is_nixpkgs_lib(d));

    let nix = Command::new("nix-instantiate").arg("--version").output().is_ok_and(|o| o.status.success());
    if nix {
        println!("cargo::rustc-cfg=nix_instantiate");
    }
    if let (Some(dir), true) = (&lib, nix) {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        println!("cargo::rustc-cfg=nixpkgs_lib");
        println!("cargo::rustc-env=PERSISTCTL_NIXPKGS_LIB={}", dir.display());
    }
}

fn is_nixpkgs_lib(dir: &Path) -> bool {
    dir.join("lib/default.nix").is_file()
}

/// Reruns this script when `path` changes or goes. A path that is missing is not watched: cargo
/// would rerun the script on every build, and a directory watched instead is scanned recursively.
/// After creating the lib, set `NIXPKGS_LIB` or `touch build.rs`.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo::rerun-if-changed={}", path.display());
    }
}
