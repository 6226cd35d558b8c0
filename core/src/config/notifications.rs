//! The `notifications` section of the config file (`docs/config-format.md`, `docs/notifications.md`):
//! types and validation. Secrets are never in it: only the paths of the files holding them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::Errors;
use crate::notify::template::{self, Priority, Template};

/// The longest one delivery attempt may take, seconds.
const MAX_TIMEOUT: u64 = 600;
/// The most attempts per backend.
const MAX_ATTEMPTS: u32 = 10;
/// The longest wait before the second attempt, seconds.
const MAX_RETRY_DELAY: u64 = 300;

const fn default_timeout() -> u64 {
    10
}
const fn default_attempts() -> u32 {
    3
}
const fn default_retry_delay() -> u64 {
    2
}
const fn default_true() -> bool {
    true
}
const fn default_min_priority() -> Priority {
    Priority::Min
}
fn default_pushover_api() -> String {
    "https://api.pushover.net/1/messages.json".into()
}
fn default_sendmail() -> String {
    "/run/wrappers/bin/sendmail".into()
}
fn default_unit_templates() -> BTreeMap<String, String> {
    BTreeMap::from([("sanoid.service".to_string(), "sanoid-failure".to_string())])
}

/// `notifications`: where notifications go and what they say.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NotificationsConfig {
    /// Seconds one delivery attempt may take (connect to answer, or a command's run).
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT))]
    pub timeout: u64,
    /// Attempts per backend (1 = no retry).
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1, max = MAX_ATTEMPTS))]
    pub attempts: u32,
    /// Seconds before the second attempt; doubled before each further one.
    #[serde(default = "default_retry_delay")]
    #[schemars(range(max = MAX_RETRY_DELAY))]
    pub retry_delay: u64,
    /// Where notifications go, by kind, then by a name of the user's choosing.
    #[serde(default)]
    pub backends: Backends,
    /// Templates by name: overrides of the built-in ones (field by field) and new ones.
    #[serde(default)]
    pub templates: BTreeMap<String, TemplateConfig>,
    /// Failed unit → template, for `persistctl notify <unit>` (`notify@%n.service`); other units use
    /// `unit-failure`.
    #[serde(default = "default_unit_templates")]
    pub unit_templates: BTreeMap<String, String>,
}

/// `notifications.backends`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Backends {
    /// ntfy servers.
    #[serde(default)]
    pub ntfy: BTreeMap<String, NtfyBackend>,
    /// Generic JSON webhooks.
    #[serde(default)]
    pub webhook: BTreeMap<String, WebhookBackend>,
    /// Pushover.
    #[serde(default)]
    pub pushover: BTreeMap<String, PushoverBackend>,
    /// Mail through a `sendmail` program.
    #[serde(default)]
    pub email: BTreeMap<String, EmailBackend>,
    /// Any program.
    #[serde(default)]
    pub command: BTreeMap<String, CommandBackend>,
}

/// `backends.ntfy.<name>`: a JSON publish to an ntfy server.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NtfyBackend {
    /// Off: configured but not used.
    #[serde(default = "default_true")]
    pub enable: bool,
    /// Notifications below this priority are not sent here.
    #[serde(default = "default_min_priority")]
    pub min_priority: Priority,
    /// The server's URL (`https://ntfy.sh`); the JSON is posted to it.
    pub url: String,
    /// The topic.
    pub topic: String,
    /// File holding an access token (`Authorization: Bearer`), or null for none.
    pub token_file: Option<String>,
}

/// `backends.webhook.<name>`: a JSON POST.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookBackend {
    /// Off: configured but not used.
    #[serde(default = "default_true")]
    pub enable: bool,
    /// Notifications below this priority are not sent here.
    #[serde(default = "default_min_priority")]
    pub min_priority: Priority,
    /// The URL, when it is not a secret.
    pub url: Option<String>,
    /// File holding the URL (webhook URLs often carry their secret).
    pub url_file: Option<String>,
    /// File holding a token (`Authorization: Bearer`), or null for none.
    pub token_file: Option<String>,
}

/// `backends.pushover.<name>`: a form POST to the Pushover API.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PushoverBackend {
    /// Off: configured but not used.
    #[serde(default = "default_true")]
    pub enable: bool,
    /// Notifications below this priority are not sent here.
    #[serde(default = "default_min_priority")]
    pub min_priority: Priority,
    /// The messages endpoint.
    #[serde(default = "default_pushover_api")]
    pub api_url: String,
    /// File holding the application token.
    pub token_file: String,
    /// File holding the user (or group) key.
    pub user_file: String,
}

/// `backends.email.<name>`: a message on the stdin of `sendmail -i <to>...`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailBackend {
    /// Off: configured but not used.
    #[serde(default = "default_true")]
    pub enable: bool,
    /// Notifications below this priority are not sent here.
    #[serde(default = "default_min_priority")]
    pub min_priority: Priority,
    /// The sendmail-compatible program.
    #[serde(default = "default_sendmail")]
    pub sendmail: String,
    /// The `From:` address, or null to let sendmail choose.
    pub from: Option<String>,
    /// Recipients.
    #[schemars(length(min = 1))]
    pub to: Vec<String>,
}

/// `backends.command.<name>`: argv, with the notification in `PERSISTCTL_NOTIFY_*` variables.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommandBackend {
    /// Off: configured but not used.
    #[serde(default = "default_true")]
    pub enable: bool,
    /// Notifications below this priority are not sent here.
    #[serde(default = "default_min_priority")]
    pub min_priority: Priority,
    /// Program, then arguments.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
}

/// `templates.<name>`: unset fields keep the built-in template's value.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TemplateConfig {
    /// Off: `notify` with this template sends nothing (and says so).
    #[serde(default = "default_true")]
    pub enable: bool,
    /// How urgent (default: the built-in's, else medium).
    pub priority: Option<Priority>,
    /// The title (required for a template that is not built in).
    pub title: Option<String>,
    /// The body (required for a template that is not built in).
    pub body: Option<String>,
}

/// What a template name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Use this.
    Enabled(Template),
    /// `templates.<name>.enable = false`.
    Disabled,
}

impl NotificationsConfig {
    /// The template called `name`: the config's, merged over the built-in one.
    #[must_use]
    pub fn template(&self, name: &str) -> Option<Resolved> {
        let builtin = template::builtin(name);
        match (self.templates.get(name), builtin) {
            (None, None) => None,
            (None, Some(t)) => Some(Resolved::Enabled(t)),
            (Some(c), _) if !c.enable => Some(Resolved::Disabled),
            (Some(c), builtin) => {
                let priority = c.priority.or(builtin.as_ref().map(|b| b.priority)).unwrap_or(Priority::Medium);
                let title = c.title.clone().or_else(|| builtin.as_ref().map(|b| b.title.clone()))?;
                let body = c.body.clone().or_else(|| builtin.map(|b| b.body))?;
                Some(Resolved::Enabled(Template { priority, title, body }))
            }
        }
    }

    /// Every template name this config can send: the built-in ones and its own.
    #[must_use]
    pub fn template_names(&self) -> Vec<String> {
        let mut names: Vec<String> = template::BUILTIN_NAMES.iter().map(|n| (*n).to_string()).collect();
        names.extend(self.templates.keys().cloned());
        names.sort();
        names.dedup();
        names
    }
}

/// Whether `name` can be a template name: lower-case letters, digits, `-` and `_`, starting with a
/// letter or digit, no `.` (an argument with a `.` is a unit name).
#[must_use]
pub fn valid_template_name(name: &str) -> bool {
    name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Records why `value` is not a URL [`check_url`] accepts.
fn check_url_at(errors: &mut Errors, path: String, value: &str) {
    errors.check(path, check_url(value));
}

/// An `http://` or `https://` URL with a host and no whitespace.
pub fn check_url(value: &str) -> Result<(), String> {
    let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
    match rest {
        None => Err(format!("{value:?} is not an http:// or https:// URL")),
        Some(rest) if rest.is_empty() || rest.starts_with('/') => Err(format!("{value:?} has no host")),
        Some(_) if value.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(format!("{value:?} contains whitespace or a control character"))
        }
        Some(_) => Ok(()),
    }
}

/// A mail address as sendmail takes it on its command line (never an option).
fn check_address(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && !value.starts_with('-')
        && value.contains('@')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '<' | '>' | ';'));
    if ok { Ok(()) } else { Err(format!("{value:?} is not a mail address such as admin@example.org")) }
}

/// Checks the section; every problem names its field (`notifications.backends.ntfy.phone.url`).
pub(super) fn validate(errors: &mut Errors, n: &NotificationsConfig) {
    if !(1..=MAX_TIMEOUT).contains(&n.timeout) {
        errors.push("notifications.timeout", format!("must be 1 … {MAX_TIMEOUT} seconds"));
    }
    if !(1..=MAX_ATTEMPTS).contains(&n.attempts) {
        errors.push("notifications.attempts", format!("must be 1 … {MAX_ATTEMPTS}"));
    }
    if n.retry_delay > MAX_RETRY_DELAY {
        errors.push("notifications.retryDelay", format!("must be at most {MAX_RETRY_DELAY} seconds"));
    }
    validate_backends(errors, &n.backends);
    validate_templates(errors, n);
}

fn validate_backends(errors: &mut Errors, b: &Backends) {
    let names = b.ntfy.keys().chain(b.webhook.keys()).chain(b.pushover.keys()).chain(b.email.keys());
    for name in names.chain(b.command.keys()) {
        if !valid_template_name(name) {
            errors.push(
                "notifications.backends",
                format!("backend name {name:?}: use lower-case letters, digits, '-' and '_'"),
            );
        }
    }
    for (name, ntfy) in &b.ntfy {
        let at = format!("notifications.backends.ntfy.{name}");
        check_url_at(errors, format!("{at}.url"), &ntfy.url);
        let topic_ok = !ntfy.topic.is_empty()
            && ntfy.topic.len() <= 64
            && ntfy.topic.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !topic_ok {
            errors
                .push(format!("{at}.topic"), format!("{:?} is not an ntfy topic ([A-Za-z0-9_-], 1 … 64)", ntfy.topic));
        }
        if let Some(file) = &ntfy.token_file {
            errors.absolute(format!("{at}.tokenFile"), file);
        }
    }
    for (name, hook) in &b.webhook {
        let at = format!("notifications.backends.webhook.{name}");
        match (&hook.url, &hook.url_file) {
            (Some(url), None) => check_url_at(errors, format!("{at}.url"), url),
            (None, Some(file)) => errors.absolute(format!("{at}.urlFile"), file),
            (None, None) => errors.push(format!("{at}.url"), "set url or urlFile"),
            (Some(_), Some(_)) => errors.push(format!("{at}.url"), "set url or urlFile, not both"),
        }
        if let Some(file) = &hook.token_file {
            errors.absolute(format!("{at}.tokenFile"), file);
        }
    }
    for (name, push) in &b.pushover {
        let at = format!("notifications.backends.pushover.{name}");
        check_url_at(errors, format!("{at}.apiUrl"), &push.api_url);
        errors.absolute(format!("{at}.tokenFile"), &push.token_file);
        errors.absolute(format!("{at}.userFile"), &push.user_file);
    }
    for (name, mail) in &b.email {
        let at = format!("notifications.backends.email.{name}");
        if mail.sendmail.is_empty() || mail.sendmail.chars().any(char::is_control) {
            errors.push(format!("{at}.sendmail"), "needs a program");
        }
        if mail.to.is_empty() {
            errors.push(format!("{at}.to"), "needs at least one recipient");
        }
        for address in mail.to.iter().chain(mail.from.iter()) {
            if let Err(why) = check_address(address) {
                let field = if mail.from.as_ref() == Some(address) { "from" } else { "to" };
                errors.push(format!("{at}.{field}"), why);
            }
        }
    }
    for (name, cmd) in &b.command {
        if cmd.command.first().is_none_or(String::is_empty) {
            errors.push(
                format!("notifications.backends.command.{name}.command"),
                "needs a program (a list: program, then arguments)",
            );
        }
    }
}

fn validate_templates(errors: &mut Errors, n: &NotificationsConfig) {
    for (name, t) in &n.templates {
        let at = format!("notifications.templates.{name}");
        if !valid_template_name(name) {
            errors.push(&at, format!("template name {name:?}: use lower-case letters, digits, '-' and '_'"));
            continue;
        }
        let builtin = template::builtin(name).is_some();
        for (field, text) in [("title", &t.title), ("body", &t.body)] {
            match text {
                Some(text) => {
                    if let Err(why) = template::check(text) {
                        errors.push(format!("{at}.{field}"), why);
                    }
                }
                None if !builtin && t.enable => {
                    errors.push(format!("{at}.{field}"), "is required (this is not a built-in template)");
                }
                None => {}
            }
        }
    }
    for (unit, name) in &n.unit_templates {
        let at = format!("notifications.unitTemplates.\"{unit}\"");
        if !unit.contains('.') || unit.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.push(&at, format!("{unit:?} is not a unit name such as sanoid.service"));
        }
        if n.template(name).is_none() {
            errors.push(&at, format!("no template {name:?} (built in: {})", template::BUILTIN_NAMES.join(", ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;

    fn parse(json: &str) -> Result<NotificationsConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    fn validate(n: &NotificationsConfig) -> Vec<ConfigError> {
        let mut errors = Errors::default();
        super::validate(&mut errors, n);
        errors.0
    }

    #[test]
    fn defaults_and_a_full_section_parse() {
        let n = parse("{}").unwrap();
        assert_eq!((n.timeout, n.attempts, n.retry_delay), (10, 3, 2));
        assert_eq!(n.unit_templates["sanoid.service"], "sanoid-failure");
        assert!(validate(&n).is_empty());
        let n = parse(
            r#"{"backends": {
                 "ntfy": {"phone": {"url": "https://ntfy.sh", "topic": "homelab", "tokenFile": "/run/secrets/ntfy"}},
                 "webhook": {"hook": {"urlFile": "/run/secrets/hook", "tokenFile": null}},
                 "pushover": {"po": {"tokenFile": "/run/t", "userFile": "/run/u", "minPriority": "high"}},
                 "email": {"admin": {"to": ["admin@example.org"], "from": "forge@example.org"}},
                 "command": {"log": {"command": ["/bin/logger", "-t", "persistctl"], "enable": false}}},
               "templates": {"disk-full": {"priority": "urgent", "title": "Full: ${pool}", "body": "${pool} is full"},
                             "preseed-skipped": {"enable": false}}}"#,
        )
        .unwrap();
        assert_eq!(validate(&n), []);
        assert_eq!(n.backends.pushover["po"].api_url, "https://api.pushover.net/1/messages.json");
        assert_eq!(n.backends.email["admin"].sendmail, "/run/wrappers/bin/sendmail");
        assert_eq!(n.template("preseed-skipped"), Some(Resolved::Disabled));
        let Some(Resolved::Enabled(t)) = n.template("disk-full") else { panic!() };
        assert_eq!(t.priority, Priority::Urgent);
        assert!(n.template_names().contains(&"disk-full".to_string()));
    }

    #[test]
    fn template_overrides_merge_field_by_field() {
        let n =
            parse(r#"{"templates": {"preseed-failure": {"priority": "urgent"}, "mine": {"title": "t", "body": "b"}}}"#)
                .unwrap();
        let Some(Resolved::Enabled(t)) = n.template("preseed-failure") else { panic!() };
        assert_eq!(t.priority, Priority::Urgent);
        assert_eq!(t.title, "Restore Failed: ${serviceName}");
        let Some(Resolved::Enabled(t)) = n.template("mine") else { panic!() };
        assert_eq!(t.priority, Priority::Medium, "a new template without a priority is medium");
        assert_eq!(n.template("unknown"), None);
    }

    #[test]
    fn every_bad_value_names_its_field() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"{"timeout": 0}"#, "notifications.timeout", "1 … 600"),
            (r#"{"attempts": 0}"#, "notifications.attempts", "1 … 10"),
            (r#"{"retryDelay": 3600}"#, "notifications.retryDelay", "at most 300"),
            (
                r#"{"backends": {"ntfy": {"p": {"url": "ntfy.sh", "topic": "t", "tokenFile": null}}}}"#,
                "notifications.backends.ntfy.p.url",
                "not an http:// or https:// URL",
            ),
            (
                r#"{"backends": {"ntfy": {"p": {"url": "https://", "topic": "t", "tokenFile": null}}}}"#,
                "notifications.backends.ntfy.p.url",
                "no host",
            ),
            (
                r#"{"backends": {"ntfy": {"p": {"url": "https://ntfy.sh", "topic": "a/b", "tokenFile": null}}}}"#,
                "notifications.backends.ntfy.p.topic",
                "not an ntfy topic",
            ),
            (
                r#"{"backends": {"ntfy": {"p": {"url": "https://ntfy.sh", "topic": "t", "tokenFile": "secret"}}}}"#,
                "notifications.backends.ntfy.p.tokenFile",
                "not an absolute path",
            ),
            (r#"{"backends": {"webhook": {"h": {}}}}"#, "notifications.backends.webhook.h.url", "set url or urlFile"),
            (
                r#"{"backends": {"webhook": {"h": {"url": "https://x", "urlFile": "/f"}}}}"#,
                "notifications.backends.webhook.h.url",
                "not both",
            ),
            (
                r#"{"backends": {"pushover": {"p": {"tokenFile": "t", "userFile": "/u"}}}}"#,
                "notifications.backends.pushover.p.tokenFile",
                "not an absolute path",
            ),
            (r#"{"backends": {"email": {"m": {"to": []}}}}"#, "notifications.backends.email.m.to", "at least one"),
            (
                r#"{"backends": {"email": {"m": {"to": ["-oQ/tmp"]}}}}"#,
                "notifications.backends.email.m.to",
                "not a mail address",
            ),
            (
                r#"{"backends": {"email": {"m": {"to": ["a@b"], "from": "me"}}}}"#,
                "notifications.backends.email.m.from",
                "not a mail address",
            ),
            (
                r#"{"backends": {"command": {"c": {"command": []}}}}"#,
                "notifications.backends.command.c.command",
                "needs a program",
            ),
            (
                r#"{"backends": {"command": {"Bad Name": {"command": ["x"]}}}}"#,
                "notifications.backends",
                "backend name \"Bad Name\"",
            ),
            (r#"{"templates": {"x": {"title": "t"}}}"#, "notifications.templates.x.body", "is required"),
            (
                r#"{"templates": {"x": {"title": "${oops", "body": "b"}}}"#,
                "notifications.templates.x.title",
                "unterminated",
            ),
            (r#"{"templates": {"x.y": {"title": "t", "body": "b"}}}"#, "notifications.templates.x.y", "template name"),
            (
                r#"{"unitTemplates": {"sanoid": "sanoid-failure"}}"#,
                "notifications.unitTemplates.\"sanoid\"",
                "not a unit",
            ),
            (
                r#"{"unitTemplates": {"a.service": "nope"}}"#,
                "notifications.unitTemplates.\"a.service\"",
                "no template \"nope\"",
            ),
        ];
        for (json, path, needle) in cases {
            let errors = validate(&parse(json).unwrap());
            assert!(
                errors.iter().any(|e| e.path == *path && e.message.contains(needle)),
                "{json}: wanted {path}: ...{needle}..., got {errors:?}"
            );
        }
    }

    #[test]
    fn unknown_fields_and_priorities_are_rejected() {
        assert!(parse(r#"{"backend": {}}"#).unwrap_err().contains("unknown field `backend`"));
        assert!(parse(r#"{"backends": {"slack": {}}}"#).unwrap_err().contains("unknown field `slack`"));
        assert!(
            parse(r#"{"backends": {"ntfy": {"p": {"url": "https://x", "topic": "t", "token": "s3cret"}}}}"#)
                .unwrap_err()
                .contains("unknown field `token`"),
            "a secret cannot be put in the JSON"
        );
        assert!(parse(r#"{"templates": {"x": {"priority": "critical"}}}"#).unwrap_err().contains("unknown variant"));
    }

    #[test]
    fn template_names_have_no_dots() {
        for (name, ok) in
            [("sanoid-failure", true), ("disk_full2", true), ("a.service", false), ("", false), ("X", false)]
        {
            assert_eq!(valid_template_name(name), ok, "{name}");
        }
    }
}
