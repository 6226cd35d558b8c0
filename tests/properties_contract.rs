//! The property model has one source, `core/src/zfs/props.rs`. The NixOS module cannot run the binary while
//! it is evaluated, so it reads a committed copy, `nix/lib/properties.json`; this test fails when that
//! copy is not, byte for byte, what `persistctl properties --json` prints. Needs no Nix.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use std::path::PathBuf;
use std::process::Command;

const COMMITTED: &str = "nix/lib/properties.json";
const REGENERATE: &str = "tests/nix/update-properties.sh";

fn printed() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_persistctl")).args(["properties", "--json"]).output().expect("runs");
    assert!(out.status.success(), "persistctl properties --json failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn committed_property_model_is_what_the_binary_prints() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("Failed to read {COMMITTED}: {e}"));
    let printed = printed();
    if committed != printed {
        let line = committed.lines().zip(printed.lines()).position(|(a, b)| a != b).map_or_else(
            || {
                format!(
                    "the files differ in length ({} and {} lines)",
                    committed.lines().count(),
                    printed.lines().count()
                )
            },
            |i| {
                let (a, b) = (committed.lines().nth(i).unwrap_or(""), printed.lines().nth(i).unwrap_or(""));
                format!("first difference at line {}: committed {:?}, printed {:?}", i + 1, a.trim(), b.trim())
            },
        );
        panic!(
            "{COMMITTED} is out of date with core/src/zfs/props.rs ({line}).\n\
             The NixOS module checks `properties` against that file at evaluation time, so it must be what \
             `persistctl properties --json` prints. Regenerate it with `{REGENERATE}` and commit the result."
        );
    }
}

#[test]
fn the_model_names_every_settable_property_with_its_class() {
    let model: serde_json::Value = serde_json::from_str(&printed()).expect("JSON");
    let props = &model["properties"];
    assert_eq!(props["recordsize"]["class"], "settable");
    assert_eq!(props["casesensitivity"]["class"], "createOnly");
    assert_eq!(props["used"]["class"], "readOnly");
    assert_eq!(props["used"]["values"], serde_json::Value::Null, "read-only properties take no value");
    assert_eq!(props["recordsize"]["min"], 512);
    assert_eq!(props["compression"]["aliases"]["gzip-6"], "gzip");
    let settable: Vec<&str> =
        model["settableNative"].as_array().expect("list").iter().filter_map(serde_json::Value::as_str).collect();
    assert!(settable.contains(&"atime") && settable.contains(&"encryption"), "{settable:?}");
    assert!(!settable.contains(&"volblocksize") && !settable.contains(&"used"), "{settable:?}");
}
