//! The JSON contract with the NixOS module (`docs/config-format.md`): parsing, validation, and the
//! dataset specs everything downstream works from. Nothing below `plan` reads the JSON again.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::Context as _;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

pub mod notifications;

use crate::zfs::namecheck::{MAX_DATASET_NAME, check_component, check_dataset_name};
use crate::zfs::props;

/// The config version this binary reads.
pub const CONFIG_VERSION: u64 = 1;

/// The longest timeout a config or the command line may ask for: 7 days, in seconds. Far beyond any
/// restore that should be waited for, and far below what a deadline (`Instant + Duration`) can hold.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// The default config path, where the NixOS module links it.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/persistctl/config.json";

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Always 1 for this format.
    pub version: u64,
    /// The `modules.storage.datasets` part.
    pub datasets: DatasetsConfig,
    /// The `modules.notifications` part (`docs/notifications.md`); absent or null: not configured.
    pub notifications: Option<notifications::NotificationsConfig>,
    /// What `persistctl status` checks and its thresholds (`modules.replication.zfs.monitoring`).
    pub monitoring: Option<MonitoringConfig>,
}

/// `modules.storage.datasets`.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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

/// A place `preseed` may restore from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The dataset's own newest snapshot that holds data.
    Snapshot,
    /// The syncoid target's newest snapshot.
    Replica,
    /// The newest restic snapshot for the service.
    Restic,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Snapshot => "snapshot",
            Self::Replica => "replica",
            Self::Restic => "restic",
        })
    }
}

fn default_sources() -> Vec<SourceKind> {
    vec![SourceKind::Snapshot, SourceKind::Replica, SourceKind::Restic]
}
const fn default_timeout() -> u64 {
    3600
}
fn default_ignore() -> Vec<String> {
    vec!["lost+found".to_string()]
}

/// `services.<name>.preseed`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreseedConfig {
    /// Whether `preseed` restores this service at all.
    #[serde(default)]
    pub enable: bool,
    /// Sources, tried in order.
    #[serde(default = "default_sources")]
    pub sources: Vec<SourceKind>,
    /// Start empty when every source says "no backup exists".
    #[serde(default)]
    pub allow_empty_bootstrap: bool,
    /// Overall timeout, seconds.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Per-source timeout, seconds (default: the overall one).
    pub source_timeout: Option<u64>,
    /// argv run with the staged data's path appended; non-zero rejects the source.
    pub verify_command: Option<Vec<String>>,
    /// Top-level entries that do not count as data.
    #[serde(default = "default_ignore")]
    pub ignore: Vec<String>,
    /// Paths (relative to the dataset root) whose existence means "the data is here", e.g.
    /// `sonarr.db`. Empty: any entry not in `ignore` counts. Set, a dataset holding other entries but no
    /// marker (a directory a tmpfiles rule or `StateDirectory` pre-created) is refused, never skipped.
    #[serde(default)]
    pub data_markers: Vec<String>,
    /// The syncoid target of this dataset.
    pub replica: Option<ReplicaConfig>,
    /// The restic repository holding this service's backups.
    pub restic: Option<ResticConfig>,
}

/// `preseed.replica`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplicaConfig {
    /// The replica dataset.
    pub dataset: String,
    /// `user@host` for a remote replica; absent for a local pool.
    pub host: Option<String>,
    /// SSH key for a remote replica.
    pub ssh_key: Option<String>,
}

/// `preseed.restic`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResticConfig {
    /// Repository location.
    pub repository: Option<String>,
    /// File holding the repository location.
    pub repository_file: Option<String>,
    /// File holding the password.
    pub password_file: String,
    /// `KEY=value` lines for the restic process (S3 credentials).
    pub environment_file: Option<String>,
    /// Snapshot tags (default: the service name).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Path inside the snapshot holding the data (default: the dataset's mountpoint).
    pub path: Option<String>,
    /// `--host` filter.
    pub host: Option<String>,
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

struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError { path: path.into(), message: message.into() });
    }
}

fn check_absolute_path(errors: &mut Errors, path: &str, value: &str) {
    if !value.starts_with('/') {
        errors.push(path, format!("{value:?} is not an absolute path"));
    } else if value.chars().any(char::is_control) {
        errors.push(path, format!("{value:?} contains a control character"));
    } else if value.split('/').any(|c| c == ".." || c == ".") {
        errors.push(path, format!("{value:?} contains a '.' or '..' component"));
    } else if let Err(why) = crate::zfs::namecheck::check_path_lengths(value) {
        errors.push(path, why);
    }
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

fn validate(config: &Config) -> Result<Vec<DatasetSpec>, ConfigErrors> {
    let mut errors = Errors(Vec::new());
    let d = &config.datasets;
    if let Err(why) = check_dataset_name(&d.parent_dataset) {
        errors.push("datasets.parentDataset", why);
    }
    check_absolute_path(&mut errors, "datasets.parentMount", &d.parent_mount);
    let mut specs = Vec::new();
    let mut mountpoints: BTreeMap<String, String> = BTreeMap::new();
    for (name, service) in &d.services {
        let at = format!("datasets.services.{name}");
        if let Err(why) = check_component(name) {
            errors.push(&at, format!("service name {name:?} is not a valid dataset name component: {why}"));
            continue;
        }
        let spec = validate_service(&mut errors, &at, name, service, d);
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
    if let Some(monitoring) = &config.monitoring {
        validate_monitoring(&mut errors, monitoring, d);
    }
    if let Some(notifications) = &config.notifications {
        errors.0.extend(notifications::validate(notifications));
    }
    if errors.0.is_empty() { Ok(specs) } else { Err(ConfigErrors(errors.0)) }
}

fn validate_service(
    errors: &mut Errors,
    at: &str,
    name: &str,
    service: &ServiceConfig,
    parent: &DatasetsConfig,
) -> Option<DatasetSpec> {
    let before = errors.0.len();
    let mut properties = Vec::new();
    let mut add = |errors: &mut Errors, path: String, prop: &str, value: &str| match props::validate(prop, value) {
        Ok(canonical) => properties.push(WantedProperty { name: prop.into(), value: value.into(), canonical }),
        Err(why) => errors.push(path, why),
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
            check_absolute_path(errors, &format!("{at}.mountpoint"), mp);
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
    let mode =
        service.mode.as_deref().and_then(|m| parse_mode(m).map_err(|why| errors.push(format!("{at}.mode"), why)).ok());
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
    if errors.0.len() > before {
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

fn validate_preseed(errors: &mut Errors, at: &str, preseed: &PreseedConfig) {
    let unique: BTreeSet<_> = preseed.sources.iter().collect();
    if unique.len() != preseed.sources.len() {
        errors.push(format!("{at}.sources"), "lists a source twice");
    }
    if preseed.enable && preseed.sources.is_empty() && !preseed.allow_empty_bootstrap {
        errors.push(format!("{at}.sources"), "is empty and allowEmptyBootstrap is false: nothing could ever start");
    }
    for (field, value) in [("timeout", Some(preseed.timeout)), ("sourceTimeout", preseed.source_timeout)] {
        if let Some(secs) = value.filter(|s| !(1..=MAX_TIMEOUT_SECS).contains(s)) {
            errors.push(format!("{at}.{field}"), format!("{secs} is not 1 … {MAX_TIMEOUT_SECS} seconds (7 days)"));
        }
    }
    if let Some(cmd) = &preseed.verify_command {
        if cmd.is_empty() || cmd[0].is_empty() {
            errors.push(format!("{at}.verifyCommand"), "needs a program (a list: program, then arguments)");
        }
    }
    for entry in &preseed.ignore {
        if entry.is_empty() || entry.contains('/') || entry == "." || entry == ".." {
            errors.push(format!("{at}.ignore"), format!("{entry:?} is not a plain file name"));
        }
    }
    for marker in &preseed.data_markers {
        let bad_part = marker.split('/').any(|part| part.is_empty() || part == "." || part == "..");
        if marker.starts_with('/') || bad_part || marker.chars().any(char::is_control) {
            errors.push(
                format!("{at}.dataMarkers"),
                format!("{marker:?} must be a relative path inside the dataset (no empty, . or .. parts)"),
            );
        }
    }
    let uses = |kind| preseed.sources.contains(&kind);
    match (&preseed.replica, uses(SourceKind::Replica) && preseed.enable) {
        (Some(replica), _) => {
            if let Err(why) = check_dataset_name(&replica.dataset) {
                errors.push(format!("{at}.replica.dataset"), why);
            }
            if let Some(key) = &replica.ssh_key {
                check_absolute_path(errors, &format!("{at}.replica.sshKey"), key);
            }
            if let Some(host) = &replica.host {
                if host.is_empty() || host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    errors.push(format!("{at}.replica.host"), format!("{host:?} is not a host or user@host"));
                }
            }
        }
        (None, true) => errors.push(format!("{at}.replica"), "is required because sources lists \"replica\""),
        (None, false) => {}
    }
    match (&preseed.restic, uses(SourceKind::Restic) && preseed.enable) {
        (Some(restic), _) => {
            let r = format!("{at}.restic");
            match (&restic.repository, &restic.repository_file) {
                (None, None) => errors.push(format!("{r}.repository"), "set repository or repositoryFile"),
                (Some(_), Some(_)) => {
                    errors.push(format!("{r}.repository"), "set repository or repositoryFile, not both");
                }
                (Some(repo), None) if repo.is_empty() => errors.push(format!("{r}.repository"), "is empty"),
                (_, Some(file)) => check_absolute_path(errors, &format!("{r}.repositoryFile"), file),
                (Some(_), None) => {}
            }
            check_absolute_path(errors, &format!("{r}.passwordFile"), &restic.password_file);
            if let Some(env) = &restic.environment_file {
                check_absolute_path(errors, &format!("{r}.environmentFile"), env);
            }
            if let Some(path) = &restic.path {
                check_absolute_path(errors, &format!("{r}.path"), path);
            }
            if restic.tags.iter().any(|t| t.is_empty() || t.contains(',')) {
                errors.push(format!("{r}.tags"), "tags cannot be empty or contain ','");
            }
        }
        (None, true) => errors.push(format!("{at}.restic"), "is required because sources lists \"restic\""),
        (None, false) => {}
    }
}

/// Warning and critical limits of one check; `null` disables that level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Above this: WARNING.
    pub warning: Option<u64>,
    /// Above this: CRITICAL.
    pub critical: Option<u64>,
}

const HOUR: u64 = 3600;

fn default_replication_lag() -> Limits {
    Limits { warning: Some(12 * HOUR), critical: Some(24 * HOUR) }
}
fn default_backup_age() -> Limits {
    Limits { warning: Some(24 * HOUR), critical: Some(48 * HOUR) }
}
fn default_snapshot_age() -> Limits {
    Limits { warning: Some(48 * HOUR), critical: None }
}
fn default_capacity() -> Limits {
    Limits { warning: Some(80), critical: Some(90) }
}

/// `monitoring.thresholds`: ages in seconds, capacity in percent. The defaults are the seed's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Thresholds {
    /// Age of the newest snapshot the replica shares with the dataset (default 12 h / 24 h).
    #[serde(default = "default_replication_lag")]
    pub replication_lag: Limits,
    /// Age of the newest restic snapshot (default 24 h / 48 h).
    #[serde(default = "default_backup_age")]
    pub backup_age: Limits,
    /// Age of the newest snapshot (default 48 h / none).
    #[serde(default = "default_snapshot_age")]
    pub snapshot_age: Limits,
    /// `used / (used + available)` in percent (default 80 / 90).
    #[serde(default = "default_capacity")]
    pub capacity_percent: Limits,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            replication_lag: default_replication_lag(),
            backup_age: default_backup_age(),
            snapshot_age: default_snapshot_age(),
            capacity_percent: default_capacity(),
        }
    }
}

/// `monitoring`: what `persistctl status` checks beyond the datasets themselves.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MonitoringConfig {
    /// Limits; absent ones take the defaults.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Service → its syncoid target, for the replication lag (else `preseed.replica` is used).
    #[serde(default)]
    pub replication: BTreeMap<String, ReplicaConfig>,
    /// Service → the restic repository backing it up, for the backup age (else `preseed.restic`).
    #[serde(default)]
    pub backups: BTreeMap<String, ResticConfig>,
    /// The JSON lines `persistctl preseed` appends (default `/var/lib/persistctl/preseed.json`).
    pub preseed_status_file: Option<String>,
}

impl Config {
    /// The thresholds in force (the defaults when there is no `monitoring`).
    #[must_use]
    pub fn thresholds(&self) -> Thresholds {
        self.monitoring.as_ref().map(|m| m.thresholds).unwrap_or_default()
    }

    /// The replica `status` compares a service's dataset with: `monitoring.replication`, else `preseed.replica`.
    #[must_use]
    pub fn replica_of(&self, service: &str) -> Option<&ReplicaConfig> {
        self.monitoring.as_ref().and_then(|m| m.replication.get(service)).or_else(|| {
            self.datasets.services.get(service).and_then(|s| s.preseed.as_ref()).and_then(|p| p.replica.as_ref())
        })
    }

    /// The restic repository backing up a service: `monitoring.backups`, else `preseed.restic`.
    #[must_use]
    pub fn backup_of(&self, service: &str) -> Option<&ResticConfig> {
        self.monitoring.as_ref().and_then(|m| m.backups.get(service)).or_else(|| {
            self.datasets.services.get(service).and_then(|s| s.preseed.as_ref()).and_then(|p| p.restic.as_ref())
        })
    }
}

fn validate_monitoring(errors: &mut Errors, m: &MonitoringConfig, d: &DatasetsConfig) {
    let t = &m.thresholds;
    for (name, limits) in [
        ("replicationLag", t.replication_lag),
        ("backupAge", t.backup_age),
        ("snapshotAge", t.snapshot_age),
        ("capacityPercent", t.capacity_percent),
    ] {
        if let (Some(w), Some(c)) = (limits.warning, limits.critical) {
            if w > c {
                errors.push(format!("monitoring.thresholds.{name}"), format!("warning ({w}) is above critical ({c})"));
            }
        }
    }
    if let Some(pct) = t.capacity_percent.warning.into_iter().chain(t.capacity_percent.critical).find(|p| *p > 100) {
        errors.push("monitoring.thresholds.capacityPercent", format!("{pct} is not a percentage (0..100)"));
    }
    for (service, replica) in &m.replication {
        let at = format!("monitoring.replication.{service}");
        if !d.services.contains_key(service) {
            errors.push(&at, format!("{service:?} is not a service in datasets.services"));
        }
        if let Err(why) = check_dataset_name(&replica.dataset) {
            errors.push(format!("{at}.dataset"), why);
        }
        if let Some(key) = &replica.ssh_key {
            check_absolute_path(errors, &format!("{at}.sshKey"), key);
        }
        if let Some(host) = &replica.host {
            if host.is_empty() || host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
                errors.push(format!("{at}.host"), format!("{host:?} is not a host or user@host"));
            }
        }
    }
    for (service, restic) in &m.backups {
        let at = format!("monitoring.backups.{service}");
        if !d.services.contains_key(service) {
            errors.push(&at, format!("{service:?} is not a service in datasets.services"));
        }
        match (&restic.repository, &restic.repository_file) {
            (None, None) => errors.push(format!("{at}.repository"), "set repository or repositoryFile"),
            (Some(_), Some(_)) => errors.push(format!("{at}.repository"), "set repository or repositoryFile, not both"),
            (Some(repo), None) if repo.is_empty() => errors.push(format!("{at}.repository"), "is empty"),
            (_, Some(file)) => check_absolute_path(errors, &format!("{at}.repositoryFile"), file),
            (Some(_), None) => {}
        }
        check_absolute_path(errors, &format!("{at}.passwordFile"), &restic.password_file);
        if let Some(env) = &restic.environment_file {
            check_absolute_path(errors, &format!("{at}.environmentFile"), env);
        }
        if restic.tags.iter().any(|t| t.is_empty() || t.contains(',')) {
            errors.push(format!("{at}.tags"), "tags cannot be empty or contain ','");
        }
    }
    if let Some(file) = &m.preseed_status_file {
        check_absolute_path(errors, "monitoring.preseedStatusFile", file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with_service(service: &str) -> String {
        format!(
            r#"{{"version": 1, "datasets": {{"parentDataset": "tank/persist", "parentMount": "/persist",
               "services": {{"sonarr": {service}}}}}}}"#
        )
    }

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
    #[allow(clippy::too_many_lines)] // one table of cases
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
            (r#"{"preseed": {"enable": true}}"#, "datasets.services.sonarr.preseed.replica", "required"),
            (
                r#"{"preseed": {"enable": true, "sources": ["snapshot"], "dataMarkers": ["../etc/passwd"]}}"#,
                "datasets.services.sonarr.preseed.dataMarkers",
                "relative path inside the dataset",
            ),
            (
                r#"{"preseed": {"enable": true, "sources": ["snapshot"], "dataMarkers": ["/abs"]}}"#,
                "datasets.services.sonarr.preseed.dataMarkers",
                "relative path",
            ),
            (
                r#"{"preseed": {"enable": true, "sources": ["restic"], "restic": {"passwordFile": "/p"}}}"#,
                "datasets.services.sonarr.preseed.restic.repository",
                "set repository or repositoryFile",
            ),
            (
                r#"{"preseed": {"enable": true, "sources": ["tape"]}}"#,
                "datasets.services.sonarr.preseed.sources[0]",
                "unknown variant `tape`",
            ),
            (
                r#"{"preseed": {"enable": true, "sources": ["snapshot", "snapshot"]}}"#,
                "datasets.services.sonarr.preseed.sources",
                "twice",
            ),
            (
                r#"{"preseed": {"timeout": 9223372036854775808, "sources": ["snapshot"]}}"#,
                "datasets.services.sonarr.preseed.timeout",
                "not 1 … 604800 seconds",
            ),
            (
                r#"{"preseed": {"sourceTimeout": 604801, "sources": ["snapshot"]}}"#,
                "datasets.services.sonarr.preseed.sourceTimeout",
                "not 1 … 604800 seconds",
            ),
            (
                r#"{"preseed": {"timeout": 0, "sources": ["snapshot"]}}"#,
                "datasets.services.sonarr.preseed.timeout",
                "not 1 … 604800 seconds",
            ),
            (
                r#"{"preseed": {"enable": true, "sources": []}}"#,
                "datasets.services.sonarr.preseed.sources",
                "nothing could ever start",
            ),
        ];
        for (service, path, needle) in cases {
            let errors = parse(&config_with_service(service)).expect_err(service).0;
            assert!(
                errors.iter().any(|e| e.path == *path && e.message.contains(needle)),
                "{service}: wanted {path}: ...{needle}..., got {errors:?}"
            );
        }
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
            let errors = parse(text).expect_err(text).0;
            assert!(
                errors.iter().any(|e| e.path == *path && e.message.contains(needle)),
                "{text}: wanted {path}: ...{needle}..., got {errors:?}"
            );
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
            let errors = parse(text).expect_err(text).0;
            assert!(
                errors.iter().any(|e| e.path == *path && e.message.contains(needle)),
                "{}: wanted {path}: ...{needle}..., got {errors:?}",
                &text[..text.len().min(160)]
            );
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
    fn all_errors_are_reported_at_once() {
        let errors =
            parse(&config_with_service(r#"{"recordsize": "15K", "compression": "x", "mode": "9"}"#)).unwrap_err();
        assert_eq!(errors.0.len(), 3, "{errors}");
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

    #[test]
    fn monitoring_defaults_are_the_seeds_thresholds() {
        let text = r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/persist",
            "services": {"a": {}}}, "monitoring": {"thresholds": {"capacityPercent": {"warning": 70, "critical": null}}}}"#;
        let v = parse(text).unwrap();
        let t = v.config.thresholds();
        assert_eq!(t.replication_lag, Limits { warning: Some(12 * 3600), critical: Some(24 * 3600) });
        assert_eq!(t.backup_age, Limits { warning: Some(24 * 3600), critical: Some(48 * 3600) });
        assert_eq!(t.snapshot_age, Limits { warning: Some(48 * 3600), critical: None });
        assert_eq!(t.capacity_percent, Limits { warning: Some(70), critical: None });
        let without = parse(&config_with_service("{}")).unwrap();
        assert_eq!(without.config.thresholds(), Thresholds::default());
    }

    #[test]
    fn monitoring_targets_fall_back_to_the_preseed_ones() {
        let text = r#"{"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/persist",
            "services": {"a": {"preseed": {"replica": {"dataset": "backup/a"}}}, "b": {}}},
            "monitoring": {"replication": {"b": {"dataset": "backup/b", "host": "root@nas"}},
                           "backups": {"b": {"repository": "/srv/restic", "passwordFile": "/p"}}}}"#;
        let v = parse(text).unwrap();
        assert_eq!(v.config.replica_of("a").unwrap().dataset, "backup/a");
        assert_eq!(v.config.replica_of("b").unwrap().host.as_deref(), Some("root@nas"));
        assert!(v.config.backup_of("a").is_none());
        assert_eq!(v.config.backup_of("b").unwrap().repository.as_deref(), Some("/srv/restic"));
    }

    #[test]
    fn bad_monitoring_values_name_their_field() {
        let base = |m: &str| {
            format!(
                r#"{{"version": 1, "datasets": {{"parentDataset": "tank/persist", "parentMount": "/persist",
                   "services": {{"a": {{}}}}}}, "monitoring": {m}}}"#
            )
        };
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{"thresholds": {"backupAge": {"warning": 10, "critical": 5}}}"#,
                "monitoring.thresholds.backupAge",
                "above critical",
            ),
            (
                r#"{"thresholds": {"capacityPercent": {"warning": 80, "critical": 120}}}"#,
                "monitoring.thresholds.capacityPercent",
                "not a percentage",
            ),
            (r#"{"thresholds": {"lag": {}}}"#, "monitoring.thresholds.lag", "unknown field"),
            (r#"{"replication": {"zzz": {"dataset": "backup/zzz"}}}"#, "monitoring.replication.zzz", "not a service"),
            (
                r#"{"replication": {"a": {"dataset": "backup//a"}}}"#,
                "monitoring.replication.a.dataset",
                "empty component",
            ),
            (r#"{"backups": {"a": {"passwordFile": "/p"}}}"#, "monitoring.backups.a.repository", "set repository"),
            (r#"{"preseedStatusFile": "rel"}"#, "monitoring.preseedStatusFile", "not an absolute path"),
        ];
        for (m, path, needle) in cases {
            let errors = parse(&base(m)).expect_err(m).0;
            assert!(
                errors.iter().any(|e| e.path == *path && e.message.contains(needle)),
                "{m}: wanted {path}: ...{needle}..., got {errors:?}"
            );
        }
    }
}
