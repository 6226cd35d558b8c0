//! The only place that runs `restic`.
//!
//! The repository, password and environment reach restic through its environment
//! (`RESTIC_REPOSITORY[_FILE]`, `RESTIC_PASSWORD_FILE`, the lines of `environmentFile`), never through
//! argv, so they never show up in `ps` or in logs.
//!
//! Exit codes: restic ≥ 0.17 exits 10 when the repository does not exist and 12 on a wrong password;
//! older releases (Debian's 0.14) exit 1 for every failure. Neither code means "no backup": the only
//! "no backup" answer is a successful `restic snapshots --json` that lists nothing.

use std::cmp::Ordering;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::child::{self, ChildError};
use crate::config::ResticConfig;
use crate::redact::Secrets;

/// Exit code of restic ≥ 0.17: the repository does not exist.
pub const EXIT_NO_REPOSITORY: i32 = 10;
/// Exit code of restic ≥ 0.17: wrong password.
pub const EXIT_WRONG_PASSWORD: i32 = 12;

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

/// One snapshot as `restic snapshots --json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct ResticSnapshot {
    /// Full id.
    pub id: String,
    /// When it was taken (RFC 3339 with offset).
    pub time: String,
    /// Backed-up paths.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Host it was taken on.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

impl ResticSnapshot {
    /// The 8-character id restic prints.
    #[must_use]
    pub fn short_id(&self) -> &str {
        self.id.get(..8).unwrap_or(&self.id)
    }
}

/// Why restic could not answer. None of these means "no backup exists".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResticError {
    /// Exit 10 (restic ≥ 0.17): no repository at that location (an unmounted disk looks the same).
    #[error("the restic repository does not exist or cannot be opened (exit 10): {stderr}")]
    NoRepository {
        /// What restic said.
        stderr: String,
    },
    /// Exit 12 (restic ≥ 0.17): the password does not open the repository.
    #[error("wrong password for the restic repository (exit 12)")]
    WrongPassword,
    /// Any other failure (restic 0.14 uses exit 1 for all of them: unreachable, wrong password, corrupt).
    #[error("restic {verb} failed with exit code {code}: {stderr}")]
    Failed {
        /// `snapshots`, `restore`.
        verb: String,
        /// Exit code (-1: killed by a signal).
        code: i32,
        /// What restic said.
        stderr: String,
    },
    /// It did not finish in time; its process group was killed.
    #[error("restic {verb} timed out after {secs} s and was killed")]
    TimedOut {
        /// `snapshots`, `restore`.
        verb: String,
        /// Seconds it ran.
        secs: u64,
    },
    /// It could not be run at all.
    #[error("could not run restic: {0}")]
    NotRun(String),
    /// It succeeded but printed something unexpected.
    #[error("restic {verb} printed unexpected output: {why}")]
    BadOutput {
        /// `snapshots`.
        verb: String,
        /// What was wrong.
        why: String,
    },
}

/// Maps a failed restic run to an error. Pure.
#[must_use]
pub fn classify(verb: &str, code: Option<i32>, stderr: &str) -> ResticError {
    match code {
        Some(EXIT_NO_REPOSITORY) => ResticError::NoRepository { stderr: stderr.to_string() },
        Some(EXIT_WRONG_PASSWORD) => ResticError::WrongPassword,
        other => ResticError::Failed { verb: verb.to_string(), code: other.unwrap_or(-1), stderr: stderr.to_string() },
    }
}

/// Parses `restic snapshots --json` output (`[]`, `null` or a list).
pub fn parse_snapshots(stdout: &str) -> Result<Vec<ResticSnapshot>, String> {
    let list: Option<Vec<ResticSnapshot>> = serde_json::from_str(stdout.trim()).map_err(|e| e.to_string())?;
    let list = list.unwrap_or_default();
    for snap in &list {
        // The id is recorded as provenance in a ZFS property and passed to `restic restore`: only the
        // hex restic prints is taken.
        if snap.id.is_empty() || !snap.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("a snapshot has the id {:?}, not a hexadecimal restic id", snap.id));
        }
        if parse_rfc3339(&snap.time).is_none() {
            return Err(format!("snapshot {} has an unreadable time {:?}", snap.short_id(), snap.time));
        }
    }
    Ok(list)
}

/// The newest snapshot (by time; on equal times, the one listed last).
#[must_use]
pub fn newest(snapshots: &[ResticSnapshot]) -> Option<&ResticSnapshot> {
    snapshots.iter().max_by(|a, b| {
        let (ta, tb) = (parse_rfc3339(&a.time), parse_rfc3339(&b.time));
        ta.cmp(&tb).then(Ordering::Less)
    })
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
#[must_use]
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2024-05-01T12:34:56.123456789+02:00` (or `Z`) → nanoseconds since the epoch. `None` if malformed.
#[must_use]
pub fn parse_rfc3339(text: &str) -> Option<i128> {
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (date, rest) = text.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (clock, offset_secs) = if let Some(clock) = rest.strip_suffix('Z') {
        (clock, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (clock, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (clock, sign * (num(oh)? * 3600 + num(om)? * 60))
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.splitn(3, ':');
    let (h, mi, s) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 || frac.len() > 9 {
        return None;
    }
    let nanos = if frac.is_empty() { 0 } else { num(frac)? * 10_i64.pow(9 - u32::try_from(frac.len()).ok()?) };
    let days = days_from_civil(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// Parses an environment file: `KEY=value` lines, `#` comments, optional `export ` and quotes.
/// Errors name the line by its number and say what is wrong, never quote it: a malformed line is often
/// a pasted key on its own line, and even its part before `=` may be a secret.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut vars = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=value, found no '=' (the line is not shown)", index + 1));
        };
        let key = key.trim();
        let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "line {}: the part before '=' is not a variable name (letters, digits and _, not starting with a \
                 digit; the line is not shown)",
                index + 1
            ));
        }
        let value = value.trim();
        let unquoted =
            ['"', '\''].iter().find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q))).unwrap_or(value);
        vars.push((key.to_string(), unquoted.to_string()));
    }
    Ok(vars)
}

/// The secrets of a restic configuration, for masking in whatever restic or its caller reports: the
/// password file's content and every value (and, should it not parse, every line) of `environmentFile`.
/// Files that cannot be read add nothing.
#[must_use]
pub fn secrets(config: &ResticConfig) -> Secrets {
    let mut secrets = Secrets::default();
    secrets.add_file(&config.password_file);
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

/// Arguments of `restic snapshots`. Pure.
#[must_use]
pub fn snapshots_args(tags: &[String], path: Option<&str>, host: Option<&str>) -> Vec<String> {
    let mut args = vec!["snapshots".to_string(), "--json".to_string()];
    if !tags.is_empty() {
        // One --tag with a comma list: a snapshot must carry every tag.
        args.extend(["--tag".to_string(), tags.join(",")]);
    }
    if let Some(path) = path {
        args.extend(["--path".to_string(), path.to_string()]);
    }
    if let Some(host) = host {
        args.extend(["--host".to_string(), host.to_string()]);
    }
    args
}

/// Arguments of `restic restore`. Pure.
#[must_use]
pub fn restore_args(id: &str, path: &str, target: &Path) -> Vec<String> {
    vec![
        "restore".to_string(),
        id.to_string(),
        "--target".to_string(),
        target.display().to_string(),
        "--include".to_string(),
        path.to_string(),
    ]
}

/// Whether a path can be given to `--include` literally (restic's patterns have no escaping).
#[must_use]
pub fn is_literal_pattern(path: &str) -> bool {
    !path.contains(['*', '?', '[', ']', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_never_mean_no_backup() {
        assert!(matches!(classify("snapshots", Some(10), "x"), ResticError::NoRepository { .. }));
        assert_eq!(classify("snapshots", Some(12), ""), ResticError::WrongPassword);
        assert!(matches!(classify("restore", Some(1), "Fatal"), ResticError::Failed { code: 1, .. }));
        assert!(matches!(classify("restore", None, ""), ResticError::Failed { code: -1, .. }));
        assert!(matches!(classify("snapshots", Some(3), ""), ResticError::Failed { code: 3, .. }));
    }

    #[test]
    fn rfc3339_times_compare_across_offsets() {
        let cases: &[(&str, Option<i128>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("1970-01-01T01:00:00+01:00", Some(0)),
            ("1969-12-31T23:00:00-01:00", Some(0)),
            ("2000-03-01T00:00:00Z", Some(951_868_800_000_000_000)),
            ("2024-05-01T12:00:00.5Z", Some(1_714_564_800_500_000_000)),
            ("2024-05-01T14:00:00.123456789+02:00", Some(1_714_564_800_123_456_789)),
            ("2024-05-01 12:00:00Z", None),
            ("2024-13-01T12:00:00Z", None),
            ("garbage", None),
            ("2024-05-01T12:00:00", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339(text), *want, "{text}");
        }
    }

    #[test]
    fn newest_snapshot_wins_whatever_the_listing_order() {
        let snap = |id: &str, time: &str| ResticSnapshot {
            id: id.into(),
            time: time.into(),
            paths: vec![],
            hostname: None,
            tags: None,
        };
        let list = vec![
            snap("b", "2024-05-01T12:00:00+02:00"),
            snap("a", "2024-05-01T11:00:00Z"),
            snap("c", "2024-05-01T10:30:00Z"),
        ];
        assert_eq!(newest(&list).unwrap().id, "a");
        assert!(newest(&[]).is_none());
    }

    #[test]
    fn snapshot_listings_parse() {
        assert!(parse_snapshots("[]").unwrap().is_empty());
        assert!(parse_snapshots("null\n").unwrap().is_empty());
        let one = r#"[{"time":"2024-05-01T12:00:00.1+02:00","tree":"t","paths":["/a b"],"hostname":"h","id":"0123456789abcdef","short_id":"01234567","tags":["x"]}]"#;
        let list = parse_snapshots(one).unwrap();
        assert_eq!(list[0].short_id(), "01234567");
        assert_eq!(list[0].paths, ["/a b"]);
        assert!(parse_snapshots("Fatal: x").is_err());
        assert!(parse_snapshots(r#"[{"time":"yesterday","id":"x"}]"#).is_err());
        for id in ["", "abc\\tlocal", "abc\\n", "../x", "0123 4567"] {
            let text = format!(r#"[{{"time":"2024-05-01T12:00:00Z","id":"{id}"}}]"#);
            assert!(parse_snapshots(&text).unwrap_err().contains("not a hexadecimal restic id"), "{id:?}");
        }
    }

    #[test]
    fn env_files_parse_without_echoing_values() {
        let vars = parse_env_file("# c\n\nAWS_ACCESS_KEY_ID=abc\nexport B=\"q v\"\nC='x=y'\n").unwrap();
        assert_eq!(
            vars,
            [("AWS_ACCESS_KEY_ID".into(), "abc".into()), ("B".into(), "q v".into()), ("C".into(), "x=y".into())]
        );
        let cases: &[(&str, &str, &str)] = &[
            ("A=1\nwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", "line 2: expected KEY=value", "wJalrXUtnFEMI"),
            ("# x\n\n  AKIAsecretpart+/xyz=tail\n", "line 3: the part before '=' is not a variable name", "AKIA"),
            ("1X=supersecret\n", "line 1: the part before '=' is not a variable name", "1X"),
            ("export K/ey=supersecret\n", "line 1: the part before '=' is not a variable name", "K/ey"),
        ];
        for (text, want, secret) in cases {
            let err = parse_env_file(text).unwrap_err();
            assert!(err.starts_with(want), "{err}");
            assert!(!err.contains(secret) && !err.contains("supersecret") && !err.contains("tail"), "{err}");
        }
    }

    #[test]
    fn argv_never_carries_secrets_and_selects_by_every_filter() {
        assert_eq!(
            snapshots_args(&["a".into(), "b".into()], Some("/p q"), Some("h")),
            ["snapshots", "--json", "--tag", "a,b", "--path", "/p q", "--host", "h"]
        );
        assert_eq!(snapshots_args(&[], None, None), ["snapshots", "--json"]);
        assert_eq!(
            restore_args("abc", "/persist/my app", Path::new("/t/s")),
            ["restore", "abc", "--target", "/t/s", "--include", "/persist/my app"]
        );
        assert!(is_literal_pattern("/persist/my app"));
        assert!(!is_literal_pattern("/persist/a*"));
    }

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
