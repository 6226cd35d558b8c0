//! Secrets out of text: the one place that decides what is removed from child output and error text
//! before it is logged, written to a status file, or sent in a notification (`docs/security.md`).
//!
//! Two kinds of redaction, both pure:
//! - [`url_userinfo`]: the password of any `scheme://user:password@host` (restic 0.14 prints its
//!   `sftp:` and `rest:https:` repository URLs whole in its errors) becomes `***`; the user is kept.
//! - [`Secrets`]: values known to be secret (the restic password file, the values of
//!   `environmentFile`, notification tokens and URLs read from files) are replaced by `***` wherever
//!   they appear.
//!
//! And one policy: [`inherited`], the only variables a hook or notification command gets from
//! persistctl's own environment.

use std::fmt;

/// What a redacted secret is replaced by.
pub const MASK: &str = "***";

/// Known secrets shorter than this are not searched for: replacing every `ab` in a message would make
/// it unreadable and a two-character secret protects nothing anyway.
pub const MIN_SECRET_LEN: usize = 4;

/// Inherited variables a hook or notification command keeps (besides `LC_*`); everything else in
/// persistctl's environment (`RESTIC_*`, `AWS_*`, `B2_*`, tokens, ...) is removed. The `PERSISTCTL_*`
/// variables a hook is documented to get are set explicitly by its caller, never inherited.
pub const INHERITED: &[&str] = &["PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME"];

/// Whether a hook or notification command inherits the variable `name` from persistctl.
#[must_use]
pub fn inherited(name: &str) -> bool {
    INHERITED.contains(&name) || name.starts_with("LC_")
}

/// Replaces the password of every `scheme://user:password@` in `text` by `***` (the user is kept).
/// The authority ends at whitespace, `/`, `?` or `#`; its last `@` ends the userinfo, so a password
/// with an unencoded `@` is masked whole.
#[must_use]
pub fn url_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after.find(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#')).unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@').map(|i| (&authority[..i], i)) {
            Some((userinfo, i)) if userinfo.contains(':') => {
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
                rest = &after[i..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// The host (and port) of a URL, for error messages that must not carry its path, query or userinfo.
#[must_use]
pub fn url_host(url: &str) -> String {
    let after = url.split_once("://").map_or(url, |(_, a)| a);
    let authority = after.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() { "(no host)".to_string() } else { host.to_string() }
}

/// Values known to be secret, replaced by `***` in any text given to [`Secrets::redact`].
#[derive(Clone, Default)]
pub struct Secrets {
    /// Longest first, so that a secret containing another is masked whole.
    values: Vec<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

impl Secrets {
    /// Adds one secret (surrounding whitespace removed; shorter than [`MIN_SECRET_LEN`]: ignored).
    pub fn add(&mut self, value: &str) {
        let value = value.trim();
        if value.chars().count() < MIN_SECRET_LEN || self.values.iter().any(|v| v == value) {
            return;
        }
        self.values.push(value.to_string());
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    /// Adds a secret file's content: the whole of it and each of its lines.
    pub fn add_text(&mut self, text: &str) {
        self.add(text);
        for line in text.lines() {
            self.add(line);
        }
    }

    /// Adds everything from `other`.
    pub fn extend(&mut self, other: &Secrets) {
        for value in &other.values {
            self.add(value);
        }
    }

    /// How many values are known.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with URL passwords and every known secret replaced by `***`.
    #[must_use]
    pub fn redact(&self, text: &str) -> String {
        let mut text = url_userinfo(text);
        for value in &self.values {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), MASK);
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked_and_users_kept() {
        let cases: &[(&str, &str)] = &[
            (
                "Fatal: unable to open repo at sftp://u:hunter2@h/srv/repo: EOF",
                "Fatal: unable to open repo at sftp://u:***@h/srv/repo: EOF",
            ),
            ("rest:https://user:pa55@backup.example:8000/ x", "rest:https://user:***@backup.example:8000/ x"),
            ("\"sftp://u:hunter2@h\"", "\"sftp://u:***@h\""),
            ("sftp://u:p@ss@word@h/x", "sftp://u:***@h/x"),
            ("https://:token@h", "https://:***@h"),
            ("two: a://x:1@h b://y:2@i", "two: a://x:***@h b://y:***@i"),
            // No password: unchanged.
            ("sftp://user@host/path", "sftp://user@host/path"),
            ("sftp:user@host:/srv/restic", "sftp:user@host:/srv/restic"),
            ("https://host:8000/path?a=b@c", "https://host:8000/path?a=b@c"),
            ("mail root@host: https://h/x", "mail root@host: https://h/x"),
            ("no url at all", "no url at all"),
            ("trailing ://", "trailing ://"),
            ("", ""),
            ("é://ü:ö@ä", "é://ü:***@ä"),
        ];
        for (text, want) in cases {
            assert_eq!(url_userinfo(text), *want, "{text}");
        }
    }

    #[test]
    fn url_hosts_carry_no_path_query_or_userinfo() {
        let cases: &[(&str, &str)] = &[
            ("https://hooks.example/services/T0/B0/secret", "hooks.example"),
            ("http://127.0.0.1:8080/topic?auth=tk", "127.0.0.1:8080"),
            ("https://u:p@h.example/x", "h.example"),
            ("https://h#frag", "h"),
            ("https:///nohost", "(no host)"),
        ];
        for (url, want) in cases {
            assert_eq!(url_host(url), *want, "{url}");
        }
    }

    #[test]
    fn known_secrets_are_masked_longest_first() {
        let mut s = Secrets::default();
        s.add("  hunter2\n");
        s.add("hunter2-extended");
        s.add("abc");
        s.add("hunter2");
        assert_eq!(s.len(), 2, "too short and duplicate values are not kept");
        let cases: &[(&str, &str)] = &[
            ("password hunter2 rejected", "password *** rejected"),
            ("key hunter2-extended", "key ***"),
            ("abc is not secret", "abc is not secret"),
            ("sftp://u:other@h and hunter2", "sftp://u:***@h and ***"),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(s.redact(text), *want, "{text}");
        }
        assert!(!format!("{s:?}").contains("hunter2"), "Debug never prints a secret");
    }

    #[test]
    fn a_secret_file_adds_itself_and_its_lines() {
        let mut s = Secrets::default();
        s.add_text("first-line\nsecond-line\n");
        assert_eq!(s.redact("x first-line y second-line"), "x *** y ***");
        assert_eq!(s.len(), 3);
        let mut t = Secrets::default();
        t.extend(&s);
        assert_eq!(t.len(), 3);
        assert!(Secrets::default().is_empty());
    }

    #[test]
    fn hooks_inherit_only_the_allow_list() {
        for name in ["PATH", "HOME", "LANG", "LC_ALL", "LC_TIME", "TZ", "TMPDIR", "USER", "LOGNAME", "LANGUAGE"] {
            assert!(inherited(name), "{name}");
        }
        for name in [
            "RESTIC_PASSWORD",
            "RESTIC_PASSWORD_FILE",
            "RESTIC_REPOSITORY",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "B2_ACCOUNT_KEY",
            "AZURE_ACCOUNT_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "NTFY_TOKEN",
            "PERSISTCTL_RESTIC",
            "CREDENTIALS_DIRECTORY",
            "SSH_AUTH_SOCK",
            "LD_PRELOAD",
            "path",
        ] {
            assert!(!inherited(name), "{name}");
        }
    }
}
