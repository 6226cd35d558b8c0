//! The zfs vocabulary: the property model, the parsers of zfs' output, the name rules and the argv of
//! every zfs call. Nothing here runs zfs; `persistctl::zfs::Zfs` (the shell) does.

pub mod list;
pub mod namecheck;
pub mod parse;
pub mod props;

use std::collections::BTreeMap;
use std::fmt;

pub use list::{SnapshotInfo, SnapshotsByDataset};
pub use parse::{LiveDataset, PropertySource, PropertyValue};
/// A `zfs` command that failed: its argv, exit status and what it printed on stderr.
#[derive(Debug, thiserror::Error)]
pub struct ZfsError {
    /// The command line, shell-quoted for reading (never executed through a shell).
    pub command: String,
    /// The exit code, or `None` when killed by a signal or not started.
    pub status: Option<i32>,
    /// What the command printed on stderr, trimmed.
    pub stderr: String,
}

impl fmt::Display for ZfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(code) => write!(f, "`{}` failed with exit code {code}", self.command)?,
            None => write!(f, "`{}` failed", self.command)?,
        }
        if !self.stderr.is_empty() {
            write!(f, ": {}", self.stderr)?;
        }
        Ok(())
    }
}

impl ZfsError {
    /// Whether zfs said the dataset does not exist (the only "missing" answer trusted).
    #[must_use]
    pub fn mentions_missing_dataset(&self) -> bool {
        self.stderr.contains("dataset does not exist")
    }
}

/// The tree below (and including) a root dataset, read in one `zfs get` process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeRead {
    /// The root exists; every filesystem below it, by name.
    Found(BTreeMap<String, LiveDataset>),
    /// The root dataset does not exist.
    Missing,
}

/// Quotes one argument for display in logs and errors.
#[must_use]
pub fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | ':' | '=' | '@' | ','));
    if plain { arg.to_string() } else { format!("'{}'", arg.replace('\'', "'\\''")) }
}

/// Renders an argv for humans.
#[must_use]
pub fn display_argv(program: &str, args: &[String]) -> String {
    std::iter::once(program.to_string()).chain(args.iter().map(|a| quote(a))).collect::<Vec<_>>().join(" ")
}

/// and mount every missing ancestor at its inherited mountpoint, over whatever is there.
#[must_use]
pub fn create_args(dataset: &str, properties: &[(String, String)]) -> Vec<String> {
    with_properties(&["create"], properties, dataset)
}

/// `<verb...> -o k=v ... <dataset>`: how `create` and `receive` take properties.
fn with_properties(verb: &[&str], properties: &[(String, String)], dataset: &str) -> Vec<String> {
    let mut args: Vec<String> = verb.iter().map(|s| (*s).to_string()).collect();
    for (key, value) in properties {
        args.push("-o".into());
        args.push(format!("{key}={value}"));
    }
    args.push(dataset.to_string());
    args
}

/// `zfs set` arguments: every property in one call, then the dataset.
#[must_use]
pub fn set_args(dataset: &str, properties: &[(String, String)]) -> Vec<String> {
    let mut args = vec!["set".to_string()];
    args.extend(properties.iter().map(|(k, v)| format!("{k}={v}")));
    args.push(dataset.to_string());
    args
}

/// What a tree read asks for: `properties` once each, in order, then [`parse::SENTINEL`] last (see
/// [`parse::TreeParser`] for why the last one matters).
#[must_use]
pub fn tree_properties<'a>(properties: &[&'a str]) -> Vec<&'a str> {
    let mut asked: Vec<&str> = Vec::new();
    for p in properties {
        if *p != parse::SENTINEL && !asked.contains(p) {
            asked.push(p);
        }
    }
    asked.push(parse::SENTINEL);
    asked
}

/// Refuses to write a value (or name) with a control character into ZFS: `zfs get -H` would print it
/// raw, and a line break or tab there forges rows for every later read. Checked before the command runs.
pub fn check_written(command: &str, dataset: &str, properties: &[(String, String)]) -> Result<(), ZfsError> {
    let bad = |text: &str| text.chars().any(char::is_control);
    if bad(dataset) {
        return Err(ZfsError {
            command: command.to_string(),
            status: None,
            stderr: format!("not run: the dataset name {dataset:?} contains a control character"),
        });
    }
    match properties.iter().find(|(k, v)| bad(k) || bad(v)) {
        Some((key, value)) => Err(ZfsError {
            command: command.to_string(),
            status: None,
            stderr: format!(
                "not run: the value {value:?} for {key:?} on {dataset} contains a control character \
                 (a line break or tab in a property would forge rows in every later `zfs get`)"
            ),
        }),
        None => Ok(()),
    }
}

/// `zfs get -H -p -o name,property,value,source -r -t filesystem p1,p2 root`.
#[must_use]
pub fn properties_tree_args(root: &str, properties: &[&str]) -> Vec<String> {
    let mut args: Vec<String> =
        ["get", "-H", "-p", "-o", "name,property,value,source", "-r", "-t", "filesystem"].map(String::from).to_vec();
    args.push(properties.join(","));
    args.push(root.to_string());
    args
}

/// `ssh` arguments (after the program) to reach `host` non-interactively.
#[must_use]
pub fn ssh_args(host: &str, ssh_key: Option<&str>) -> Vec<String> {
    // Keep-alives: a peer that vanishes mid-transfer is noticed within 45 s, not at the TCP timeout.
    let mut args: Vec<String> = [
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=3",
    ]
    .map(String::from)
    .to_vec();
    if let Some(key) = ssh_key {
        args.extend(["-i".to_string(), key.to_string()]);
    }
    args.extend(["--".to_string(), host.to_string()]);
    args
}

/// `zfs list` arguments for one dataset's own snapshots, oldest first (by creation txg).
#[must_use]
pub fn snapshots_args(dataset: &str) -> Vec<String> {
    ["list", "-H", "-p", "-o", "name", "-t", "snapshot", "-s", "createtxg", "-d", "1", dataset]
        .iter()
        .map(|s| (*s).to_string())
        .collect()
}

/// `zfs send` of one snapshot for a restore: no `-R`/`-p` (no properties, no children: nothing in the
/// stream can set a mountpoint), `-L -e -c` so blocks arrive as they are stored.
#[must_use]
pub fn send_args(snapshot: &str) -> Vec<String> {
    ["send", "-L", "-e", "-c", snapshot].map(String::from).to_vec()
}

/// `zfs receive -u -o k=v ... target`: never mounts on receipt.
#[must_use]
pub fn receive_args(target: &str, properties: &[(String, String)]) -> Vec<String> {
    with_properties(&["receive", "-u"], properties, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_puts_every_property_in_one_call() {
        let props =
            vec![("recordsize".to_string(), "16K".to_string()), ("mountpoint".into(), "/persist/my app".into())];
        assert_eq!(
            create_args("tank/persist/my app", &props),
            ["create", "-o", "recordsize=16K", "-o", "mountpoint=/persist/my app", "tank/persist/my app"]
        );
        assert_eq!(set_args("tank/x", &props), ["set", "recordsize=16K", "mountpoint=/persist/my app", "tank/x"]);
    }

    #[test]
    fn snapshots_are_listed_for_one_dataset_oldest_first() {
        assert_eq!(
            snapshots_args("tank/my app"),
            ["list", "-H", "-p", "-o", "name", "-t", "snapshot", "-s", "createtxg", "-d", "1", "tank/my app"]
        );
    }

    #[test]
    fn a_few_properties_of_a_tree_are_one_get() {
        assert_eq!(
            properties_tree_args("tank/my persist", &["used", "available"]),
            [
                "get",
                "-H",
                "-p",
                "-o",
                "name,property,value,source",
                "-r",
                "-t",
                "filesystem",
                "used,available",
                "tank/my persist"
            ]
        );
    }

    #[test]
    fn remote_zfs_goes_through_ssh_with_quoted_arguments() {
        assert_eq!(
            ssh_args("root@nas", Some("/run/keys/id")),
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=3",
                "-i",
                "/run/keys/id",
                "--",
                "root@nas"
            ]
        );
        assert_eq!(ssh_args("nas", None)[8..], ["--", "nas"]);
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let args = vec!["set".to_string(), "a:b=it's; rm".into(), "tank/my data".into()];
        assert_eq!(display_argv("zfs", &args), "zfs set 'a:b=it'\\''s; rm' 'tank/my data'");
    }

    #[test]
    fn send_and_receive_never_carry_properties_or_mount() {
        assert_eq!(send_args("b/r@s 1"), ["send", "-L", "-e", "-c", "b/r@s 1"]);
        let props = vec![("canmount".to_string(), "noauto".to_string()), ("mountpoint".into(), "none".into())];
        assert_eq!(
            receive_args("t/p/a.persistctl-staging", &props),
            ["receive", "-u", "-o", "canmount=noauto", "-o", "mountpoint=none", "t/p/a.persistctl-staging"]
        );
    }

    #[test]
    fn error_names_command_code_and_stderr() {
        let e = ZfsError { command: "zfs set x=1 tank".into(), status: Some(1), stderr: "bad".into() };
        assert_eq!(e.to_string(), "`zfs set x=1 tank` failed with exit code 1: bad");
    }
}
