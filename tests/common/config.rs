//! Config files as the Nix module writes them (`docs/config-format.md`), and a test's extra settings
//! merged into them.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// A version-1 config: `services` under `parent` mounted at `parent_mount`.
pub fn datasets(parent: &str, parent_mount: &str, services: &Value) -> Value {
    json!({ "version": 1, "datasets": { "parentDataset": parent, "parentMount": parent_mount, "services": services } })
}

/// [`datasets`] with `createParent` written out (the real suites always say it).
pub fn datasets_create_parent(parent: &str, parent_mount: &str, services: &Value, create_parent: bool) -> Value {
    let mut config = datasets(parent, parent_mount, services);
    config["datasets"]["createParent"] = json!(create_parent);
    config
}

/// Writes `config` to `path` and returns it.
pub fn write(path: &Path, config: &Value) -> PathBuf {
    std::fs::write(path, config.to_string()).unwrap();
    path.to_path_buf()
}

/// `base` with every key of `extra` set (replaced, not merged).
pub fn merged(base: &Value, extra: &Value) -> Value {
    let mut out = base.clone();
    for (k, v) in extra.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

/// `preseed` settings restoring from the service's snapshots, then restic (`repository`, `password_file`),
/// with `extra` set: its `restic` keys are added to the base's, any other key replaces the base's.
pub fn restic_preseed(repository: &str, password_file: &Path, extra: &Value) -> Value {
    let base = json!({"enable": true, "sources": ["snapshot", "restic"],
        "restic": {"repository": repository, "passwordFile": password_file.display().to_string()}});
    with_restic_extra(base, extra)
}

/// `preseed` settings with `extra` set: its `restic` keys are added to the base's, any other key
/// replaces the base's.
pub fn with_restic_extra(base: Value, extra: &Value) -> Value {
    let mut p = base;
    for (k, v) in extra.as_object().unwrap() {
        if k == "restic" {
            for (rk, rv) in v.as_object().unwrap() {
                p["restic"][rk] = rv.clone();
            }
        } else {
            p[k] = v.clone();
        }
    }
    p
}

/// `preseed` settings restoring from the service's snapshots, then the local replica `dataset`, with
/// `extra`'s keys replacing the base's.
pub fn replica_preseed(dataset: &str, extra: &Value) -> Value {
    let base = json!({"enable": true, "sources": ["snapshot", "replica"],
        "replica": {"dataset": dataset, "host": null, "sshKey": null}});
    merged(&base, extra)
}
