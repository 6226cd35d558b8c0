//! The JSON contract with the NixOS module (`docs/config-format.md`): parsing, validation, and the
//! dataset specs everything downstream works from. Nothing below `plan` reads the JSON again.
//!
//! A leaf: it uses only the zfs name and property rules, the derived names and the template checks.
//! One file a section (`datasets`, `preseed`, `monitoring`, `notifications`), each with its types and
//! its validator; `error` holds the one collector they all push into. This file parses (duplicate
//! keys, version, serde's field paths) and runs the sections' validators in order.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::Context as _;
use schemars::JsonSchema;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

mod barman;
mod datasets;
mod error;
mod monitoring;
pub mod notifications;
mod preseed;

pub use barman::{BarmanArchive, Compression, MAX_WAL_TIMEOUT_SECS, PostgresConfig, RetentionPolicy, WindowUnit};
pub use datasets::{DatasetSpec, DatasetsConfig, OwnershipSpec, ServiceConfig, WantedProperty, parse_mode};
pub use error::{ConfigError, ConfigErrors};
pub use monitoring::{Limits, MonitoringConfig, Thresholds};
pub use preseed::{PreseedConfig, ReplicaConfig, ResticConfig, SourceKind};

use error::Errors;

/// The config version this binary reads.
pub const CONFIG_VERSION: u64 = 1;

/// The longest timeout a config or the command line may ask for: 7 days, in seconds. Far beyond any
/// restore that should be waited for, and far below what a deadline (`Instant + Duration`) can hold.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// The default config path, where the NixOS module links it.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/persistctl/config.json";

/// The whole file: `/etc/persistctl/config.json`, written by the NixOS module (`docs/config-format.md`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "persistctl config, version 1")]
pub struct Config {
    /// Always 1 for this format.
    #[schemars(extend("const" = CONFIG_VERSION))]
    pub version: u64,
    /// The `modules.storage.datasets` part.
    pub datasets: DatasetsConfig,
    /// The `modules.notifications` part (`docs/notifications.md`); absent or null: not configured.
    pub notifications: Option<notifications::NotificationsConfig>,
    /// What `persistctl status` checks and its thresholds (`modules.replication.zfs.monitoring`).
    pub monitoring: Option<MonitoringConfig>,
    /// Service → the PostgreSQL cluster on its dataset and its barman-cloud archive
    /// (`modules.database.postgresql.pitr`).
    #[serde(default)]
    pub postgresql: BTreeMap<String, PostgresConfig>,
}

/// A parsed and validated config, with the dataset specs derived from it.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The config as read.
    pub config: Config,
    /// One spec per service, sorted by service name.
    pub specs: Vec<DatasetSpec>,
}

impl Validated {
    /// The dataset spec of `service`.
    ///
    /// # Errors
    /// No such service in the config (the error names it).
    pub fn spec(&self, service: &str) -> anyhow::Result<&DatasetSpec> {
        self.specs
            .iter()
            .find(|s| s.service == service)
            .with_context(|| format!("Service {service:?} is not in the config"))
    }

    /// The preseed settings of `service`, when it has them.
    #[must_use]
    pub fn preseed(&self, service: &str) -> Option<&PreseedConfig> {
        self.config.datasets.services.get(service).and_then(|s| s.preseed.as_ref())
    }
}

/// Parses and validates config text.
pub fn parse(text: &str) -> Result<Validated, ConfigErrors> {
    let one = |path: &str, message: String| ConfigErrors(vec![ConfigError { path: path.into(), message }]);
    // Before anything else: serde (and `Value`) keep the last of two equal keys without a word, so a
    // config saying `"mode": "0700"` and then `"mode": "0777"` would silently mean the second.
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let scanned = DuplicateKeys { path: String::new(), found: &duplicate }.deserialize(&mut de).and_then(|()| de.end());
    if let Err(e) = scanned {
        return Err(match duplicate.into_inner() {
            Some(dup) => ConfigErrors(vec![dup]),
            None => one("(file)", format!("not valid JSON: {e}")),
        });
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| one("(file)", format!("not valid JSON: {e}")))?;
    match value.get("version") {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(CONFIG_VERSION) => {}
        Some(other) => {
            return Err(one(
                "version",
                format!("unsupported config version {other} (this persistctl reads version {CONFIG_VERSION})"),
            ));
        }
        None => {
            return Err(one("version", "missing (this persistctl reads version 1)".into()));
        }
    }
    let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        one(if path == "." { "(top level)" } else { &path }, e.into_inner().to_string())
    })?;
    let specs = validate(&config)?;
    Ok(Validated { config, specs })
}

/// The JSON Schema (draft 2020-12) of the file, generated from these types, as
/// `docs/config.schema.json` holds it (pretty, with a final line break). It states the shape: keys,
/// types, required and optional fields, defaults, enumerations, and the bounds the validators take from
/// named constants; the name, path, property and cross-field rules are [`parse`]'s alone.
#[must_use]
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Config);
    // A `Schema` is a JSON value; printing one cannot fail.
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Walks a JSON document and fails at the first object holding a key twice, recording where.
struct DuplicateKeys<'a> {
    /// The field path of the value being walked (`datasets.services.sonarr`).
    path: String,
    /// The duplicate found, with its field path.
    found: &'a RefCell<Option<ConfigError>>,
}

impl DuplicateKeys<'_> {
    fn child(&self, part: &str) -> Self {
        let path = if self.path.is_empty() { part.to_string() } else { format!("{}.{part}", self.path) };
        Self { path, found: self.found }
    }
}

impl<'de> DeserializeSeed<'de> for DuplicateKeys<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DuplicateKeys<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let element = Self { path: format!("{}[{index}]", self.path), found: self.found };
            if seq.next_element_seed(element)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if seen.contains(&key) {
                let message = format!("duplicate key {key:?} (only one value per key is allowed)");
                *self.found.borrow_mut() = Some(ConfigError { path: child.path, message });
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value_seed(child)?;
            seen.insert(key);
        }
        Ok(())
    }
}

/// Every section's checks, in file order, into one list; the specs when nothing is wrong.
fn validate(config: &Config) -> Result<Vec<DatasetSpec>, ConfigErrors> {
    let mut errors = Errors::default();
    let specs = datasets::validate_datasets(&mut errors, &config.datasets);
    if let Some(m) = &config.monitoring {
        monitoring::validate_monitoring(&mut errors, m, &config.datasets);
    }
    if let Some(n) = &config.notifications {
        notifications::validate(&mut errors, n);
    }
    let is_service = |name: &str| config.datasets.services.contains_key(name);
    for (service, pg) in &config.postgresql {
        barman::validate_postgres(&mut errors, &format!("postgresql.{service}"), pg, service, is_service);
    }
    for (service, entry) in &config.datasets.services {
        let barman = entry.preseed.as_ref().is_some_and(|p| p.enable && p.sources.contains(&SourceKind::Barman));
        if barman && !config.postgresql.contains_key(service) {
            errors.push(
                format!("datasets.services.{service}.preseed.sources"),
                format!("lists \"barman\", but postgresql.{service} (its cluster and archive) is not set"),
            );
        }
    }
    if errors.0.is_empty() { Ok(specs) } else { Err(ConfigErrors(errors.0)) }
}

#[cfg(test)]
mod test_support {
    /// A version-1 config with one service, `sonarr`, whose object is `service`.
    pub(super) fn config_with_service(service: &str) -> String {
        format!(
            r#"{{"version": 1, "datasets": {{"parentDataset": "tank/persist", "parentMount": "/persist",
               "services": {{"sonarr": {service}}}}}}}"#
        )
    }

    /// Asserts that `text` is refused with an error at `path` whose message holds `needle`.
    pub(super) fn assert_refused_at(text: &str, path: &str, needle: &str) {
        let errors = super::parse(text).expect_err(text).0;
        assert!(
            errors.iter().any(|e| e.path == path && e.message.contains(needle)),
            "{}: wanted {path}: ...{needle}..., got {errors:?}",
            text.chars().take(160).collect::<String>()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{assert_refused_at, config_with_service};
    use super::*;

    #[test]
    fn the_barman_source_needs_its_postgresql_entry_and_an_entry_its_service() {
        let barman = config_with_service(r#"{"preseed": {"enable": true, "sources": ["barman"]}}"#);
        assert_refused_at(&barman, "datasets.services.sonarr.preseed.sources", "postgresql.sonarr");
        let entry =
            r#"{"archive": {"destination": "s3://b", "serverName": "pg"}, "binDir": "/usr/lib/postgresql/15/bin"}"#;
        let mut with: serde_json::Value = serde_json::from_str(&barman).unwrap();
        with["postgresql"] = serde_json::json!({ "sonarr": serde_json::from_str::<serde_json::Value>(entry).unwrap() });
        assert!(parse(&with.to_string()).is_ok(), "{with}");
        with["postgresql"]["pg"] = with["postgresql"]["sonarr"].clone();
        assert_refused_at(&with.to_string(), "postgresql.pg", "not a service in datasets.services");
        with["postgresql"]["sonarr"]["walTimeout"] = 86_401.into();
        assert_refused_at(&with.to_string(), "postgresql.sonarr.walTimeout", "86400");
    }

    #[test]
    fn bad_top_level_values_name_their_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("{", "(file)", "not valid JSON"),
            (r#"{"datasets": {}}"#, "version", "missing"),
            (r#"{"version": 2, "datasets": {}}"#, "version", "unsupported config version 2"),
            (r#"{"version": 1}"#, "(top level)", "missing field `datasets`"),
            (
                r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/persist"}, "extra": 1}"#,
                "extra",
                "unknown field `extra`",
            ),
            (
                r#"{"version": 1, "datasets": {"parentDataset": "tank//persist", "parentMount": "/persist"}}"#,
                "datasets.parentDataset",
                "empty component",
            ),
            (
                r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "persist"}}"#,
                "datasets.parentMount",
                "not an absolute path",
            ),
            (
                r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/persist", "services": {"a;b": {}}}}"#,
                "datasets.services.a;b",
                "not a valid dataset name component",
            ),
            (
                r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/persist", "services": {"a/b": {}}}}"#,
                "datasets.services.a/b",
                "'/'",
            ),
            (
                r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/persist", "services": {"a\nb": {}}}}"#,
                "datasets.services.a\nb",
                "'\\n'",
            ),
        ];
        for (text, path, needle) in cases {
            assert_refused_at(text, path, needle);
        }
    }

    #[test]
    fn a_key_given_twice_is_an_error_naming_it_at_any_level() {
        let cases: &[(&str, &str)] = &[
            (r#"{"version": 1, "version": 1, "datasets": {}}"#, "version"),
            (
                r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentDataset": "evil/x", "parentMount": "/p"}}"#,
                "datasets.parentDataset",
            ),
            (&config_with_service(r#"{"mode": "0700", "mode": "0777"}"#), "datasets.services.sonarr.mode"),
            (
                &config_with_service(r#"{"properties": {"a:b": "1", "a:b": "2"}}"#),
                "datasets.services.sonarr.properties.a:b",
            ),
            (
                &config_with_service(
                    r#"{"preseed": {"sources": ["snapshot"], "verifyCommand": ["x"], "ignore": [], "replica": {"dataset": "b/x", "dataset": "c/y"}}}"#,
                ),
                "datasets.services.sonarr.preseed.replica.dataset",
            ),
        ];
        for (text, path) in cases {
            let errors = parse(text).expect_err(text).0;
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].path, *path, "{errors:?}");
            assert!(errors[0].message.contains("duplicate key"), "{errors:?}");
        }
        // Equal keys in different objects are fine.
        let text = r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/p",
            "services": {"a": {"mode": "0700"}, "b": {"mode": "0700"}}}}"#;
        assert!(parse(text).is_ok());
    }

    #[test]
    fn config_is_a_leaf_of_the_core() {
        // Read at compile time: the core does no I/O, and a new `use` breaks this test, not a cycle.
        let sources = [
            ("mod.rs", include_str!("mod.rs")),
            ("error.rs", include_str!("error.rs")),
            ("datasets.rs", include_str!("datasets.rs")),
            ("preseed.rs", include_str!("preseed.rs")),
            ("barman.rs", include_str!("barman.rs")),
            ("monitoring.rs", include_str!("monitoring.rs")),
            ("notifications.rs", include_str!("notifications.rs")),
        ];
        let allowed = ["config", "zfs::namecheck", "zfs::props", "names", "notify::template"];
        let marker = ["crate", "::"].concat();
        for (file, text) in sources {
            for (at, _) in text.match_indices(&marker) {
                let path: String = text[at + marker.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':'))
                    .collect();
                assert!(
                    allowed.iter().any(|a| path == *a || path.starts_with(&format!("{a}::"))),
                    "config/{file} uses {marker}{path}; config may use only {allowed:?}"
                );
            }
        }
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let errors =
            parse(&config_with_service(r#"{"recordsize": "15K", "compression": "x", "mode": "9"}"#)).unwrap_err();
        assert_eq!(errors.0.len(), 3, "{errors}");
    }
}
