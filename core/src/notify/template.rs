//! Templates: `${variable}` substitution (pure), the priorities, and the built-in templates.
//!
//! Syntax: `${name}` is replaced by the variable's value; `${name:-text}` by the value, or `text` when
//! the variable is not given; `$${` is a literal `${`; any other `$` is itself. Values are inserted
//! once and never expanded again. A variable that is neither given nor defaulted is rendered as
//! `${name?}` (so the message still goes out and shows what is missing) and reported in
//! [`Rendered::missing`]; `persistctl notify --strict` turns that into an error.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How urgent a notification is. The seed uses low, medium and high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// ntfy 1, Pushover -2.
    Min,
    /// ntfy 2, Pushover -1.
    Low,
    /// ntfy 3 (its default), Pushover 0.
    Medium,
    /// ntfy 4, Pushover 1.
    High,
    /// ntfy 5, Pushover 2 (emergency: repeated until acknowledged).
    Urgent,
}

impl Priority {
    /// The name used in the config and in the webhook/command payloads.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Min => "min",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    /// ntfy's 1 … 5.
    #[must_use]
    pub const fn ntfy(self) -> u8 {
        match self {
            Self::Min => 1,
            Self::Low => 2,
            Self::Medium => 3,
            Self::High => 4,
            Self::Urgent => 5,
        }
    }

    /// Pushover's -2 … 2.
    #[must_use]
    pub const fn pushover(self) -> i8 {
        match self {
            Self::Min => -2,
            Self::Low => -1,
            Self::Medium => 0,
            Self::High => 1,
            Self::Urgent => 2,
        }
    }

    /// The mail `X-Priority` header's 1 (highest) … 5.
    #[must_use]
    pub const fn x_priority(self) -> u8 {
        6 - self.ntfy()
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A template: priority, title and body with `${variable}` references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// How urgent.
    pub priority: Priority,
    /// One line (newlines become spaces when rendered).
    pub title: String,
    /// Free text.
    pub body: String,
}

/// A template with its variables substituted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// The template's name.
    pub template: String,
    /// How urgent.
    pub priority: Priority,
    /// One line.
    pub title: String,
    /// Free text, trailing blank lines removed.
    pub body: String,
    /// The variables it was rendered with (they go to webhooks and commands as they are).
    pub variables: BTreeMap<String, String>,
    /// Variables the template uses without a default that were not given, in order of first use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// Whether `name` can be a variable name: a letter or `_`, then letters, digits, `_` and `-`.
#[must_use]
pub fn valid_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 64
}

/// One piece of a parsed template text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Variable { name: &'a str, default: Option<&'a str> },
}

/// Splits a template text into literal text and variable references, or says what is wrong.
fn parse(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        if let Some(literal_rest) = after.strip_prefix("${") {
            // `$${` is a literal `${`.
            pieces.push(Piece::Text(&rest[..at]));
            pieces.push(Piece::Text("${"));
            rest = literal_rest;
        } else if let Some(inner) = after.strip_prefix('{') {
            pieces.push(Piece::Text(&rest[..at]));
            let Some(end) = inner.find('}') else {
                return Err(format!(
                    "unterminated \"${{\" at {:?} (write $${{ for a literal ${{)",
                    preview(&rest[at..])
                ));
            };
            let reference = &inner[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if !valid_variable_name(name) {
                return Err(format!(
                    "\"${{{reference}}}\": {name:?} is not a variable name (letters, digits, _ and -; \
                     ${{name:-default}} for a default)"
                ));
            }
            if default.is_some_and(|d| d.contains("${")) {
                return Err(format!("\"${{{reference}}}\": a default cannot hold another variable"));
            }
            pieces.push(Piece::Variable { name, default });
            rest = &inner[end + 1..];
        } else {
            pieces.push(Piece::Text(&rest[..=at]));
            rest = after;
        }
    }
    pieces.push(Piece::Text(rest));
    Ok(pieces)
}

fn preview(text: &str) -> String {
    text.chars().take(24).collect()
}

/// Checks a template text (a title or a body): `Ok` with the variables it uses (without a default).
pub fn check(text: &str) -> Result<Vec<String>, String> {
    Ok(parse(text)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Variable { name, default: None } => Some(name.to_string()),
            _ => None,
        })
        .collect())
}

/// Substitutes variables in one text; missing names are appended to `missing`.
fn substitute(text: &str, vars: &BTreeMap<String, String>, missing: &mut Vec<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for piece in parse(text)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Variable { name, default } => match (vars.get(name), default) {
                (Some(value), _) => out.push_str(value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    if !missing.iter().any(|m| m == name) {
                        missing.push(name.to_string());
                    }
                    out.push_str("${");
                    out.push_str(name);
                    out.push_str("?}");
                }
            },
        }
    }
    Ok(out)
}

/// Renders a template: substitutes the variables, makes the title one line, trims the body's end.
pub fn render(name: &str, template: &Template, vars: &BTreeMap<String, String>) -> Result<Rendered, String> {
    let mut missing = Vec::new();
    let title = substitute(&template.title, vars, &mut missing).map_err(|e| format!("title: {e}"))?;
    let body = substitute(&template.body, vars, &mut missing).map_err(|e| format!("body: {e}"))?;
    let title = title.split(|c: char| c.is_control()).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    Ok(Rendered {
        template: name.to_string(),
        priority: template.priority,
        title: title.trim().to_string(),
        body: body.trim_end().to_string(),
        variables: vars.clone(),
        missing,
    })
}

/// The templates every config has (seed 4.4 and 5.3). A config's `templates.<name>` overrides them
/// field by field, or disables them.
#[must_use]
pub fn builtin(name: &str) -> Option<Template> {
    let t = |priority, title: &str, body: &str| Some(Template { priority, title: title.into(), body: body.into() });
    match name {
        "sanoid-failure" => t(
            Priority::High,
            "Sanoid Snapshot Failed",
            "Dataset: ${dataset:-every dataset sanoid manages}\nError: ${errorMessage}",
        ),
        "syncoid-lag-warning" => {
            t(Priority::Medium, "Syncoid Replication Lag", "Lag: ${lagHours} hours\nDataset: ${dataset}")
        }
        "preseed-success" => t(
            Priority::Low,
            "Data Restored: ${serviceName}",
            "Source: ${restoreSource}\nSnapshot: ${snapshot:-}\nDuration: ${duration}\n${note:-}",
        ),
        // The seed's body says "Service starting with empty data"; persistctl fails closed instead.
        "preseed-failure" => t(
            Priority::High,
            "Restore Failed: ${serviceName}",
            "All restore methods failed\nService kept stopped: it does not start with empty data\n${errorMessage:-}",
        ),
        "preseed-skipped" => t(Priority::Low, "Restore Skipped: ${serviceName}", "Data already present"),
        "preseed-empty-bootstrap" => t(
            Priority::Medium,
            "Started Empty: ${serviceName}",
            "No backup exists in any source; allowEmptyBootstrap let the service start with empty data",
        ),
        // `persistctl status` changed state; callers pass `--priority` to match the new state.
        "status-change" => {
            t(Priority::High, "Storage status: ${state}", "Host: ${hostname}\nWas: ${previous:-unknown}\n${summary:-}")
        }
        "unit-failure" => {
            t(Priority::High, "Unit Failed: ${unit}", "Host: ${hostname}\nResult: ${result:-failed}\n${errorMessage:-}")
        }
        _ => None,
    }
}

/// The names of the built-in templates.
pub const BUILTIN_NAMES: &[&str] = &[
    "preseed-empty-bootstrap",
    "preseed-failure",
    "preseed-skipped",
    "preseed-success",
    "sanoid-failure",
    "status-change",
    "syncoid-lag-warning",
    "unit-failure",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    #[test]
    fn substitution_cases() {
        let given = vars(&[("a", "1"), ("svc", "sonarr"), ("evil", "${a}"), ("empty", ""), ("my-var", "x")]);
        let cases: &[(&str, &str, &[&str])] = &[
            ("plain text", "plain text", &[]),
            ("${a}", "1", &[]),
            ("x${a}y${a}", "x1y1", &[]),
            ("${svc}: ${a}", "sonarr: 1", &[]),
            ("${missing}", "${missing?}", &["missing"]),
            ("${b} ${c} ${b}", "${b?} ${c?} ${b?}", &["b", "c"]),
            ("${b:-none}", "none", &[]),
            ("${a:-none}", "1", &[]),
            ("${b:-}", "", &[]),
            ("${empty:-default}", "", &[]),
            ("${evil}", "${a}", &[]),
            ("$${a}", "${a}", &[]),
            ("cost: $5 $ $a", "cost: $5 $ $a", &[]),
            ("end$", "end$", &[]),
            ("${my-var}", "x", &[]),
            ("${b:-a:-b}", "a:-b", &[]),
            ("ünïcødé ${svc} ✓", "ünïcødé sonarr ✓", &[]),
        ];
        for (text, want, want_missing) in cases {
            let mut missing = Vec::new();
            let got = substitute(text, &given, &mut missing).unwrap();
            assert_eq!(got, *want, "{text}");
            assert_eq!(missing, *want_missing, "{text}");
        }
    }

    #[test]
    fn bad_template_texts_say_why() {
        let cases: &[(&str, &str)] = &[
            ("${", "unterminated"),
            ("abc ${name", "unterminated"),
            ("${}", "not a variable name"),
            ("${1abc}", "not a variable name"),
            ("${a b}", "not a variable name"),
            ("${a.b}", "not a variable name"),
            ("${a:-${b}}", "cannot hold another variable"),
        ];
        for (text, needle) in cases {
            let err = check(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn check_lists_required_variables() {
        assert_eq!(check("${a} ${b:-x} $${c} ${d}").unwrap(), ["a", "d"]);
    }

    #[test]
    fn rendering_makes_one_title_line_and_trims_the_body() {
        let t = Template { priority: Priority::High, title: "Failed: ${unit}".into(), body: "x\n${note:-}\n".into() };
        let r = render("t", &t, &vars(&[("unit", "a\nb\r\tc")])).unwrap();
        assert_eq!(r.title, "Failed: a b c");
        assert_eq!(r.body, "x");
        assert!(r.missing.is_empty());
    }

    #[test]
    fn every_builtin_parses_and_the_seed_wording_is_kept() {
        for name in BUILTIN_NAMES {
            let t = builtin(name).unwrap();
            check(&t.title).unwrap();
            check(&t.body).unwrap();
        }
        assert!(builtin("nope").is_none());
        let r = render(
            "syncoid-lag-warning",
            &builtin("syncoid-lag-warning").unwrap(),
            &vars(&[("lagHours", "13"), ("dataset", "tank/persist")]),
        )
        .unwrap();
        assert_eq!((r.priority, r.title.as_str()), (Priority::Medium, "Syncoid Replication Lag"));
        assert_eq!(r.body, "Lag: 13 hours\nDataset: tank/persist");
        let r = render(
            "sanoid-failure",
            &builtin("sanoid-failure").unwrap(),
            &vars(&[("dataset", "tank/persist/sonarr"), ("errorMessage", "out of space")]),
        )
        .unwrap();
        assert_eq!(r.body, "Dataset: tank/persist/sonarr\nError: out of space");
        let r = render(
            "preseed-success",
            &builtin("preseed-success").unwrap(),
            &vars(&[("serviceName", "sonarr"), ("restoreSource", "restic"), ("duration", "42s")]),
        )
        .unwrap();
        assert_eq!(r.title, "Data Restored: sonarr");
        assert_eq!(r.body, "Source: restic\nSnapshot: \nDuration: 42s");
        let r = render("preseed-skipped", &builtin("preseed-skipped").unwrap(), &vars(&[])).unwrap();
        assert_eq!(r.title, "Restore Skipped: ${serviceName?}");
        assert_eq!(r.missing, ["serviceName"]);
    }

    #[test]
    fn priorities_map_onto_each_service() {
        let all = [Priority::Min, Priority::Low, Priority::Medium, Priority::High, Priority::Urgent];
        assert_eq!(all.map(Priority::ntfy), [1, 2, 3, 4, 5]);
        assert_eq!(all.map(Priority::pushover), [-2, -1, 0, 1, 2]);
        assert_eq!(all.map(Priority::x_priority), [5, 4, 3, 2, 1]);
        assert!(Priority::High > Priority::Medium);
    }
}
