//! What is wrong with a config, and where: the error types, the one collector every section's
//! validator pushes into, and the path checks they share.

use std::fmt;

use crate::zfs::namecheck::check_path_lengths;

/// One thing wrong with a config: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// e.g. `datasets.services.sonarr.recordsize`.
    pub path: String,
    /// e.g. `"15K" is not a power of two between 512 and 16M`.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// All that is wrong with a config, one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

/// The collector: every validator pushes what it finds and goes on, so one run reports everything.
#[derive(Debug, Default)]
pub(super) struct Errors(pub(super) Vec<ConfigError>);

impl Errors {
    /// Records that the field at `path` is wrong.
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError { path: path.into(), message: message.into() });
    }

    /// Records the reason of a failed check, if it failed.
    pub(super) fn check<T>(&mut self, path: impl Into<String>, result: Result<T, String>) -> Option<T> {
        result.map_err(|why| self.push(path, why)).ok()
    }

    /// How many problems have been found so far.
    pub(super) fn count(&self) -> usize {
        self.0.len()
    }

    /// An absolute path without a control character: what the `notifications` section asks of the
    /// files it names.
    pub(super) fn absolute(&mut self, path: impl Into<String>, value: &str) {
        if let Some(why) = not_absolute(value) {
            self.push(path, why);
        }
    }

    /// An absolute path as persistctl mounts on, reads or hands to zfs: [`Self::absolute`], with no
    /// `.` or `..` component, and within Linux' lengths.
    pub(super) fn absolute_path(&mut self, path: impl Into<String>, value: &str) {
        let why = not_absolute(value)
            .or_else(|| {
                value
                    .split('/')
                    .any(|c| c == ".." || c == ".")
                    .then(|| format!("{value:?} contains a '.' or '..' component"))
            })
            .or_else(|| check_path_lengths(value).err());
        if let Some(why) = why {
            self.push(path, why);
        }
    }
}

/// Why `value` is not an absolute path without control characters, if it is not.
fn not_absolute(value: &str) -> Option<String> {
    if !value.starts_with('/') {
        Some(format!("{value:?} is not an absolute path"))
    } else if value.chars().any(char::is_control) {
        Some(format!("{value:?} contains a control character"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absolute_path_is_checked_in_order_and_reported_once() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/persist/a", None),
            ("rel", Some("not an absolute path")),
            ("/a\n/..", Some("control character")),
            ("/a/../b", Some("'..'")),
            ("/a/./b", Some("'.'")),
        ];
        for (value, needle) in cases {
            let mut errors = Errors::default();
            errors.absolute_path("x", value);
            match needle {
                None => assert!(errors.0.is_empty(), "{value}: {errors:?}"),
                Some(needle) => {
                    assert_eq!(errors.count(), 1, "{value}: {errors:?}");
                    assert!(errors.0[0].message.contains(needle), "{value}: {errors:?}");
                }
            }
        }
        let long = format!("/{}", "x".repeat(256));
        let mut errors = Errors::default();
        errors.absolute_path("x", &long);
        assert!(errors.0[0].message.contains("at most 255"), "{errors:?}");
    }

    #[test]
    fn the_notifications_check_wants_absolute_paths_without_control_characters() {
        let mut errors = Errors::default();
        errors.absolute("a", "/run/secrets/t");
        errors.absolute("b", "t");
        errors.absolute("c", "/run/t\n");
        let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["b", "c"], "{errors:?}");
    }
}
