//! The property model: which ZFS filesystem properties exist, which of them may be set, which only at
//! creation, and how a value the user writes compares with the value `zfs get -p` reads back.
//!
//! The comparison forms were checked against real OpenZFS 2.1 and 2.3 (`tests/real_zfs.rs`,
//! `every_allowed_value_reads_back_in_sync`): ZFS answers `gzip` for `gzip-6`, `posix` for `posixacl`
//! (2.2+), bytes for `16K`, `0` for `quota=none`. Comparing the written form with the read form would
//! re-set those properties on every run.

/// How a property may be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyClass {
    /// `zfs set` works at any time.
    Settable,
    /// Only `zfs create -o` can set it; a difference later needs a new dataset.
    CreateOnly,
    /// Computed by ZFS; nobody sets it.
    ReadOnly,
}

/// The values a property accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    /// One of a fixed list of words.
    Words(&'static [&'static str]),
    /// `on` or `off`.
    OnOff,
    /// A power of two between the bounds, in bytes.
    PowerOfTwo { min: u64, max: u64 },
    /// A size in bytes, or `none` (read back as 0).
    SizeOrNone,
    /// `0` or a power of two up to 16M (`special_small_blocks`).
    SmallBlocks,
    /// `lz4`, `gzip-N`, `zstd-N`, `zstd-fast-N`, ...
    Compression,
    /// `legacy`, `none` or an absolute path.
    Mountpoint,
    /// 1, 2 or 3.
    Copies,
    /// A positive integer.
    Count,
    /// Anything without control characters (e.g. `keylocation`, `context`).
    Text,
}

/// One known native property.
#[derive(Debug, Clone, Copy)]
struct PropertyDef {
    name: &'static str,
    class: PropertyClass,
    domain: Domain,
}

const ON_OFF: &[&str] = &["on", "off"];
const CHECKSUMS: &[&str] =
    &["on", "off", "fletcher2", "fletcher4", "sha256", "noparity", "sha512", "skein", "edonr", "blake3"];

const fn settable(name: &'static str, domain: Domain) -> PropertyDef {
    PropertyDef { name, class: PropertyClass::Settable, domain }
}
const fn create_only(name: &'static str, domain: Domain) -> PropertyDef {
    PropertyDef { name, class: PropertyClass::CreateOnly, domain }
}
const fn read_only(name: &'static str) -> PropertyDef {
    PropertyDef { name, class: PropertyClass::ReadOnly, domain: Domain::Text }
}

const K: u64 = 1024;
const M: u64 = 1024 * 1024;

/// Every filesystem property persistctl knows, with its class and domain.
const PROPERTIES: &[PropertyDef] = &[
    settable("recordsize", Domain::PowerOfTwo { min: 512, max: 16 * M }),
    settable("compression", Domain::Compression),
    settable("mountpoint", Domain::Mountpoint),
    settable("canmount", Domain::Words(&["on", "off", "noauto"])),
    settable("atime", Domain::OnOff),
    settable("relatime", Domain::OnOff),
    settable("xattr", Domain::Words(&["on", "off", "sa", "dir"])),
    settable("acltype", Domain::Words(&["off", "noacl", "posix", "posixacl", "nfsv4"])),
    settable("aclinherit", Domain::Words(&["discard", "noallow", "restricted", "passthrough", "passthrough-x"])),
    settable("aclmode", Domain::Words(&["discard", "groupmask", "passthrough", "restricted"])),
    settable("logbias", Domain::Words(&["latency", "throughput"])),
    settable("sync", Domain::Words(&["standard", "always", "disabled"])),
    settable("quota", Domain::SizeOrNone),
    settable("refquota", Domain::SizeOrNone),
    settable("reservation", Domain::SizeOrNone),
    settable("refreservation", Domain::SizeOrNone),
    settable("special_small_blocks", Domain::SmallBlocks),
    settable("primarycache", Domain::Words(&["all", "none", "metadata"])),
    settable("secondarycache", Domain::Words(&["all", "none", "metadata"])),
    settable("redundant_metadata", Domain::Words(&["all", "most", "some", "none"])),
    settable("dnodesize", Domain::Words(&["legacy", "auto", "1k", "2k", "4k", "8k", "16k"])),
    settable("snapdir", Domain::Words(&["hidden", "visible"])),
    settable("checksum", Domain::Words(CHECKSUMS)),
    settable(
        "dedup",
        Domain::Words(&[
            "on",
            "off",
            "verify",
            "sha256",
            "sha256,verify",
            "sha512",
            "sha512,verify",
            "skein",
            "skein,verify",
            "edonr,verify",
            "blake3",
            "blake3,verify",
        ]),
    ),
    settable("copies", Domain::Copies),
    settable("readonly", Domain::OnOff),
    settable("exec", Domain::OnOff),
    settable("setuid", Domain::OnOff),
    settable("devices", Domain::OnOff),
    settable("nbmand", Domain::OnOff),
    settable("overlay", Domain::OnOff),
    settable("vscan", Domain::OnOff),
    settable("zoned", Domain::OnOff),
    settable("sharenfs", Domain::Text),
    settable("sharesmb", Domain::Text),
    settable("keylocation", Domain::Text),
    settable("context", Domain::Text),
    settable("fscontext", Domain::Text),
    settable("defcontext", Domain::Text),
    settable("rootcontext", Domain::Text),
    settable("filesystem_limit", Domain::Count),
    settable("snapshot_limit", Domain::Count),
    create_only("casesensitivity", Domain::Words(&["sensitive", "insensitive", "mixed"])),
    create_only("normalization", Domain::Words(&["none", "formC", "formD", "formKC", "formKD"])),
    create_only("utf8only", Domain::Words(ON_OFF)),
    create_only(
        "encryption",
        Domain::Words(&[
            "on",
            "off",
            "aes-128-ccm",
            "aes-192-ccm",
            "aes-256-ccm",
            "aes-128-gcm",
            "aes-192-gcm",
            "aes-256-gcm",
        ]),
    ),
    create_only("keyformat", Domain::Words(&["raw", "hex", "passphrase"])),
    create_only("pbkdf2iters", Domain::Count),
    create_only("volblocksize", Domain::PowerOfTwo { min: 512, max: 128 * K }),
    read_only("type"),
    read_only("creation"),
    read_only("used"),
    read_only("available"),
    read_only("avail"),
    read_only("referenced"),
    read_only("refer"),
    read_only("compressratio"),
    read_only("refcompressratio"),
    read_only("mounted"),
    read_only("origin"),
    read_only("guid"),
    read_only("createtxg"),
    read_only("objsetid"),
    read_only("written"),
    read_only("logicalused"),
    read_only("logicalreferenced"),
    read_only("usedbysnapshots"),
    read_only("usedbydataset"),
    read_only("usedbychildren"),
    read_only("usedbyrefreservation"),
    read_only("version"),
    read_only("encryptionroot"),
    read_only("keystatus"),
    read_only("clones"),
    read_only("defer_destroy"),
    read_only("userrefs"),
    read_only("receive_resume_token"),
    read_only("redact_snaps"),
    read_only("snapshot_count"),
    read_only("filesystem_count"),
    read_only("volsize"),
];

/// Properties that are create-time-only: a difference is reported with the migration it needs.
pub const CREATE_ONLY: &[&str] =
    &["casesensitivity", "normalization", "utf8only", "encryption", "keyformat", "pbkdf2iters", "volblocksize"];

/// Every native filesystem property that can be set (at any time or at creation), for the "set locally
/// but not in the config" report: read by name, never with `all`, so no foreign user property is printed.
/// All of them exist in OpenZFS 2.1 – 2.3 (`zfs get` refuses an unknown name).
pub fn settable_native() -> impl Iterator<Item = &'static str> {
    PROPERTIES
        .iter()
        .filter(|def| def.class != PropertyClass::ReadOnly && def.name != "volblocksize")
        .map(|def| def.name)
}

fn lookup(name: &str) -> Option<&'static PropertyDef> {
    PROPERTIES.iter().find(|def| def.name == name)
}

/// A user property is `module:name` (its rules: [`super::namecheck::check_user_property_name`]).
#[must_use]
pub fn is_user_property(name: &str) -> bool {
    name.contains(':')
}

/// The class of a property name, or `None` for an unknown native property.
#[must_use]
pub fn class_of(name: &str) -> Option<PropertyClass> {
    if is_user_property(name) {
        return Some(PropertyClass::Settable);
    }
    lookup(name).map(|def| def.class)
}

/// Validates that `name` may be set to `value` in a config and returns the form to compare live values with.
///
/// Errors are sentences without the field path; the caller adds it.
pub fn validate(name: &str, value: &str) -> Result<String, String> {
    if value.chars().any(char::is_control) {
        return Err(format!("{value:?} contains a control character"));
    }
    if is_user_property(name) {
        super::namecheck::check_user_property_name(name)?;
        if value.len() > 8191 {
            return Err("a user property value is limited to 8191 bytes".to_string());
        }
        return Ok(value.to_string());
    }
    if value.trim() != value {
        // `zfs set` refuses " 16K"; no native value starts or ends with a space.
        return Err(format!("{value:?} has surrounding spaces"));
    }
    let Some(def) = lookup(name) else {
        return Err(format!(
            "unknown ZFS property {name:?} (user properties need a colon, e.g. \"com.sun:auto-snapshot\")"
        ));
    };
    if def.class == PropertyClass::ReadOnly {
        return Err(format!("{name:?} is a read-only property and cannot be set"));
    }
    canonical_wanted(def, value)
}

fn canonical_wanted(def: &PropertyDef, value: &str) -> Result<String, String> {
    match def.domain {
        Domain::Words(words) => {
            if words.contains(&value) {
                Ok(canonical_word(def.name, value))
            } else {
                Err(format!("{value:?} is not one of {}", words.join(", ")))
            }
        }
        Domain::OnOff => match value {
            "on" | "off" => Ok(value.to_string()),
            _ => Err(format!("{value:?} is not on or off")),
        },
        Domain::PowerOfTwo { min, max } => {
            let bytes = parse_size(value).map_err(|e| format!("{value:?}: {e}"))?;
            if bytes.is_power_of_two() && (min..=max).contains(&bytes) {
                Ok(bytes.to_string())
            } else {
                Err(format!("{value:?} is not a power of two between {} and {}", human_size(min), human_size(max)))
            }
        }
        Domain::SizeOrNone => {
            if value == "none" {
                return Ok("0".to_string());
            }
            parse_size(value).map(|b| b.to_string()).map_err(|e| format!("{value:?}: {e}"))
        }
        Domain::SmallBlocks => {
            let bytes = parse_size(value).map_err(|e| format!("{value:?}: {e}"))?;
            if bytes == 0 || (bytes.is_power_of_two() && (512..=16 * M).contains(&bytes)) {
                Ok(bytes.to_string())
            } else {
                Err(format!("{value:?} is not 0 or a power of two between 512 and 16M"))
            }
        }
        Domain::Compression => canonical_compression(value),
        Domain::Mountpoint => {
            if value == "legacy" || value == "none" {
                Ok(value.to_string())
            } else if value.starts_with('/') {
                Ok(normalize_path(value))
            } else {
                Err(format!("{value:?} is not an absolute path, \"legacy\" or \"none\""))
            }
        }
        Domain::Copies => match value {
            "1" | "2" | "3" => Ok(value.to_string()),
            _ => Err(format!("{value:?} is not 1, 2 or 3")),
        },
        Domain::Count => match value.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n.to_string()),
            _ if value == "none" => Ok(u64::MAX.to_string()),
            _ => Err(format!("{value:?} is not a positive whole number")),
        },
        Domain::Text => Ok(value.to_string()),
    }
}

/// Aliases ZFS reads back under another name.
fn canonical_word(name: &str, value: &str) -> String {
    match (name, value) {
        // 2.2 renamed posixacl to posix and noacl to off; 2.1 reads back what was set.
        ("acltype", "posixacl") => "posix".to_string(),
        ("acltype", "noacl") => "off".to_string(),
        _ => value.to_string(),
    }
}

/// The form to compare a value read back by `zfs get -p` with.
#[must_use]
pub fn canonical_live(name: &str, value: &str) -> String {
    if is_user_property(name) {
        return value.to_string();
    }
    match lookup(name).map(|def| def.domain) {
        Some(Domain::Words(_)) => canonical_word(name, value),
        Some(Domain::Compression) => canonical_compression(value).unwrap_or_else(|_| value.to_string()),
        Some(Domain::Mountpoint) if value.starts_with('/') => normalize_path(value),
        Some(Domain::Count) if value == "none" => u64::MAX.to_string(),
        Some(Domain::SizeOrNone) if value == "none" => "0".to_string(),
        _ => value.to_string(),
    }
}

/// Whether a live value (as `zfs get -p` prints it) satisfies a wanted canonical value.
///
/// `zfs_version` is the loaded module's (major, minor). `xattr=on` is an alias whose meaning moved:
/// up to 2.1 it means directory xattrs and 2.1 reads `dir` back as `on`; from 2.2 it means
/// system-attribute xattrs and `sa` reads back as `on` (both seen on real ZFS).
#[must_use]
pub fn in_sync(name: &str, wanted_canonical: &str, live_value: &str, zfs_version: Option<(u32, u32)>) -> bool {
    let live = canonical_live(name, live_value);
    if live == wanted_canonical {
        return true;
    }
    let Some(version) = zfs_version else { return false };
    let on_means = if version >= (2, 2) { "sa" } else { "dir" };
    name == "xattr" && live == "on" && wanted_canonical == on_means
}

/// `gzip` is `gzip-6` and `zstd` is `zstd-3`: ZFS reads both back as the short name.
fn canonical_compression(value: &str) -> Result<String, String> {
    let level = |prefix: &str| value.strip_prefix(prefix).map(str::parse::<u32>);
    if COMPRESSION_WORDS.contains(&value) {
        return Ok(value.to_string());
    }
    if let Some(Ok(n)) = level("zstd-fast-") {
        return if matches!(n, 1..=10 | 20 | 30 | 40 | 50 | 60 | 70 | 80 | 90 | 100 | 500 | 1000) {
            Ok(if n == 1 { "zstd-fast".to_string() } else { value.to_string() })
        } else {
            Err(format!("{value:?}: zstd-fast levels are 1-10, 20-100 in steps of 10, 500 and 1000"))
        };
    }
    if let Some(Ok(n)) = level("gzip-") {
        return if (1..=9).contains(&n) {
            Ok(if n == 6 { "gzip".to_string() } else { value.to_string() })
        } else {
            Err(format!("{value:?}: gzip levels are 1-9"))
        };
    }
    if let Some(Ok(n)) = level("zstd-") {
        return if (1..=19).contains(&n) {
            Ok(if n == 3 { "zstd".to_string() } else { value.to_string() })
        } else {
            Err(format!("{value:?}: zstd levels are 1-19"))
        };
    }
    Err(format!(
        "{value:?} is not a compression ZFS knows (on, off, lz4, lzjb, zle, gzip, gzip-1..9, zstd, zstd-1..19, zstd-fast, zstd-fast-N)"
    ))
}

/// Removes trailing and doubled slashes, as ZFS does with mountpoints.
fn normalize_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for part in path.split('/').filter(|p| !p.is_empty()) {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() { "/".to_string() } else { out }
}

/// Parses a ZFS size: `512`, `16K`, `16k`, `16KB`, `16KiB`, `1.5G` (bytes, truncated as ZFS does).
pub fn parse_size(text: &str) -> Result<u64, String> {
    // `zfs set` refuses " 16K" and "16K " (the suffix check sees the space): so do we, at build time.
    if text.chars().any(char::is_whitespace) {
        return Err("a size cannot contain spaces".to_string());
    }
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return Err("a size starts with a number".to_string());
    }
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        "P" | "PB" | "PIB" => 50,
        "E" | "EB" | "EIB" => 60,
        _ => {
            return Err(format!("unknown size suffix {suffix:?} (use K, M, G, T, P or E)"));
        }
    };
    let multiplier = 1u64 << shift;
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(multiplier).ok_or_else(|| "size is too large".to_string());
    }
    let Some((int_part, frac_part)) = number.split_once('.') else {
        return Err("not a number".to_string());
    };
    if frac_part.contains('.') || shift == 0 {
        return Err("not a whole number of bytes".to_string());
    }
    let int_part: u64 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| "not a number")? };
    let frac_digits: u32 = u32::try_from(frac_part.len()).map_err(|_| "too many digits")?;
    let frac: u64 = frac_part.parse().map_err(|_| "not a number")?;
    let scale = 10u64.checked_pow(frac_digits).ok_or("too many digits")?;
    let whole = int_part.checked_mul(multiplier).ok_or("size is too large")?;
    let fraction = u128::from(frac) * u128::from(multiplier) / u128::from(scale);
    whole
        .checked_add(u64::try_from(fraction).map_err(|_| "size is too large")?)
        .ok_or_else(|| "size is too large".to_string())
}

/// 16384 → "16K", as people write sizes.
#[must_use]
pub fn human_size(bytes: u64) -> String {
    const UNITS: &[(u32, &str)] = &[(60, "E"), (50, "P"), (40, "T"), (30, "G"), (20, "M"), (10, "K")];
    for &(shift, unit) in UNITS {
        let size = 1u64 << shift;
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

// ---- the model as data: `persistctl properties --json`, committed as nix/lib/properties.json ----------

/// The compression values that take no level (`canonical_compression`).
const COMPRESSION_WORDS: &[&str] = &["on", "off", "lz4", "lzjb", "zle", "gzip", "zstd", "zstd-fast"];

/// Levels tried when listing the compression values: every level OpenZFS has is at most 1000.
const COMPRESSION_LEVELS_TRIED: u32 = 10_000;

/// One property as the NixOS module sees it: generated from `PROPERTIES` and the validators, so the
/// module's evaluation-time checks cannot drift from what `check-config` accepts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyModel {
    /// `settable`, `createOnly` or `readOnly`.
    pub class: &'static str,
    /// The kind of value: `words`, `onOff`, `powerOfTwo`, `sizeOrNone`, `smallBlocks`, `compression`,
    /// `mountpoint`, `copies`, `count` or `text`.
    pub domain: &'static str,
    /// Every accepted value, when there are finitely many; `None` for sizes, counts, paths and text.
    pub values: Option<Vec<String>>,
    /// Written value → the canonical form compared with what `zfs get -p` reads back, where they differ
    /// (`gzip-6` → `gzip`, `none` → `0`). Sizes always compare in bytes.
    pub aliases: std::collections::BTreeMap<String, String>,
    /// A `powerOfTwo` domain's smallest value, in bytes.
    pub min: Option<u64>,
    /// A `powerOfTwo` domain's largest value, in bytes.
    pub max: Option<u64>,
}

/// The whole property model, as `persistctl properties --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// Says where the data comes from and how to regenerate the committed copy.
    pub generated_by: &'static str,
    /// Bumped when the shape changes.
    pub format: u32,
    /// Every known native property by name (read-only ones included, so they can be named in errors).
    pub properties: std::collections::BTreeMap<&'static str, PropertyModel>,
    /// [`settable_native`]: what a filesystem's config may set (volblocksize is for volumes).
    pub settable_native: Vec<&'static str>,
}

/// The property model as data (pure): `PROPERTIES` with every finite domain enumerated through the
/// same validator `check-config` uses.
#[must_use]
pub fn model() -> Model {
    let properties = PROPERTIES.iter().map(|def| (def.name, property_model(def))).collect();
    Model {
        generated_by: "persistctl properties --json (src/zfs/props.rs); regenerate with tests/nix/update-properties.sh",
        format: 1,
        properties,
        settable_native: settable_native().collect(),
    }
}

fn property_model(def: &PropertyDef) -> PropertyModel {
    let class = match def.class {
        PropertyClass::Settable => "settable",
        PropertyClass::CreateOnly => "createOnly",
        PropertyClass::ReadOnly => "readOnly",
    };
    let (domain, min, max) = match def.domain {
        Domain::Words(_) => ("words", None, None),
        Domain::OnOff => ("onOff", None, None),
        Domain::PowerOfTwo { min, max } => ("powerOfTwo", Some(min), Some(max)),
        Domain::SizeOrNone => ("sizeOrNone", None, None),
        Domain::SmallBlocks => ("smallBlocks", None, None),
        Domain::Compression => ("compression", None, None),
        Domain::Mountpoint => ("mountpoint", None, None),
        Domain::Copies => ("copies", None, None),
        Domain::Count => ("count", None, None),
        Domain::Text => ("text", None, None),
    };
    let candidates: Option<Vec<String>> = match def.domain {
        Domain::Words(words) => Some(words.iter().map(|w| (*w).to_string()).collect()),
        Domain::OnOff => Some(ON_OFF.iter().map(|w| (*w).to_string()).collect()),
        Domain::Copies => Some((0..=9).map(|n| n.to_string()).collect()),
        Domain::Compression => Some(
            COMPRESSION_WORDS
                .iter()
                .map(|w| (*w).to_string())
                .chain(
                    ["gzip-", "zstd-", "zstd-fast-"]
                        .iter()
                        .flat_map(|prefix| (0..=COMPRESSION_LEVELS_TRIED).map(move |level| format!("{prefix}{level}"))),
                )
                .collect(),
        ),
        _ => None,
    };
    let values = (def.class != PropertyClass::ReadOnly)
        .then_some(candidates)
        .flatten()
        .map(|c| c.into_iter().filter(|v| canonical_wanted(def, v).is_ok()).collect::<Vec<_>>());
    let mut aliases = std::collections::BTreeMap::new();
    if def.class != PropertyClass::ReadOnly {
        let probes = values.iter().flatten().map(String::as_str).chain(["none"]);
        for written in probes {
            if let Ok(canonical) = canonical_wanted(def, written) {
                if canonical != written {
                    aliases.insert(written.to_string(), canonical);
                }
            }
        }
    }
    PropertyModel { class, domain, values, aliases, min, max }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_every_form_zfs_accepts() {
        let cases: &[(&str, Option<u64>)] = &[
            ("512", Some(512)),
            ("16K", Some(16384)),
            ("16k", Some(16384)),
            ("16KB", Some(16384)),
            ("16KiB", Some(16384)),
            ("1M", Some(1_048_576)),
            ("1.5G", Some(1_610_612_736)),
            ("0.5K", Some(512)),
            ("10G", Some(10_737_418_240)),
            ("", None),
            ("K", None),
            ("16Q", None),
            ("1.5", None),
            ("1.2.3K", None),
            ("-1", None),
            ("99999999999E", None),
            (" 16K", None),
            ("16K ", None),
            ("16 K", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).ok(), *want, "parse_size({text:?})");
        }
    }

    #[test]
    fn recordsize_must_be_a_power_of_two_in_range() {
        let cases: &[(&str, Option<&str>)] = &[
            ("16K", Some("16384")),
            ("512", Some("512")),
            ("16M", Some("16777216")),
            ("1M", Some("1048576")),
            ("15K", None),
            ("256", None),
            ("32M", None),
            ("lots", None),
        ];
        for (value, want) in cases {
            assert_eq!(validate("recordsize", value).ok().as_deref(), *want, "recordsize={value}");
        }
        let err = validate("recordsize", "15K").unwrap_err();
        assert!(err.contains("not a power of two between 512 and 16M"), "{err}");
    }

    #[test]
    fn compression_aliases_compare_equal_to_what_zfs_reads_back() {
        let cases: &[(&str, Option<&str>)] = &[
            ("lz4", Some("lz4")),
            ("gzip", Some("gzip")),
            ("gzip-6", Some("gzip")),
            ("gzip-9", Some("gzip-9")),
            ("zstd", Some("zstd")),
            ("zstd-3", Some("zstd")),
            ("zstd-19", Some("zstd-19")),
            ("zstd-fast", Some("zstd-fast")),
            ("zstd-fast-1", Some("zstd-fast")),
            ("zstd-fast-1000", Some("zstd-fast-1000")),
            ("off", Some("off")),
            ("on", Some("on")),
            ("gzip-10", None),
            ("zstd-20", None),
            ("zstd-fast-11", None),
            ("LZ4", None),
            ("snappy", None),
        ];
        for (value, want) in cases {
            assert_eq!(validate("compression", value).ok().as_deref(), *want, "compression={value}");
        }
    }

    #[test]
    fn each_property_class_is_classified() {
        let cases: &[(&str, Option<PropertyClass>)] = &[
            ("recordsize", Some(PropertyClass::Settable)),
            ("com.sun:auto-snapshot", Some(PropertyClass::Settable)),
            ("casesensitivity", Some(PropertyClass::CreateOnly)),
            ("encryption", Some(PropertyClass::CreateOnly)),
            ("used", Some(PropertyClass::ReadOnly)),
            ("mounted", Some(PropertyClass::ReadOnly)),
            ("recordsiz", None),
        ];
        for (name, want) in cases {
            assert_eq!(class_of(name), *want, "{name}");
        }
        for name in CREATE_ONLY {
            assert_eq!(class_of(name), Some(PropertyClass::CreateOnly), "{name}");
        }
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let cases: &[(&str, &str, &str)] = &[
            ("used", "1G", "read-only"),
            ("recordsiz", "16K", "unknown ZFS property"),
            ("atime", "yes", "not on or off"),
            ("logbias", "fast", "not one of latency, throughput"),
            ("quota", "ten", "starts with a number"),
            ("mountpoint", "relative/path", "absolute path"),
            ("copies", "4", "not 1, 2 or 3"),
            ("Com.Sun:Snap", "x", "lower-case"),
            ("com.sun:auto-snapshot", "a\nb", "control character"),
            ("special_small_blocks", "3K", "power of two"),
        ];
        for (name, value, needle) in cases {
            let err = validate(name, value).expect_err(name);
            assert!(err.contains(needle), "{name}={value:?}: {err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn live_values_compare_in_canonical_form() {
        let cases: &[(&str, &str, &str)] = &[
            ("quota", "none", "0"),
            ("quota", "0", "0"),
            ("acltype", "posixacl", "posix"),
            ("acltype", "posix", "posix"),
            ("compression", "gzip", "gzip"),
            ("mountpoint", "/persist/sonarr", "/persist/sonarr"),
            ("com.sun:auto-snapshot", "true", "true"),
            ("recordsize", "16384", "16384"),
        ];
        for (name, live, want) in cases {
            assert_eq!(canonical_live(name, live), *want, "{name}={live}");
        }
        // the wanted side matches the live side for the aliases above
        assert_eq!(validate("quota", "none").unwrap(), canonical_live("quota", "0"));
        assert_eq!(validate("acltype", "posixacl").unwrap(), canonical_live("acltype", "posix"));
        assert_eq!(validate("mountpoint", "/persist//sonarr/").unwrap(), "/persist/sonarr");
    }

    #[test]
    fn xattr_sa_reads_back_as_on_from_openzfs_2_2() {
        assert!(in_sync("xattr", "sa", "on", Some((2, 3))));
        assert!(in_sync("xattr", "sa", "on", Some((2, 2))));
        assert!(!in_sync("xattr", "sa", "on", Some((2, 1))), "on 2.1, on means directory xattrs");
        assert!(in_sync("xattr", "dir", "on", Some((2, 1))), "2.1 reads dir back as on");
        assert!(!in_sync("xattr", "dir", "on", Some((2, 3))));
        assert!(!in_sync("xattr", "sa", "on", None));
        assert!(!in_sync("xattr", "on", "sa", Some((2, 3))));
        assert!(in_sync("xattr", "sa", "sa", Some((2, 1))));
        assert!(in_sync("recordsize", "16384", "16384", None));
    }

    #[test]
    fn human_sizes_round_trip() {
        for bytes in [512, 16384, 131_072, 1_048_576, 16_777_216, 1000] {
            assert_eq!(parse_size(&human_size(bytes)).unwrap(), bytes);
        }
        assert_eq!(human_size(16384), "16K");
        assert_eq!(human_size(1000), "1000");
    }

    #[test]
    fn the_model_lists_exactly_the_values_the_validator_accepts() {
        let model = model();
        for (name, p) in &model.properties {
            for value in p.values.iter().flatten() {
                assert!(validate(name, value).is_ok(), "{name}={value} is listed but refused");
            }
            for (written, canonical) in &p.aliases {
                assert_eq!(validate(name, written).as_deref(), Ok(canonical.as_str()), "{name}={written}");
            }
        }
        let compression = model.properties["compression"].values.clone().unwrap();
        assert_eq!(compression.len(), 8 + 9 + 19 + 21, "{compression:?}");
        for refused in ["gzip-0", "gzip-10", "zstd-0", "zstd-20", "zstd-fast-0", "zstd-fast-11", "zstd-fast-2000"] {
            assert!(!compression.iter().any(|v| v == refused), "{refused}");
            assert!(validate("compression", refused).is_err(), "{refused}");
        }
        assert_eq!(model.properties["copies"].values.as_deref(), Some(&["1", "2", "3"].map(String::from)[..]));
        assert_eq!(model.properties["acltype"].aliases["posixacl"], "posix");
        assert_eq!(model.properties["quota"].aliases["none"], "0");
        assert_eq!(model.properties["used"].class, "readOnly");
        assert_eq!(model.properties["used"].values, None);
        assert_eq!(model.settable_native, settable_native().collect::<Vec<_>>());
    }
}
