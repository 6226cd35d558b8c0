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

/// Parses `zfs get -H -p -o name,property,value,source` lines into datasets, unchecked: for hand-written
/// fixtures only. Everything read from `zfs` goes through [`TreeParser`], which refuses forged rows.
#[cfg(test)]
pub(crate) fn parse_get(output: &str) -> Result<BTreeMap<String, LiveDataset>, String> {
    let mut datasets: BTreeMap<String, LiveDataset> = BTreeMap::new();
    for (index, line) in output.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let (name, property, value, source) = split_row(line)
            .ok_or_else(|| format!("line {}: expected 4 tab-separated fields, got {line:?}", index + 1))?;
        let source = PropertySource::parse(source);
        let entry = datasets.entry(name.to_string()).or_default();
        if !(value == "-" && source == PropertySource::None && property.contains(':')) {
            entry.properties.insert(property.to_string(), PropertyValue { value: value.to_string(), source });
        }
    }
    Ok(datasets)
}

/// `name, property, value, source`: name and property from the left (neither can hold a tab), the source
/// from the right (it names at most a dataset, which cannot either), the value is what lies between and
/// may hold tabs.
fn split_row(line: &str) -> Option<(&str, &str, &str, &str)> {
    let mut left = line.splitn(3, '\t');
    let (name, property, rest) = (left.next()?, left.next()?, left.next()?);
    let (value, source) = rest.rsplit_once('\t')?;
    Some((name, property, value, source))
}

/// A source column exactly as zfs prints one; anything else is not a `zfs get` row.
fn strict_source(text: &str) -> Option<PropertySource> {
    match text {
        "-" => Some(PropertySource::None),
        "local" | "default" | "received" | "temporary" => Some(PropertySource::parse(text)),
        other => {
            let from = other.strip_prefix("inherited from ")?;
            check_dataset_name(from).ok()?;
            Some(PropertySource::Inherited(from.to_string()))
        }
    }
}

/// Reads the answer to `zfs get -H -p -o name,property,value,source -r -t filesystem p1,...,pn root`
/// line by line and refuses anything zfs itself would not print.
///
/// zfs prints, for every filesystem of the tree (the root first), one row per requested property, in
/// the requested order, each dataset's rows together. So every dataset's block must be exactly
/// `p1..pn`; a dataset may not come back after another one's block; every name is the root or below it;
/// the answer ends with a line break after a complete block. The list must end with a property whose
/// value never holds a line break ([`SENTINEL`]): then a value with an embedded line break, whatever
/// rows it forges, is always followed by the real remaining rows of its dataset, which then repeat a
/// row or stand outside their block — so it is always caught, never guessed at.
#[derive(Debug)]
pub struct TreeParser {
    root: String,
    properties: Vec<String>,
    tree: BTreeMap<String, LiveDataset>,
    /// The dataset whose block is being read and how many of its rows were read.
    current: Option<(String, usize)>,
    line: usize,
}

/// The last property of every tree read: `type` is `filesystem` under `-t filesystem`, never free text.
pub const SENTINEL: &str = "type";

/// A `zfs get` answer that is not what zfs prints: it is never acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed `zfs get` output at line {line}: {why}")]
pub struct Malformed {
    /// 1-based line of the answer where it went wrong (0: the answer as a whole).
    pub line: usize,
    /// What is wrong, naming the dataset and property.
    pub why: String,
}

impl TreeParser {
    /// A reader of the answer for `root` and `properties` as they were asked for (ending with [`SENTINEL`]).
    #[must_use]
    pub fn new(root: &str, properties: &[&str]) -> Self {
        Self {
            root: root.to_string(),
            properties: properties.iter().map(|p| (*p).to_string()).collect(),
            tree: BTreeMap::new(),
            current: None,
            line: 0,
        }
    }

    /// Parses a whole answer (the text zfs printed, final line break included).
    pub fn parse(root: &str, properties: &[&str], output: &str) -> Result<BTreeMap<String, LiveDataset>, Malformed> {
        let mut parser = Self::new(root, properties);
        if output.is_empty() {
            return parser.finish();
        }
        let Some(body) = output.strip_suffix('\n') else {
            let last = output.lines().count();
            return Err(Self::bad_at(last, "the answer does not end with a line break (truncated)".into()));
        };
        for line in body.split('\n') {
            parser.push_line(line)?;
        }
        parser.finish()
    }

    fn bad_at(line: usize, why: String) -> Malformed {
        Malformed { line, why }
    }

    /// The hint for a break somewhere in the current dataset's rows so far.
    fn suspect(&self) -> String {
        self.current.as_ref().map_or_else(String::new, |(dataset, _)| self.suspect_in(dataset))
    }

    /// Which of `dataset`'s values read so far may hold the line break that began the forged rows: its
    /// user properties that are set (free text), else the row just before.
    fn suspect_in(&self, dataset: &str) -> String {
        let set_user: Vec<&str> = self
            .tree
            .get(dataset)
            .map(|live| live.properties.keys().filter(|p| p.contains(':')).map(String::as_str).collect())
            .unwrap_or_default();
        if !set_user.is_empty() {
            return Self::hint(dataset, &set_user.join(" or "));
        }
        match &self.current {
            Some((current, read)) if current == dataset && *read > 0 => Self::hint(dataset, &self.properties[read - 1]),
            _ => String::new(),
        }
    }

    /// Where to look for a line break, and how to clear a user property nobody needs.
    fn hint(dataset: &str, property: &str) -> String {
        format!(
            " (the value of {dataset}'s {property} may hold a line break: see `zfs get -H {} {}`; a user property \
             nobody needs is cleared with `zfs inherit {} {}`)",
            property.replace(" or ", ","),
            super::quote(dataset),
            property.split(" or ").next().unwrap_or(property),
            super::quote(dataset)
        )
    }

    fn is_under_root(&self, name: &str) -> bool {
        name == self.root || name.strip_prefix(self.root.as_str()).is_some_and(|rest| rest.starts_with('/'))
    }

    /// Reads one line (without its line break).
    pub fn push_line(&mut self, line: &str) -> Result<(), Malformed> {
        self.line += 1;
        let at = self.line;
        let Some((name, property, value, source)) = split_row(line) else {
            // A row cut short by a line break in its own value, or the text after one in the row before.
            let mut parts = line.splitn(3, '\t');
            let hint = match (parts.next(), parts.next()) {
                (Some(name), Some(property)) if self.is_under_root(name) => Self::hint(name, property),
                _ => self.suspect(),
            };
            return Err(Self::bad_at(at, format!("{line:?} is not 4 tab-separated fields{hint}")));
        };
        if !self.is_under_root(name) {
            return Err(Self::bad_at(
                at,
                format!("a row for {name:?} ({property}), which is not {} or below it{}", self.root, self.suspect()),
            ));
        }
        let starts_block = self.current.as_ref().is_none_or(|(dataset, _)| dataset != name);
        if starts_block {
            if let Some((dataset, read)) = &self.current {
                if *read < self.properties.len() {
                    return Err(Self::bad_at(
                        at,
                        format!(
                            "{dataset} has no row for {} before {name}'s {property}{}",
                            self.properties[*read],
                            self.suspect()
                        ),
                    ));
                }
            } else if name != self.root {
                return Err(Self::bad_at(
                    at,
                    format!("the answer starts with {name}'s {property}, not with {}'s own rows", self.root),
                ));
            }
            if self.tree.contains_key(name) {
                return Err(Self::bad_at(
                    at,
                    format!("a row for {name}'s {property} outside {name}'s block of rows{}", self.suspect_in(name)),
                ));
            }
            self.current = Some((name.to_string(), 0));
            self.tree.insert(name.to_string(), LiveDataset::default());
        }
        let read = self.current.as_ref().map_or(0, |(_, read)| *read);
        match self.properties.get(read) {
            Some(expected) if expected == property => {}
            Some(expected) => {
                let seen = self.properties[..read].iter().any(|p| p == property);
                let what = if seen { "a repeated row" } else { "an unexpected row" };
                return Err(Self::bad_at(
                    at,
                    format!("{what} for {name}'s {property} where {expected} was due{}", self.suspect()),
                ));
            }
            None => {
                return Err(Self::bad_at(at, format!("a repeated row for {name}'s {property}{}", self.suspect())));
            }
        }
        let Some(source) = strict_source(source) else {
            return Err(Self::bad_at(at, format!("{name}'s {property} has the source {source:?}{}", self.suspect())));
        };
        if property == SENTINEL && (value != "filesystem" || source != PropertySource::None) {
            return Err(Self::bad_at(at, format!("{name}'s {property} is {value:?} ({})", source.display())));
        }
        if let Some((_, read)) = &mut self.current {
            *read += 1;
        }
        let unset_user_property = value == "-" && source == PropertySource::None && property.contains(':');
        if !unset_user_property {
            if let Some(entry) = self.tree.get_mut(name) {
                entry.properties.insert(property.to_string(), PropertyValue { value: value.to_string(), source });
            }
        }
        Ok(())
    }

    /// The tree, once the answer is complete: the root's rows are there and the last block is whole.
    pub fn finish(self) -> Result<BTreeMap<String, LiveDataset>, Malformed> {
        match &self.current {
            None => Err(Self::bad_at(
                0,
                format!("no rows for {}: the answer is empty or truncated (not \"does not exist\")", self.root),
            )),
            Some((dataset, read)) if *read < self.properties.len() => Err(Self::bad_at(
                self.line,
                format!("the answer ends before {dataset}'s {} (truncated)", self.properties[*read]),
            )),
            Some(_) => Ok(self.tree),
        }
    }
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

    const ASKED: &[&str] = &["mountpoint", "mounted", "persistctl:staging", "type"];

    /// A change made to a good answer.
    type Change<'a> = &'a dyn Fn(&mut Vec<String>);

    /// The answer for `tank/p` (mounted at /p, one child `tank/p/a`), rows given with `|` for tabs.
    fn answer(rows: &[&str]) -> String {
        rows.iter().map(|r| r.replace('|', "\t") + "\n").collect()
    }

    fn good_rows() -> Vec<String> {
        [
            "tank/p|mountpoint|/p|local",
            "tank/p|mounted|yes|-",
            "tank/p|persistctl:staging|-|-",
            "tank/p|type|filesystem|-",
            "tank/p/a|mountpoint|/p/a|inherited from tank/p",
            "tank/p/a|mounted|yes|-",
            "tank/p/a|persistctl:staging|x\ty|local",
            "tank/p/a|type|filesystem|-",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn a_well_formed_tree_parses() {
        let rows = good_rows();
        let text = answer(&rows.iter().map(String::as_str).collect::<Vec<_>>());
        let tree = TreeParser::parse("tank/p", ASKED, &text).unwrap();
        assert_eq!(tree.keys().collect::<Vec<_>>(), ["tank/p", "tank/p/a"]);
        assert!(!tree["tank/p"].properties.contains_key("persistctl:staging"), "unset user prop is dropped");
        assert_eq!(tree["tank/p/a"].value("persistctl:staging"), Some("x\ty"), "a tab inside a value survives");
        assert_eq!(tree["tank/p/a"].properties["mountpoint"].source, PropertySource::Inherited("tank/p".into()));
    }

    #[test]
    fn forged_and_broken_answers_are_malformed_and_name_the_dataset_and_property() {
        // (what is done to the good answer, what the error must say)
        let forged_mountpoint = "tank/p/a|persistctl:staging|x|local\ntank/p/a|mountpoint|/decoy|local";
        let forged_child = "tank/p|persistctl:staging|x|local\ntank/p|type|filesystem|-\n\
                            tank/p/b|mountpoint|/decoy|local\ntank/p/b|mounted|yes|-\n\
                            tank/p/b|persistctl:staging|-|-\ntank/p/b|type|filesystem|-\ntank/p/b|x|y|local";
        let cases: &[(Change<'_>, &str)] = &[
            (&|r| r[6] = forged_mountpoint.into(), "tank/p/a's mountpoint"),
            (&|r| r[2] = forged_child.into(), "tank/p/b"),
            (&|r| r[6] = "tank/p/a|persistctl:staging|x\n|local".into(), "tank/p/a's persistctl:staging"),
            (&|r| r.insert(2, "tank/p|mounted|no|-".into()), "a repeated row for tank/p's mounted"),
            (&|r| r.push("tank/p|mountpoint|/decoy|local".into()), "outside tank/p's block"),
            (&|r| r.push("tank/other|mountpoint|/x|local".into()), "not tank/p or below it"),
            (&|r| r.push("tank/pp|mountpoint|/x|local".into()), "not tank/p or below it"),
            (&|r| drop(r.drain(..4)), "not with tank/p's own rows"),
            (&|r| r.truncate(6), "ends before tank/p/a's persistctl:staging"),
            (&|r| r.truncate(0), "no rows for tank/p"),
            (&|r| drop(r.remove(5)), "tank/p/a's persistctl:staging where mounted was due"),
            (&|r| r[1] = "tank/p|mounted|yes|somewhere".into(), "tank/p's mounted has the source"),
            (&|r| r[3] = "tank/p|type|volume|-".into(), "tank/p's type is \"volume\""),
            (&|r| r[4] = "tank/p/a|mountpoint|/p/a|inherited from tank/p\n".into(), "tank/p/a's mountpoint"),
            (&|r| r[4] = "tank/p/a|mountpoint".into(), "not 4 tab-separated fields"),
        ];
        for (change, needle) in cases {
            let mut rows = good_rows();
            change(&mut rows);
            let text = answer(&rows.iter().map(String::as_str).collect::<Vec<_>>());
            let err = TreeParser::parse("tank/p", ASKED, &text).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}\n{text}");
        }
    }

    #[test]
    fn empty_or_unterminated_answers_are_never_an_empty_tree() {
        for text in ["", "\n", "tank/p|mountpoint|/p|local"] {
            let text = text.replace('|', "\t");
            assert!(TreeParser::parse("tank/p", ASKED, &text).is_err(), "{text:?}");
        }
        let whole = answer(&good_rows().iter().map(String::as_str).collect::<Vec<_>>());
        let err = TreeParser::parse("tank/p", ASKED, whole.trim_end()).unwrap_err();
        assert!(err.to_string().contains("does not end with a line break"), "{err}");
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
