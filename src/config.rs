//! The config file: read here, parsed and validated by the core (`persistctl_core::config`, the JSON
//! contract of `docs/config-format.md`), re-exported so the shell says `crate::config::...`.

use std::path::Path;

use anyhow::Context as _;

pub use persistctl_core::config::*;

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> anyhow::Result<Validated> {
    let text = std::fs::read_to_string(path).with_context(|| format!("Failed to read config {}", path.display()))?;
    parse(&text).with_context(|| format!("Invalid config {}", path.display()))
}
