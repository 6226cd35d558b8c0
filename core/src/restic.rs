//! restic's vocabulary: exit codes, the `snapshots --json` listing, snapshot times, environment files
//! and the argv of every restic call. Nothing here runs restic; `persistctl::restic::Restic` does.
//!
//! Exit codes: restic ≥ 0.17 exits 10 when the repository does not exist and 12 on a wrong password;
//! older releases (Debian's 0.14) exit 1 for every failure. Neither code means "no backup": the only
//! "no backup" answer is a successful `restic snapshots --json` that lists nothing.

use std::cmp::Ordering;
use std::path::Path;

use serde::Deserialize;

/// Exit code of restic ≥ 0.17: the repository does not exist.
pub const EXIT_NO_REPOSITORY: i32 = 10;
/// Exit code of restic ≥ 0.17: wrong password.
pub const EXIT_WRONG_PASSWORD: i32 = 12;

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

/// An RFC 3339 time with an offset (`2024-05-01T12:34:56.123456789+02:00` or `Z`, as restic prints
/// them) → nanoseconds since the epoch. `None` if malformed or without an offset.
#[must_use]
pub fn parse_rfc3339(text: &str) -> Option<i128> {
    // jiff also reads a space or a lower-case `t` between date and time; restic writes neither, and a
    // time that is not restic's own shape is not trusted.
    if text.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    text.parse::<jiff::Timestamp>().ok().map(jiff::Timestamp::as_nanosecond)
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

/// Arguments of `restic snapshots`.
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
            ("2024-02-30T12:00:00Z", None),
            ("2024-05-01t12:00:00Z", None),
            ("2024-05-01T12:00:00.1234567891Z", None),
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
}
