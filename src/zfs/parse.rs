//! Parsing what `zfs` prints. Pure: text in, values out.

use std::collections::BTreeMap;

/// Where a property's value comes from, as `zfs get -o source` says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "from")]
pub enum PropertySource {
    /// Set on this dataset.
    Local,
    /// ZFS's built-in default.
    Default,
    /// Inherited from the named ancestor.
    Inherited(String),
    /// Set by `zfs receive`.
    Received,
    /// Set for this mount only (`zfs mount -o`).
    Temporary,
    /// `-`: read-only, or a user property that is not set.
    None,
}

impl PropertySource {
    /// Parses one `source` column.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        match text {
            "local" => Self::Local,
            "default" => Self::Default,
            "received" => Self::Received,
            "temporary" => Self::Temporary,
            other => other.strip_prefix("inherited from ").map_or(Self::None, |from| Self::Inherited(from.to_string())),
        }
    }

    /// The column as ZFS prints it.
    #[must_use]
    pub fn display(&self) -> String {
        match self {
            Self::Local => "local".into(),
            Self::Default => "default".into(),
            Self::Inherited(from) => format!("inherited from {from}"),
            Self::Received => "received".into(),
            Self::Temporary => "temporary".into(),
            Self::None => "-".into(),
        }
    }
}

/// A property's value and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PropertyValue {
    /// The value as `zfs get -p` prints it (bytes for sizes).
    pub value: String,
    /// Where it comes from.
    pub source: PropertySource,
}

/// One dataset's properties as read from ZFS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveDataset {
    /// Property name → value and source. Unset user properties (`-` / `-`) are left out.
    pub properties: BTreeMap<String, PropertyValue>,
}

impl LiveDataset {
    /// The value of a property, if ZFS reported one.
    #[must_use]
    pub fn value(&self, property: &str) -> Option<&str> {
        self.properties.get(property).map(|p| p.value.as_str())
    }

    /// Whether ZFS says the dataset is mounted.
    #[must_use]
    pub fn is_mounted(&self) -> bool {
        self.value("mounted") == Some("yes")
    }
}

/// Parses `zfs get -H -p -o name,property,value,source` output into datasets, in the order ZFS listed them.
///
/// Fields are tab-separated. A value may itself contain tabs (user properties), so the name and property
/// are taken from the left and the source from the right.
pub fn parse_get(output: &str) -> Result<BTreeMap<String, LiveDataset>, String> {
    let mut datasets: BTreeMap<String, LiveDataset> = BTreeMap::new();
    for (index, line) in output.lines().enumerate() {
        add_get_line(&mut datasets, line, &|_, _| true).map_err(|why| format!("line {}: {why}", index + 1))?;
    }
    Ok(datasets)
}

/// Decides which `(property, source)` rows of a `zfs get` are kept.
pub type RowFilter<'a> = dyn Fn(&str, &PropertySource) -> bool + 'a;

/// Adds one `zfs get -H -p -o name,property,value,source` line to `datasets`, if `keep` wants it.
/// Every dataset named gets an entry, even when none of its rows are kept.
pub fn add_get_line(
    datasets: &mut BTreeMap<String, LiveDataset>,
    line: &str,
    keep: &RowFilter<'_>,
) -> Result<(), String> {
    if line.is_empty() {
        return Ok(());
    }
    let mut left = line.splitn(3, '\t');
    let (Some(name), Some(property), Some(rest)) = (left.next(), left.next(), left.next()) else {
        return Err(format!("expected 4 tab-separated fields, got {line:?}"));
    };
    let Some((value, source)) = rest.rsplit_once('\t') else {
        return Err(format!("expected 4 tab-separated fields, got {line:?}"));
    };
    let source = PropertySource::parse(source);
    if !datasets.contains_key(name) {
        datasets.insert(name.to_string(), LiveDataset::default());
    }
    let unset_user_property = value == "-" && source == PropertySource::None && property.contains(':');
    if unset_user_property || !keep(property, &source) {
        return Ok(());
    }
    if let Some(entry) = datasets.get_mut(name) {
        entry.properties.insert(property.to_string(), PropertyValue { value: value.to_string(), source });
    }
    Ok(())
}

// The name rules live in `namecheck.rs`; re-exported here for the callers that found them here.
pub use super::namecheck::{check_component, check_dataset_name};

/// The pool a dataset lives in: the part before the first `/`.
#[must_use]
pub fn pool_of(dataset: &str) -> &str {
    dataset.split('/').next().unwrap_or(dataset)
}

/// The names `zfs list -H -o name` prints, one a line.
#[must_use]
pub fn parse_names(output: &str) -> Vec<String> {
    output.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_form_parses() {
        let cases = [
            ("local", PropertySource::Local),
            ("default", PropertySource::Default),
            ("received", PropertySource::Received),
            ("temporary", PropertySource::Temporary),
            ("-", PropertySource::None),
            ("inherited from tank/persist", PropertySource::Inherited("tank/persist".into())),
            ("inherited from tank/my data", PropertySource::Inherited("tank/my data".into())),
        ];
        for (text, want) in cases {
            assert_eq!(PropertySource::parse(text), want, "{text}");
            assert_eq!(want.display(), text);
        }
    }

    #[test]
    fn get_output_parses_into_datasets() {
        let out = "tank/persist\trecordsize\t131072\tdefault\n\
                   tank/persist\tmountpoint\tlegacy\tlocal\n\
                   tank/persist\tcom.sun:auto-snapshot\t-\t-\n\
                   tank/persist/my app\trecordsize\t16384\tlocal\n\
                   tank/persist/my app\tcom.sun:auto-snapshot\ttrue\tinherited from tank/persist\n\
                   tank/persist/my app\tnote:x\ta\tb\tlocal\n";
        let parsed = parse_get(out).unwrap();
        assert_eq!(parsed.len(), 2);
        let parent = &parsed["tank/persist"];
        assert_eq!(parent.value("recordsize"), Some("131072"));
        assert_eq!(parent.properties["mountpoint"].source, PropertySource::Local);
        assert!(!parent.properties.contains_key("com.sun:auto-snapshot"), "unset user prop is dropped");
        let child = &parsed["tank/persist/my app"];
        assert_eq!(child.properties["com.sun:auto-snapshot"].source, PropertySource::Inherited("tank/persist".into()));
        assert_eq!(child.value("note:x"), Some("a\tb"), "a tab inside a value survives");
    }

    #[test]
    fn filtered_rows_still_list_every_dataset() {
        let mut tree = BTreeMap::new();
        let keep = |p: &str, s: &PropertySource| p == "mountpoint" || *s == PropertySource::Local;
        for line in ["tank/a\tatime\ton\tdefault", "tank/a\txattr\tsa\tlocal", "tank/b\tatime\ton\tdefault"] {
            add_get_line(&mut tree, line, &keep).unwrap();
        }
        assert_eq!(tree.keys().collect::<Vec<_>>(), ["tank/a", "tank/b"]);
        assert_eq!(tree["tank/a"].properties.keys().collect::<Vec<_>>(), ["xattr"]);
        assert!(tree["tank/b"].properties.is_empty());
    }

    #[test]
    fn malformed_get_output_is_an_error_naming_the_line() {
        let err = parse_get("tank\trecordsize\n").unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
        assert!(parse_get("").unwrap().is_empty());
    }

    #[test]
    fn dataset_names_are_checked_like_zfs_does() {
        let ok = ["tank", "tank/persist", "rpool/safe/persist", "tank/my data", "tank/a:b.c_d-e"];
        for name in ok {
            assert!(check_dataset_name(name).is_ok(), "{name}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "empty"),
            ("tank/", "empty component"),
            ("/tank", "empty component"),
            ("tank//x", "empty component"),
            ("tank/x@snap", "snapshot"),
            ("tank/x;rm -rf", "';'"),
            ("tank/\"q\"", "'\"'"),
            ("tank/a\nb", "'\\n'"),
            ("tank/..", "reserved"),
            ("tank/$(id)", "'$'"),
        ];
        for (name, needle) in bad {
            let err = check_dataset_name(name).unwrap_err();
            assert!(err.contains(needle), "{name:?}: {err}");
        }
        assert!(check_dataset_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn pool_is_the_first_component() {
        assert_eq!(pool_of("tank/persist/x"), "tank");
        assert_eq!(pool_of("tank"), "tank");
    }
}
