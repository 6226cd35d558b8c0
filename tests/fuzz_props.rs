//! Property tests (proptest) of everything persistctl parses from outside: the config loader and
//! validator, `zfs get` trees, `zfs list -t snapshot` and `restic snapshots --json`.
//!
//! Invariants: nothing panics; malformed tool output is refused (a tree never holds a forged row); every
//! config error names its field path; what is accepted is well-formed. `PROPTEST_CASES` scales every
//! property (default: a few seconds in all); `tests/fuzz/long-campaign.sh` runs them for ten minutes and
//! more. Each test prints `fuzz-figures target=... cases=... panics=...` (see it with `--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

use persistctl::zfs::parse::{SENTINEL, TreeParser, check_dataset_name};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Cases per property: `$PROPTEST_CASES`, else a small number for CI.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// Runs one property, counting cases and panics (a panic is a finding, caught and reported, not a crash).
fn check<S: Strategy>(target: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let config = Config { cases: cases(), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let (ran, panics) = (AtomicU64::new(0), AtomicU64::new(0));
    let result = runner.run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        catch_unwind(AssertUnwindSafe(|| test(value))).unwrap_or_else(|_| {
            panics.fetch_add(1, Ordering::Relaxed);
            Err(TestCaseError::fail("panicked"))
        })
    });
    let findings = u64::from(result.is_err());
    println!(
        "fuzz-figures target={target} cases={} panics={} findings={findings}",
        ran.load(Ordering::Relaxed),
        panics.load(Ordering::Relaxed)
    );
    if let Err(e) = result {
        panic!("{target}: {e}");
    }
}

// ---------------------------------------------------------------- zfs get

const ROOT: &str = "tank/p";
const ASKED: &[&str] = &["mountpoint", "mounted", "com.sun:auto-snapshot", "persistctl:restored-from", SENTINEL];

/// Dataset → property → (value, source).
type Props = BTreeMap<String, BTreeMap<String, (String, String)>>;

/// A dataset's rows as zfs would print them: (property, value, source) in `ASKED` order.
type Block = Vec<(String, String, String)>;

fn source() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("local".to_string()),
        Just("default".to_string()),
        Just("-".to_string()),
        Just("received".to_string()),
        Just(format!("inherited from {ROOT}")),
    ]
}

/// Values with the characters that matter: tabs, line breaks, dashes, slashes, spaces.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-z0-9/ .:-]{0,10}", 1 => "[a-z\t/-]{0,8}", 1 => "[a-z\t\n/-]{0,8}", 1 => Just("-".to_string())]
}

fn block() -> impl Strategy<Value = Block> {
    proptest::collection::vec((value(), source()), ASKED.len() - 1).prop_map(|vs| {
        let mut rows: Block = ASKED.iter().zip(vs).map(|(p, (v, s))| ((*p).to_string(), v, s)).collect::<Vec<_>>();
        rows.push((SENTINEL.into(), "filesystem".into(), "-".into()));
        rows
    })
}

/// A tree: the root and some children (valid names), in zfs' order.
fn tree() -> impl Strategy<Value = Vec<(String, Block)>> {
    (block(), proptest::collection::btree_map("[a-z][a-z0-9 ._-]{0,5}(/[a-z]{1,3})?", block(), 0..4)).prop_map(
        |(root, children)| {
            let mut all = vec![(ROOT.to_string(), root)];
            all.extend(children.into_iter().map(|(name, b)| (format!("{ROOT}/{name}"), b)));
            all
        },
    )
}

fn render(tree: &[(String, Block)]) -> String {
    tree.iter().flat_map(|(name, rows)| rows.iter().map(move |(p, v, s)| format!("{name}\t{p}\t{v}\t{s}\n"))).collect()
}

/// What the parser must give for a tree without line breaks in values.
fn expected(tree: &[(String, Block)]) -> Props {
    tree.iter()
        .map(|(name, rows)| {
            let props = rows
                .iter()
                .filter(|(p, v, s)| !(v == "-" && s == "-" && p.contains(':')))
                .map(|(p, v, s)| (p.clone(), (v.clone(), s.clone())))
                .collect();
            (name.clone(), props)
        })
        .collect()
}

fn parsed(text: &str) -> Result<Props, String> {
    let tree = TreeParser::parse(ROOT, ASKED, text).map_err(|e| e.to_string())?;
    Ok(tree
        .into_iter()
        .map(|(name, live)| {
            let props = live.properties.into_iter().map(|(p, v)| (p, (v.value, v.source.display()))).collect();
            (name, props)
        })
        .collect())
}

#[test]
fn zfs_get_trees_parse_exactly_or_are_refused() {
    check("zfs-get-roundtrip", tree(), |tree| {
        let text = render(&tree);
        let has_break = tree.iter().any(|(_, rows)| rows.iter().any(|(_, v, _)| v.contains('\n')));
        match parsed(&text) {
            Ok(got) => {
                prop_assert!(!has_break, "a value with a line break was accepted:\n{text:?}");
                prop_assert_eq!(got, expected(&tree));
            }
            Err(why) => prop_assert!(has_break, "a well-formed answer was refused: {why}\n{text:?}"),
        }
        Ok(())
    });
}

/// A row someone might forge: for the same dataset, another of the tree, a new one, or outside the root.
fn forged_row() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just(ROOT.to_string()),
        "[a-z]{1,3}".prop_map(|c| format!("{ROOT}/{c}")),
        Just("tank/other".to_string()),
        Just("tank/pp".to_string()),
    ];
    let property = proptest::sample::select(ASKED.to_vec()).prop_map(String::from);
    (name, property, value(), source()).prop_map(|(n, p, v, s)| format!("{n}\t{p}\t{v}\t{s}"))
}

#[test]
fn a_value_forging_rows_is_always_refused() {
    let strategy =
        (tree(), any::<proptest::sample::Index>(), proptest::collection::vec(forged_row(), 1..8), "[a-z]{0,3}");
    check("zfs-get-forged", strategy, |(mut tree, at, forged, head)| {
        // The value of one user property (never the sentinel): a head, a tab and a source, then the forged
        // rows; zfs appends the real source to the last of them.
        let user_rows: Vec<(usize, usize)> = tree
            .iter()
            .enumerate()
            .flat_map(|(d, (_, rows))| {
                rows.iter().enumerate().filter(|(_, r)| r.0.contains(':')).map(move |(r, _)| (d, r))
            })
            .collect();
        let (d, r) = user_rows[at.index(user_rows.len())];
        let mut value = format!("{head}\tlocal");
        for row in &forged {
            value.push('\n');
            value.push_str(row);
        }
        tree[d].1[r].1 = value;
        let text = render(&tree);
        prop_assert!(parsed(&text).is_err(), "forged rows were accepted:\n{text}");
        Ok(())
    });
}

#[test]
fn truncated_answers_are_refused_unless_cut_between_whole_datasets() {
    check("zfs-get-truncated", (tree(), any::<proptest::sample::Index>()), |(tree, at)| {
        let tree: Vec<_> = tree
            .into_iter()
            .map(|(n, rows)| (n, rows.into_iter().map(|(p, v, s)| (p, v.replace('\n', " "), s)).collect::<Block>()))
            .collect();
        let text = render(&tree);
        let cuts: Vec<usize> = (0..text.len()).filter(|i| text.is_char_boundary(*i)).collect();
        let cut = cuts[at.index(cuts.len())];
        let mut boundaries = Vec::new();
        let mut len = 0;
        for (i, block) in tree.iter().enumerate() {
            len += render(std::slice::from_ref(block)).len();
            boundaries.push((len, i + 1));
        }
        let result = parsed(&text[..cut]);
        match boundaries.iter().find(|(b, _)| *b == cut) {
            Some((_, whole)) => prop_assert_eq!(result.unwrap().len(), *whole),
            None => prop_assert!(result.is_err(), "cut at {cut} was accepted: {:?}", &text[..cut]),
        }
        Ok(())
    });
}

#[test]
fn any_text_as_a_zfs_get_answer_never_panics_and_never_lists_a_stranger() {
    let strategy = prop_oneof![
        ".{0,200}",
        "([a-z/\t\n-]{0,12}){0,20}",
        "(tank/p[a-z/]{0,4}\t[a-z:]{1,8}\t[a-z\t]{0,4}\t(local|-)\n){0,12}"
    ];
    check("zfs-get-garbage", strategy, |text| {
        if let Ok(tree) = TreeParser::parse(ROOT, ASKED, &text) {
            prop_assert!(tree.contains_key(ROOT));
            for name in tree.keys() {
                prop_assert!(name == ROOT || name.starts_with(&format!("{ROOT}/")), "{name}");
            }
            prop_assert!(!text.contains("\n\n"));
        }
        Ok(())
    });
}

// ---------------------------------------------------------------- zfs list -t snapshot

#[test]
fn snapshot_lists_parse_exactly_or_are_refused() {
    let row = ("[a-z]{1,4}(/[a-z -]{1,4}){0,2}", "[a-z0-9_:.-]{1,10}", any::<u32>(), any::<u32>(), any::<u64>());
    check("zfs-list-snapshots", proptest::collection::vec(row, 0..6), |rows| {
        let text = rows.iter().fold(String::new(), |mut text, (d, s, c, u, g)| {
            let _ = writeln!(text, "tank/{d}@{s}\t{c}\t{u}\t{g}");
            text
        });
        let valid =
            rows.iter().all(|(d, s, ..)| check_dataset_name(&format!("tank/{d}")).is_ok() && s != "." && s != "..");
        match persistctl::zfs::list::parse_snapshot_list(&text) {
            Ok(got) => {
                prop_assert!(valid, "{text:?}");
                prop_assert_eq!(got.values().map(Vec::len).sum::<usize>(), rows.len());
            }
            Err(why) => prop_assert!(!valid, "{why}: {text:?}"),
        }
        Ok(())
    });
    let garbage = prop_oneof![".{0,120}", "([a-z/@\t\n0-9 -]{0,10}){0,12}"];
    check("zfs-list-garbage", garbage, |text| {
        if let Ok(got) = persistctl::zfs::list::parse_snapshot_list(&text) {
            for snap in got.values().flatten() {
                prop_assert!(check_dataset_name(&snap.dataset).is_ok(), "{snap:?}");
                prop_assert!(!snap.name.chars().any(char::is_control) && !snap.guid.is_empty(), "{snap:?}");
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------- restic snapshots --json

#[test]
fn restic_snapshot_lists_never_yield_an_id_that_is_not_hex() {
    let id = prop_oneof![4 => "[0-9a-f]{8,64}", 1 => ".{0,10}", 1 => "[0-9a-f]{0,4}[\t\n/ .-][0-9a-f]{0,4}"];
    let time = prop_oneof![4 => Just("2024-05-01T12:00:00Z".to_string()), 1 => ".{0,12}"];
    let snap = (id, time, proptest::collection::vec(".{0,8}", 0..2));
    check("restic-snapshots", proptest::collection::vec(snap, 0..4), |snaps| {
        let list: Vec<serde_json::Value> = snaps
            .iter()
            .map(|(id, time, paths)| serde_json::json!({"id": id, "time": time, "paths": paths, "hostname": "h"}))
            .collect();
        let text = serde_json::Value::Array(list).to_string();
        if let Ok(got) = persistctl::restic::parse_snapshots(&text) {
            prop_assert_eq!(got.len(), snaps.len());
            for s in &got {
                prop_assert!(!s.id.is_empty() && s.id.bytes().all(|b| b.is_ascii_hexdigit()), "{s:?}");
            }
        }
        Ok(())
    });
    check("restic-garbage", prop_oneof![".{0,100}", "[\\[\\]{}\":, a-z0-9]{0,60}"], |text| {
        let _ = persistctl::restic::parse_snapshots(&text);
        Ok(())
    });
}

// ---------------------------------------------------------------- config

/// Config documents: mostly the right shape with hostile values, sometimes wrong shapes.
fn config_doc() -> impl Strategy<Value = serde_json::Value> {
    let text = prop_oneof![4 => "[a-z0-9/ ._:-]{0,12}", 1 => ".{0,8}", 1 => "[a-z]{0,3}[\t\n][a-z]{0,3}"];
    let scalar = prop_oneof![
        text.clone().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    let property = prop_oneof![
        Just("recordsize"),
        Just("compression"),
        Just("mountpoint"),
        Just("quota"),
        Just("casesensitivity"),
        Just("com.sun:auto-snapshot"),
        Just("evil:x"),
        Just("bogus"),
    ];
    let properties = proptest::collection::btree_map(property.prop_map(String::from), text.clone(), 0..3);
    let service = (
        proptest::option::of(text.clone()),
        proptest::option::of(text.clone()),
        properties,
        proptest::option::of(scalar.clone()),
        proptest::option::of(proptest::collection::vec(text.clone(), 0..2)),
    )
        .prop_map(|(recordsize, mountpoint, props, owner, sources)| {
            let mut s = serde_json::json!({});
            if let Some(r) = recordsize {
                s["recordsize"] = r.into();
            }
            if let Some(m) = mountpoint {
                s["mountpoint"] = m.into();
            }
            if !props.is_empty() {
                s["properties"] = serde_json::json!(props);
            }
            if let Some(o) = owner {
                s["owner"] = o;
            }
            if let Some(src) = sources {
                s["preseed"] = serde_json::json!({"enable": true, "sources": src});
            }
            s
        });
    let services = proptest::collection::btree_map("[a-z][a-z0-9-]{0,6}|.{0,4}", service, 0..3);
    let parent = prop_oneof![Just("tank/persist".to_string()), text.clone()];
    let mount = prop_oneof![Just("/persist".to_string()), text];
    let version = prop_oneof![4 => Just(serde_json::json!(1)), 1 => scalar.clone()];
    let shaped = (version, parent, mount, services, any::<bool>()).prop_map(|(v, p, m, s, cp)| {
        serde_json::json!({"version": v, "datasets": {"parentDataset": p, "parentMount": m, "createParent": cp, "services": s}})
    });
    prop_oneof![6 => shaped, 1 => scalar.prop_map(|v| serde_json::json!({"version": 1, "datasets": v}))]
}

#[test]
fn configs_are_accepted_well_formed_or_refused_with_field_paths() {
    check("config-parse", config_doc(), |doc| {
        let text = doc.to_string();
        match persistctl::config::parse(&text) {
            Ok(validated) => {
                let services = doc["datasets"]["services"].as_object().map_or(0, serde_json::Map::len);
                prop_assert_eq!(validated.specs.len(), services);
                for spec in &validated.specs {
                    prop_assert!(check_dataset_name(&spec.dataset).is_ok(), "{spec:?}");
                    prop_assert!(spec.mountpoint.starts_with('/'), "{spec:?}");
                    let control = |t: &str| t.chars().any(char::is_control);
                    prop_assert!(!control(&spec.mountpoint) && !control(&spec.dataset), "{spec:?}");
                    for p in &spec.properties {
                        prop_assert!(!control(&p.name) && !control(&p.value), "{p:?}");
                    }
                }
            }
            Err(errors) => {
                // Rejected: no specs exist (the type has none to give), and every error names a field.
                prop_assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    let first = e.path.split(['.', '[']).next().unwrap_or_default();
                    let named = matches!(first, "(file)" | "(top level)" | "version") || doc.get(first).is_some();
                    prop_assert!(named && !e.message.is_empty(), "error without a field path: {e}\n{text}");
                }
            }
        }
        Ok(())
    });
    check("config-garbage", ".{0,200}", |text| {
        if let Err(errors) = persistctl::config::parse(&text) {
            prop_assert!(errors.0.iter().all(|e| !e.path.is_empty()));
        }
        Ok(())
    });
}
