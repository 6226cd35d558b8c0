//! persistctl: declarative, self-healing ZFS persistence for NixOS homelabs.
//!
//! Data flows one way: the NixOS module's JSON → [`config`] → [`plan`] (with live state gathered by
//! [`apply`] through [`zfs`] and [`fsprobe`]) → [`apply`] executes. Only [`zfs`] runs `zfs`.

pub mod apply;
pub mod barman;
pub mod busy;
pub mod child;
pub mod config;
pub mod fsprobe;
pub mod lock;
pub mod logging;
pub mod migrate;
pub mod notify;
pub mod output;
pub mod pitr;
pub mod postgres;
pub mod preseed;
pub mod provenance;
pub mod psql;
pub mod restic;
pub mod safe_write;
pub mod staging;
pub mod status;
pub mod target;
pub mod timestamp;
pub mod zfs;

pub use persistctl_core::{mountinfo, names, plan, redact};
