//! `datasets` (`modules.storage.datasets`): the parent, the services and their properties,
//! validated into the [`DatasetSpec`]s the planner works from.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::Errors;
use super::preseed::{PreseedConfig, validate_preseed};
use crate::zfs::namecheck::{MAX_DATASET_NAME, check_component, check_dataset_name};
use crate::zfs::props;

/// `modules.storage.datasets`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatasetsConfig {
    /// Every service dataset is `<parentDataset>/<service>`.
    pub parent_dataset: String,
    /// Every service dataset mounts at `<parentMount>/<service>` unless overridden.
    pub parent_mount: String,
    /// Create a missing parent dataset (off: a missing parent is an error).
    #[serde(default)]
    pub create_parent: bool,
    /// Service name → its dataset.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
}

/// `modules.storage.datasets.services.<name>`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceConfig {
    /// Shorthand for `properties.recordsize`.
    pub recordsize: Option<String>,
    /// Shorthand for `properties.compression`.
    pub compression: Option<String>,
    /// Other native and user properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Override of `<parentMount>/<name>`.
    pub mountpoint: Option<String>,
    /// Owner of the dataset's root directory (name or numeric id).
    pub owner: Option<String>,
    /// Group of the dataset's root directory (name or numeric id).
    pub group: Option<String>,
    /// Octal mode of the dataset's root directory.
    pub mode: Option<String>,
    /// Restore-before-start settings.
    pub preseed: Option<PreseedConfig>,
}

/// One wanted property of a dataset, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WantedProperty {
    /// Property name.
    pub name: String,
    /// The value as the user wrote it: what `zfs set` is given, so 2.1 and 2.3 both accept it.
    pub value: String,
    /// The form `zfs get -p` reads back, for comparing.
    pub canonical: String,
}

/// Owner, group and mode wanted for a dataset's root directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OwnershipSpec {
    /// User name or numeric id.
    pub owner: Option<String>,
    /// Group name or numeric id.
    pub group: Option<String>,
    /// Permission bits.
    pub mode: Option<u32>,
}

impl OwnershipSpec {
    /// Whether anything is asked for.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.owner.is_none() && self.group.is_none() && self.mode.is_none()
    }
}

/// Everything needed to plan one service's dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetSpec {
    /// The service name (the key in `services`).
    pub service: String,
    /// `<parentDataset>/<service>`.
    pub dataset: String,
    /// Where it must be mounted.
    pub mountpoint: String,
    /// Properties in a stable order, mountpoint included.
    pub properties: Vec<WantedProperty>,
    /// Root directory owner/group/mode.
    pub ownership: OwnershipSpec,
}

/// Parses an octal mode such as `0750` or `750`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits_ok = (3..=4).contains(&text.len()) && text.chars().all(|c| ('0'..='7').contains(&c));
    if !digits_ok {
        return Err(format!("{text:?} is not an octal mode such as \"0750\""));
    }
    u32::from_str_radix(text, 8).map_err(|e| format!("{text:?}: {e}"))
}

fn check_account(errors: &mut Errors, path: &str, value: &str) {
    let numeric = !value.is_empty() && value.chars().all(|c| c.is_ascii_digit());
    let name_ok = value.len() <= 32
        && value.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
        || value.strip_suffix('$').is_some_and(|v| !v.is_empty() && !v.contains('$'));
    if !(numeric || name_ok) {
        errors.push(path, format!("{value:?} is not a user/group name or numeric id"));
    }
}

/// Checks the section and derives one spec per valid service, sorted by service name.
pub(super) fn validate_datasets(errors: &mut Errors, d: &DatasetsConfig) -> Vec<DatasetSpec> {
    errors.check("datasets.parentDataset", check_dataset_name(&d.parent_dataset));
    errors.absolute_path("datasets.parentMount", &d.parent_mount);
    let mut specs = Vec::new();
    let mut mountpoints: BTreeMap<String, String> = BTreeMap::new();
    for (name, service) in &d.services {
        let at = format!("datasets.services.{name}");
        if let Err(why) = check_component(name) {
            errors.push(&at, format!("service name {name:?} is not a valid dataset name component: {why}"));
            continue;
        }
        let spec = validate_service(errors, &at, name, service, d);
        if let Some(spec) = spec {
            if let Some(other) = mountpoints.insert(spec.mountpoint.clone(), name.clone()) {
                errors.push(
                    format!("{at}.mountpoint"),
                    format!("{} is also the mountpoint of service {other:?}", spec.mountpoint),
                );
            }
            specs.push(spec);
        }
    }
    specs
}

fn validate_service(
    errors: &mut Errors,
    at: &str,
    name: &str,
    service: &ServiceConfig,
    parent: &DatasetsConfig,
) -> Option<DatasetSpec> {
    let before = errors.count();
    let mut properties = Vec::new();
    let mut add = |errors: &mut Errors, path: String, prop: &str, value: &str| {
        if let Some(canonical) = errors.check(path, props::validate(prop, value)) {
            properties.push(WantedProperty { name: prop.into(), value: value.into(), canonical });
        }
    };
    if let Some(value) = &service.recordsize {
        add(errors, format!("{at}.recordsize"), "recordsize", value);
    }
    if let Some(value) = &service.compression {
        add(errors, format!("{at}.compression"), "compression", value);
    }
    for (prop, value) in &service.properties {
        let path = format!("{at}.properties.\"{prop}\"");
        match prop.as_str() {
            "recordsize" | "compression"
                if service.recordsize.is_some() && prop == "recordsize"
                    || service.compression.is_some() && prop == "compression" =>
            {
                errors.push(path, format!("set either {at}.{prop} or properties.{prop}, not both"));
            }
            "mountpoint" => errors.push(path, format!("use {at}.mountpoint instead")),
            "volblocksize" => errors.push(path, "volblocksize is for volumes; service datasets are filesystems"),
            _ => add(errors, path, prop, value),
        }
    }
    let mountpoint = match &service.mountpoint {
        Some(mp) => {
            errors.absolute_path(format!("{at}.mountpoint"), mp);
            mp.clone()
        }
        None => format!("{}/{name}", parent.parent_mount.trim_end_matches('/')),
    };
    if !mountpoint.starts_with('/') || mountpoint.chars().any(char::is_control) {
        return None;
    }
    let canonical_mountpoint = props::canonical_live("mountpoint", &mountpoint);
    properties.push(WantedProperty {
        name: "mountpoint".into(),
        value: mountpoint.clone(),
        canonical: canonical_mountpoint.clone(),
    });
    for (field, value) in [("owner", &service.owner), ("group", &service.group)] {
        if let Some(value) = value {
            check_account(errors, &format!("{at}.{field}"), value);
        }
    }
    let mode = service.mode.as_deref().and_then(|m| errors.check(format!("{at}.mode"), parse_mode(m)));
    if let Some(preseed) = &service.preseed {
        validate_preseed(errors, &format!("{at}.preseed"), preseed);
    }
    check_encryption_properties(errors, at, service);
    let dataset = format!("{}/{name}", parent.parent_dataset);
    for (what, derived) in derived_datasets(&dataset, service) {
        if derived.len() > MAX_DATASET_NAME {
            errors.push(
                at,
                format!(
                    "the {what} {derived:?} would be {} bytes long; ZFS allows at most {MAX_DATASET_NAME} (shorten \
                     datasets.parentDataset or the service name)",
                    derived.len()
                ),
            );
        }
    }
    if errors.count() > before {
        return None;
    }
    Some(DatasetSpec {
        service: name.to_string(),
        dataset,
        mountpoint: canonical_mountpoint,
        properties,
        ownership: OwnershipSpec { owner: service.owner.clone(), group: service.group.clone(), mode },
    })
}

/// Every dataset name persistctl derives for a service: its dataset, and with a replica source the
/// staging dataset a replica is received into and the name an empty target is moved aside to.
fn derived_datasets(dataset: &str, service: &ServiceConfig) -> Vec<(&'static str, String)> {
    let mut names = vec![("dataset name", dataset.to_string())];
    if service.preseed.as_ref().is_some_and(|p| p.replica.is_some()) {
        names.push(("replica staging dataset", crate::names::staging_dataset(dataset)));
        // The stamp has a fixed width (`20240501T120000Z`), so any time gives the longest name.
        names.push(("moved-aside dataset", crate::names::aside_dataset(dataset, "20240501T120000Z")));
    }
    names
}

/// `keylocation` only means something on an encryption root: set without `encryption`, `zfs create`
/// fails at apply time; refused here instead.
fn check_encryption_properties(errors: &mut Errors, at: &str, service: &ServiceConfig) {
    let encrypted = service.properties.get("encryption").is_some_and(|v| v != "off");
    if service.properties.contains_key("keylocation") && !encrypted {
        errors.push(
            format!("{at}.properties.\"keylocation\""),
            "keylocation needs properties.encryption (a value other than \"off\") on the same dataset",
        );
    }
    // OpenZFS refuses fewer than 100000 PBKDF2 iterations (MIN_PBKDF2_ITERATIONS).
    if let Some(iters) = service.properties.get("pbkdf2iters") {
        if !iters.parse::<u64>().is_ok_and(|n| n >= 100_000) {
            errors.push(
                format!("{at}.properties.\"pbkdf2iters\""),
                format!("{iters:?} is not a number of at least 100000"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::config::test_support::{assert_refused_at, config_with_service};

    #[test]
    fn the_seed_example_parses_into_specs() {
        let v = parse(&config_with_service(
            r#"{"recordsize": "16K", "compression": "lz4", "properties": {"com.sun:auto-snapshot": "true"},
                "owner": "sonarr", "group": "sonarr", "mode": "0750"}"#,
        ))
        .unwrap();
        let spec = &v.specs[0];
        assert_eq!(spec.dataset, "tank/persist/sonarr");
        assert_eq!(spec.mountpoint, "/persist/sonarr");
        let props: Vec<(&str, &str, &str)> =
            spec.properties.iter().map(|p| (p.name.as_str(), p.value.as_str(), p.canonical.as_str())).collect();
        assert_eq!(
            props,
            [
                ("recordsize", "16K", "16384"),
                ("compression", "lz4", "lz4"),
                ("com.sun:auto-snapshot", "true", "true"),
                ("mountpoint", "/persist/sonarr", "/persist/sonarr"),
            ]
        );
        assert_eq!(spec.ownership.mode, Some(0o750));
    }

    #[test]
    fn nulls_mean_unset() {
        let v = parse(&config_with_service(
            r#"{"recordsize": null, "compression": null, "mountpoint": null, "owner": null, "group": null, "mode": null, "preseed": null}"#,
        ))
        .unwrap();
        assert_eq!(v.specs[0].properties.len(), 1, "only the mountpoint");
        assert!(v.specs[0].ownership.is_empty());
    }

    #[test]
    fn every_bad_input_names_its_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{"recordsize": "15K"}"#,
                "datasets.services.sonarr.recordsize",
                "not a power of two between 512 and 16M",
            ),
            (r#"{"compression": "snappy"}"#, "datasets.services.sonarr.compression", "not a compression"),
            (r#"{"mode": "rwx"}"#, "datasets.services.sonarr.mode", "not an octal mode"),
            (r#"{"mode": "0999"}"#, "datasets.services.sonarr.mode", "not an octal mode"),
            (r#"{"owner": "Bad User"}"#, "datasets.services.sonarr.owner", "not a user/group name"),
            (r#"{"properties": {"used": "1G"}}"#, "datasets.services.sonarr.properties.\"used\"", "read-only"),
            (
                r#"{"properties": {"autosnap": "true"}}"#,
                "datasets.services.sonarr.properties.\"autosnap\"",
                "user properties need a colon",
            ),
            (
                r#"{"properties": {"mountpoint": "/x"}}"#,
                "datasets.services.sonarr.properties.\"mountpoint\"",
                "use datasets.services.sonarr.mountpoint",
            ),
            (
                r#"{"recordsize": "16K", "properties": {"recordsize": "8K"}}"#,
                "datasets.services.sonarr.properties.\"recordsize\"",
                "not both",
            ),
            (r#"{"mountpoint": "relative"}"#, "datasets.services.sonarr.mountpoint", "not an absolute path"),
            (r#"{"mountpoint": "/persist/../etc"}"#, "datasets.services.sonarr.mountpoint", "'..'"),
            (r#"{"recordsiz": "16K"}"#, "datasets.services.sonarr.recordsiz", "unknown field `recordsiz`"),
            (r#"{"recordsize": 16384}"#, "datasets.services.sonarr.recordsize", "invalid type"),
        ];
        for (service, path, needle) in cases {
            assert_refused_at(&config_with_service(service), path, needle);
        }
    }

    #[test]
    fn what_zfs_or_linux_would_refuse_is_refused_here() {
        let long = "a".repeat(230);
        let cases: Vec<(String, &str, &str)> = vec![
            (config_with_service(r#"{"recordsize": " 16K"}"#), "datasets.services.sonarr.recordsize", "spaces"),
            (
                config_with_service(r#"{"properties": {"quota": "10G "}}"#),
                "datasets.services.sonarr.properties.\"quota\"",
                "spaces",
            ),
            (
                config_with_service(r#"{"properties": {"Com:x": "1"}}"#),
                "datasets.services.sonarr.properties.\"Com:x\"",
                "not allowed",
            ),
            (
                config_with_service(r#"{"properties": {"a+b:x": "1"}}"#),
                "datasets.services.sonarr.properties.\"a+b:x\"",
                "'+'",
            ),
            (
                config_with_service(r#"{"properties": {"keylocation": "file:///k"}}"#),
                "datasets.services.sonarr.properties.\"keylocation\"",
                "needs properties.encryption",
            ),
            (
                config_with_service(r#"{"properties": {"pbkdf2iters": "1000"}}"#),
                "datasets.services.sonarr.properties.\"pbkdf2iters\"",
                "at least 100000",
            ),
            (
                config_with_service(r#"{"mountpoint": "/persist/%LONG%"}"#).replace("%LONG%", &"x".repeat(256)),
                "datasets.services.sonarr.mountpoint",
                "at most 255",
            ),
            (
                config_with_service(r#"{"mountpoint": "/%LONG%"}"#).replace("%LONG%", &"x/".repeat(2100)),
                "datasets.services.sonarr.mountpoint",
                "at most 4095",
            ),
        ];
        let mut cases = cases;
        for (parent, needle) in [
            ("-1", "must start with a letter"),
            ("--help", "must start with a letter"),
            ("mirror/x", "reserved"),
            ("raidz2", "reserved"),
            ("log", "reserved"),
        ] {
            cases.push((
                format!(r#"{{"version": 1, "datasets": {{"parentDataset": "{parent}", "parentMount": "/p"}}}}"#),
                "datasets.parentDataset",
                needle,
            ));
        }
        // 5 + 230 + 1 + 6 = 242 bytes: a valid dataset, but the moved-aside name a replica swap derives
        // from it (+34) is not.
        let with_replica = format!(
            r#"{{"version": 1, "datasets": {{"parentDataset": "tank/{long}", "parentMount": "/p",
               "services": {{"sonarr": {{"preseed": {{"enable": true, "sources": ["replica"], "replica": {{"dataset": "b/s"}}}}}}}}}}}}"#
        );
        cases.push((with_replica, "datasets.services.sonarr", "moved-aside dataset"));
        let too_long = format!(
            r#"{{"version": 1, "datasets": {{"parentDataset": "tank/{long}", "parentMount": "/p", "services": {{"{}": {{}}}}}}}}"#,
            "s".repeat(30)
        );
        let too_long_at = format!("datasets.services.{}", "s".repeat(30));
        cases.push((too_long, &too_long_at, "dataset name"));
        for (text, path, needle) in &cases {
            assert_refused_at(text, path, needle);
        }
        let ok = format!(
            r#"{{"version": 1, "datasets": {{"parentDataset": "tank/{long}", "parentMount": "/p", "services": {{"sonarr": {{}}}}}}}}"#
        );
        assert!(parse(&ok).is_ok(), "without a replica, only the dataset's own name counts");
        let encrypted = config_with_service(
            r#"{"properties": {"encryption": "on", "keyformat": "passphrase", "keylocation": "file:///k"}}"#,
        );
        assert!(parse(&encrypted).is_ok(), "{:?}", parse(&encrypted).err());
    }

    #[test]
    fn two_services_cannot_share_a_mountpoint() {
        let text = r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/persist",
            "services": {"a": {"mountpoint": "/persist/b"}, "b": {}}}}"#;
        let errors = parse(text).unwrap_err();
        assert!(errors.to_string().contains("also the mountpoint of service"), "{errors}");
    }

    #[test]
    fn names_with_spaces_are_valid_dataset_components() {
        let text = r#"{"version": 1, "datasets": {"parentDataset": "tank/my persist", "parentMount": "/my persist",
            "services": {"my app": {"properties": {"note:x": "it's \"quoted\"; $(rm -rf /)"}}}}}"#;
        let v = parse(text).unwrap();
        assert_eq!(v.specs[0].dataset, "tank/my persist/my app");
        assert_eq!(v.specs[0].mountpoint, "/my persist/my app");
    }

    #[test]
    fn modes_parse_as_octal() {
        assert_eq!(parse_mode("0750"), Ok(0o750));
        assert_eq!(parse_mode("755"), Ok(0o755));
        assert_eq!(parse_mode("1777"), Ok(0o1777));
        assert!(parse_mode("75").is_err());
        assert!(parse_mode("0o750").is_err());
    }
}
