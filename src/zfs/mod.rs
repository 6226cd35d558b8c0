//! The only place that runs `zfs`. Everything above this module speaks in datasets and properties,
//! never in zfs' text formats or argv.

pub mod parse;
pub mod props;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;

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
    fn mentions_missing_dataset(&self) -> bool {
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

/// Runs `zfs` (found on PATH, or `$PERSISTCTL_ZFS`).
#[derive(Debug, Clone)]
pub struct Zfs {
    program: OsString,
}

impl Default for Zfs {
    fn default() -> Self {
        Self::new()
    }
}

/// `zfs create` arguments: `-p`, then every property as `-o k=v`, then the dataset.
#[must_use]
pub fn create_args(dataset: &str, properties: &[(String, String)]) -> Vec<String> {
    let mut args = vec!["create".to_string(), "-p".to_string()];
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

impl Zfs {
    /// Uses `$PERSISTCTL_ZFS` when set, else `zfs` from PATH.
    #[must_use]
    pub fn new() -> Self {
        Self { program: std::env::var_os("PERSISTCTL_ZFS").unwrap_or_else(|| "zfs".into()) }
    }

    /// Runs one zfs command and returns its stdout; any non-zero exit is an error with stderr.
    pub fn run(&self, args: &[String]) -> Result<String, ZfsError> {
        let command = display_argv(&self.program.to_string_lossy(), args);
        tracing::debug!(%command, "running");
        let output = duct::cmd(&self.program, args)
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| ZfsError { command: command.clone(), status: None, stderr: e.to_string() })?;
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if output.status.success() {
            return String::from_utf8(output.stdout).map_err(|_| ZfsError {
                command,
                status: Some(0),
                stderr: "output is not UTF-8".into(),
            });
        }
        Err(ZfsError { command, status: output.status.code(), stderr })
    }

    /// Reads every property of every filesystem under `root` in ONE process.
    pub fn get_tree(&self, root: &str) -> Result<TreeRead, ZfsError> {
        let args: Vec<String> =
            ["get", "-H", "-p", "-o", "name,property,value,source", "-r", "-t", "filesystem", "all", root]
                .iter()
                .map(|s| (*s).to_string())
                .collect();
        match self.run(&args) {
            Ok(out) => parse::parse_get(&out).map(TreeRead::Found).map_err(|why| ZfsError {
                command: display_argv("zfs", &args),
                status: Some(0),
                stderr: format!("unexpected output: {why}"),
            }),
            Err(e) if e.mentions_missing_dataset() => Ok(TreeRead::Missing),
            Err(e) => Err(e),
        }
    }

    /// Whether a pool is imported (its root dataset exists).
    pub fn pool_imported(&self, pool: &str) -> Result<bool, ZfsError> {
        let args: Vec<String> =
            ["list", "-H", "-o", "name", "-d", "0", pool].iter().map(|s| (*s).to_string()).collect();
        match self.run(&args) {
            Ok(_) => Ok(true),
            Err(e) if e.mentions_missing_dataset() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `zfs create -p -o k=v ... dataset`.
    pub fn create(&self, dataset: &str, properties: &[(String, String)]) -> Result<(), ZfsError> {
        self.run(&create_args(dataset, properties)).map(drop)
    }

    /// `zfs set a=1 b=2 dataset`.
    pub fn set(&self, dataset: &str, properties: &[(String, String)]) -> Result<(), ZfsError> {
        self.run(&set_args(dataset, properties)).map(drop)
    }
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
            ["create", "-p", "-o", "recordsize=16K", "-o", "mountpoint=/persist/my app", "tank/persist/my app"]
        );
        assert_eq!(set_args("tank/x", &props), ["set", "recordsize=16K", "mountpoint=/persist/my app", "tank/x"]);
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let args = vec!["set".to_string(), "a:b=it's; rm".into(), "tank/my data".into()];
        assert_eq!(display_argv("zfs", &args), "zfs set 'a:b=it'\\''s; rm' 'tank/my data'");
    }

    #[test]
    fn error_names_command_code_and_stderr() {
        let e = ZfsError { command: "zfs set x=1 tank".into(), status: Some(1), stderr: "bad".into() };
        assert_eq!(e.to_string(), "`zfs set x=1 tank` failed with exit code 1: bad");
    }
}
