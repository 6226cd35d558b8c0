//! persistctl's pure core: everything that decides, and nothing that does.
//!
//! The config contract and its validation, the zfs and restic vocabularies (property model, output
//! parsers, name rules, argv), the planner, every preseed and migrate decision, status evaluation,
//! notification templates and secret masking. No module here opens a file, starts a process, reads
//! the clock or the environment, or touches the network: `clippy.toml` forbids the calls, and the crate
//! has no dependency that could (no `nix`, `duct`, `ureq`). The `persistctl` crate is the thin shell
//! that gathers facts, asks this crate what to do, and does it.

pub mod barman;
pub mod config;
pub mod migrate;
pub mod mountinfo;
pub mod names;
pub mod notify;
pub mod plan;
pub mod postgres;
pub mod preseed;
pub mod psql;
pub mod redact;
pub mod restic;
pub mod status;
pub mod target;
pub mod zfs;
