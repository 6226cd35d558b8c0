//! The only place that runs `restic`.
//!
//! The repository, password and environment reach restic through its environment
//! (`RESTIC_REPOSITORY[_FILE]`, `RESTIC_PASSWORD_FILE`, the lines of `environmentFile`), never through
//! argv, so they never show up in `ps` or in logs.
//!
//! Exit codes: restic ≥ 0.17 exits 10 when the repository does not exist and 12 on a wrong password;
//! older releases (Debian's 0.14) exit 1 for every failure. Neither code means "no backup": the only
//! "no backup" answer is a successful `restic snapshots --json` that lists nothing.

//! The vocabulary (exit codes, listings, argv) is `persistctl_core::restic`, re-exported here.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::child::{self, ChildError};
use crate::config::ResticConfig;
use crate::redact::Secrets;

pub use persistctl_core::restic::*;

/// Inherited variables that would override or leak into what the config says.
const SCRUBBED: &[&str] = &[
    "RESTIC_REPOSITORY",
    "RESTIC_REPOSITORY_FILE",
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_FROM_REPOSITORY",
    "RESTIC_FROM_PASSWORD",
    "RESTIC_FROM_PASSWORD_FILE",
];

/// The secrets of a restic configuration, for masking in whatever restic or its caller reports: the
/// password file's content and every value (and, should it not parse, every line) of `environmentFile`.
/// Files that cannot be read add nothing.
#[must_use]
pub fn secrets(config: &ResticConfig) -> Secrets {
    let mut secrets = Secrets::default();
    // An unreadable file adds nothing: it cannot leak what persistctl cannot read, and whoever reads
    // it reports that.
    if let Ok(text) = std::fs::read_to_string(&config.password_file) {
        secrets.add_text(&text);
    }
    if let Some(file) = &config.environment_file {
        if let Ok(text) = std::fs::read_to_string(file) {
            match parse_env_file(&text) {
                Ok(vars) => vars.iter().for_each(|(_, value)| secrets.add(value)),
                Err(_) => secrets.add_text(&text),
            }
        }
    }
    secrets
}

/// Runs restic for one repository.
#[derive(Clone)]
pub struct Restic {
    program: OsString,
    env: Vec<(String, OsString)>,
    /// Masked in everything restic prints before it becomes an error.
    secrets: Secrets,
}

impl std::fmt::Debug for Restic {
    /// The variables' names only: their values are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Restic")
            .field("program", &self.program)
            .field("env", &names)
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl Restic {
    /// Prepares the environment for `config` (reads `environmentFile`; the password file is read by restic).
    /// The program is `$PERSISTCTL_RESTIC`, else `restic` from PATH.
    pub fn new(config: &ResticConfig) -> anyhow::Result<Self> {
        let mut env: Vec<(String, OsString)> = Vec::new();
        if let Some(file) = &config.environment_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("Failed to read restic environment file {file}"))?;
            let vars =
                parse_env_file(&text).map_err(|why| anyhow::anyhow!("Bad restic environment file {file}: {why}"))?;
            for (key, value) in vars {
                if SCRUBBED.contains(&key.as_str()) {
                    bail!("restic environment file {file} sets {key}; set it in the preseed config instead");
                }
                env.push((key, value.into()));
            }
        }
        match (&config.repository, &config.repository_file) {
            (Some(repo), _) => env.push(("RESTIC_REPOSITORY".into(), repo.into())),
            (None, Some(file)) => env.push(("RESTIC_REPOSITORY_FILE".into(), file.into())),
            (None, None) => bail!("no restic repository configured"),
        }
        if !Path::new(&config.password_file).is_file() {
            bail!("restic password file {} does not exist or is not a file", config.password_file);
        }
        env.push(("RESTIC_PASSWORD_FILE".into(), config.password_file.clone().into()));
        Ok(Self {
            program: std::env::var_os("PERSISTCTL_RESTIC").unwrap_or_else(|| "restic".into()),
            env,
            secrets: secrets(config),
        })
    }

    fn command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.program);
        for name in SCRUBBED {
            cmd.env_remove(name);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        // Read-only access: works on read-only repositories and is never blocked by a stale lock.
        cmd.arg("--no-lock").args(args);
        tracing::debug!(command = %crate::zfs::display_argv(&self.program.to_string_lossy(), args), "running");
        cmd
    }

    fn run(&self, verb: &str, args: &[String], deadline: Instant) -> Result<child::Finished, ResticError> {
        match child::run(self.command(args), None, deadline) {
            Ok(done) if done.status.success() => Ok(done),
            // restic 0.14 quotes `sftp://user:password@host` URLs whole: masked here, with every known secret.
            Ok(done) => Err(classify(verb, done.status.code(), &self.secrets.redact(&done.stderr_text()))),
            Err(ChildError::TimedOut { after, .. }) => {
                Err(ResticError::TimedOut { verb: verb.to_string(), secs: after.as_secs() })
            }
            Err(e) => Err(ResticError::NotRun(self.secrets.redact(&e.to_string()))),
        }
    }

    /// `restic snapshots --json [--tag a,b] [--path P] [--host H]`: every matching snapshot.
    pub fn snapshots(
        &self,
        tags: &[String],
        path: Option<&str>,
        host: Option<&str>,
        deadline: Instant,
    ) -> Result<Vec<ResticSnapshot>, ResticError> {
        let done = self.run("snapshots", &snapshots_args(tags, path, host), deadline)?;
        parse_snapshots(&String::from_utf8_lossy(&done.stdout))
            .map_err(|why| ResticError::BadOutput { verb: "snapshots".into(), why: self.secrets.redact(&why) })
    }

    /// `restic restore ID --target TARGET --include PATH`: restores `path` of the snapshot to
    /// `TARGET/PATH` (restic 0.14 has no `ID:/path` syntax, so the full path is kept).
    pub fn restore(&self, id: &str, path: &str, target: &Path, deadline: Instant) -> Result<(), ResticError> {
        self.run("restore", &restore_args(id, path, target), deadline).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_carries_repository_and_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret").unwrap();
        let env = dir.path().join("env");
        std::fs::write(&env, "AWS_SECRET_ACCESS_KEY=k\n").unwrap();
        let config = ResticConfig {
            repository: Some("/repo".into()),
            repository_file: None,
            password_file: pw.display().to_string(),
            environment_file: Some(env.display().to_string()),
            tags: vec![],
            path: None,
            host: None,
        };
        let restic = Restic::new(&config).unwrap();
        let names: Vec<&str> = restic.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["AWS_SECRET_ACCESS_KEY", "RESTIC_REPOSITORY", "RESTIC_PASSWORD_FILE"]);
        std::fs::write(&env, "RESTIC_PASSWORD=oops\n").unwrap();
        let err = Restic::new(&config).unwrap_err().to_string();
        assert!(err.contains("sets RESTIC_PASSWORD") && !err.contains("oops"), "{err}");
        std::fs::write(&env, "A=1\nbare-pasted-secret-key\n").unwrap();
        let err = format!("{:#}", Restic::new(&config).unwrap_err());
        assert!(err.contains(&env.display().to_string()) && err.contains("line 2"), "{err}");
        assert!(!err.contains("bare-pasted"), "{err}");
    }

    #[test]
    fn restic_errors_mask_url_passwords_and_every_configured_secret() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "repo-password\n").unwrap();
        let env = dir.path().join("env");
        std::fs::write(&env, "AWS_SECRET_ACCESS_KEY=aws-secret-value\nB2_ACCOUNT_KEY='b2-key-value'\n").unwrap();
        let fake = dir.path().join("restic");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"Fatal: sftp://u:hunter2@h/r: repo-password aws-secret-value b2-key-value\" >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let config = ResticConfig {
            repository: Some("/repo".into()),
            repository_file: None,
            password_file: pw.display().to_string(),
            environment_file: Some(env.display().to_string()),
            tags: vec![],
            path: None,
            host: None,
        };
        let mut restic = Restic::new(&config).unwrap();
        restic.program = fake.into_os_string();
        let err = restic.snapshots(&[], None, None, Instant::now() + std::time::Duration::from_secs(30)).unwrap_err();
        let text = err.to_string();
        assert_eq!(text, "restic snapshots failed with exit code 1: Fatal: sftp://u:***@h/r: *** *** ***");
        let debug = format!("{restic:?}");
        assert!(debug.contains("Secrets(3 values)") && !debug.contains("aws-secret-value"), "{debug}");
    }
}
