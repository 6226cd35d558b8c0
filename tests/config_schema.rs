//! The config's JSON Schema (`docs/config.schema.json`): it is what the types generate, every config
//! the module renders passes it, it refuses wrong shapes, and it does not refuse what `check-config`
//! accepts (the schema is looser than the validator, not stricter), with one exception: serde also
//! reads an object written as an array of its fields in order (`"notifications": [5]`), which the
//! schema, rightly, refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use std::path::{Path, PathBuf};

use persistctl::config;
use serde_json::{Value, json};

const REGENERATE: &str = "cargo run -q -- check-config --schema > docs/config.schema.json";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("Failed to read {path}: {e}"))
}

/// The schema, compiled; `accepts` says whether a document passes it, and why not.
struct Schema {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Schema {
    fn load() -> Self {
        let value: Value = serde_json::from_str(&config::json_schema()).unwrap();
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.add_resource("urn:persistctl:config.schema.json", value).unwrap();
        let index = compiler.compile("urn:persistctl:config.schema.json", &mut schemas).unwrap();
        Self { schemas, index }
    }

    fn accepts(&self, doc: &Value) -> Result<(), String> {
        self.schemas.validate(doc, self.index).map_err(|e| format!("{e}"))
    }
}

/// The config documents the project ships: the rendered host examples, the replication fixture,
/// and the examples of `docs/config-format.md` (its later sections' fragments added to the first).
fn shipped_configs() -> Vec<(String, Value)> {
    let mut docs = Vec::new();
    for path in ["tests/fixtures/rendered", "tests/fixtures/replication", "examples"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo(path))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let Ok(doc) = serde_json::from_str::<Value>(&text) else { panic!("{} is not JSON", file.display()) };
            // syncoid.json and the like are fixtures of other formats: a config has `version`.
            if doc.get("version").is_some() {
                docs.push((file.display().to_string(), doc));
            }
        }
    }
    let format = read("docs/config-format.md");
    let blocks: Vec<&str> = format.split("```json\n").skip(1).filter_map(|b| b.split("```").next()).collect();
    assert!(blocks.len() >= 3, "docs/config-format.md: expected the datasets, notifications and monitoring examples");
    let mut whole: Value = serde_json::from_str(blocks[0]).expect("the first example is a whole config");
    for fragment in &blocks[1..] {
        let section: Value = serde_json::from_str(&format!("{{{fragment}}}")).expect("a `\"key\": {...}` fragment");
        for (key, value) in section.as_object().unwrap() {
            whole[key] = value.clone();
        }
    }
    docs.push(("docs/config-format.md".into(), whole));
    docs
}

#[test]
fn the_committed_schema_is_what_the_types_generate_and_check_config_prints() {
    let committed = read("docs/config.schema.json");
    assert!(
        committed == config::json_schema(),
        "docs/config.schema.json differs from what the config types generate; regenerate it with\n  {REGENERATE}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_persistctl"))
        .args(["check-config", "--schema"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == committed.as_bytes(), "check-config --schema prints another schema");
}

#[test]
fn every_shipped_config_passes_the_schema_and_check_config() {
    let schema = Schema::load();
    let docs = shipped_configs();
    assert!(docs.len() >= 4, "{:?}", docs.iter().map(|d| &d.0).collect::<Vec<_>>());
    for (name, doc) in &docs {
        if let Err(why) = schema.accepts(doc) {
            panic!("{name} does not pass docs/config.schema.json:\n{why}");
        }
        if let Err(errors) = config::parse(&doc.to_string()) {
            panic!("{name} is refused by check-config:\n{errors}");
        }
    }
}

/// What a case is, and how it breaks a good document.
type Breakage = (&'static str, fn(&mut Value));

fn minimal() -> Value {
    json!({"version": 1, "datasets": {"parentDataset": "tank/persist", "parentMount": "/persist",
           "services": {"sonarr": {"recordsize": "16K", "preseed": {"sources": ["snapshot"]}}}}})
}

#[test]
fn wrong_shapes_are_refused_by_the_schema_and_by_check_config() {
    let schema = Schema::load();
    assert_eq!(schema.accepts(&minimal()), Ok(()));
    let cases: &[Breakage] = &[
        ("an unknown top-level key", |d| d["extra"] = json!(1)),
        ("a misspelt service key", |d| d["datasets"]["services"]["sonarr"]["recordsiz"] = json!("16K")),
        ("an unknown preseed key", |d| d["datasets"]["services"]["sonarr"]["preseed"]["secret"] = json!("x")),
        ("a number for a size string", |d| d["datasets"]["services"]["sonarr"]["recordsize"] = json!(16384)),
        ("a string for a bool", |d| d["datasets"]["createParent"] = json!("yes")),
        ("a missing required key", |d| {
            d["datasets"].as_object_mut().unwrap().remove("parentDataset");
        }),
        ("an unknown source", |d| d["datasets"]["services"]["sonarr"]["preseed"]["sources"] = json!(["tape"])),
        ("a source twice", |d| {
            d["datasets"]["services"]["sonarr"]["preseed"]["sources"] = json!(["snapshot", "snapshot"]);
        }),
        ("a zero timeout", |d| d["datasets"]["services"]["sonarr"]["preseed"]["timeout"] = json!(0)),
        ("another version", |d| d["version"] = json!(2)),
        ("an unknown priority", |d| {
            d["notifications"] = json!({"backends": {"ntfy": {"p": {"url": "https://ntfy.sh", "topic": "t",
                                        "minPriority": "critical"}}}});
        }),
        ("a secret in the JSON", |d| {
            d["notifications"] = json!({"backends": {"ntfy": {"p": {"url": "https://ntfy.sh", "topic": "t",
                                        "token": "s3cret"}}}});
        }),
        ("too many attempts", |d| d["notifications"] = json!({"attempts": 11})),
        ("a null map", |d| d["datasets"]["services"] = Value::Null),
    ];
    for (what, break_it) in cases {
        let mut doc = minimal();
        break_it(&mut doc);
        assert!(schema.accepts(&doc).is_err(), "the schema accepts {what}: {doc}");
        assert!(config::parse(&doc.to_string()).is_err(), "check-config accepts {what}: {doc}");
    }
}

/// A small xorshift generator: the same documents on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % u64::try_from(n).unwrap()).unwrap()
    }
}

fn some_value(r: &mut Rng) -> Value {
    let texts = ["", "rel", "/ok", "/a/../b", "tank/x", "16K", "lz4", "0750", "root@nas", "https://ntfy.sh", "min"];
    match r.below(8) {
        0 => Value::Null,
        1 => json!(r.below(2) == 0),
        2 => json!([0, 1, 80, 100, 300, 600, 3600, 604_800, 604_801][r.below(9)]),
        3 => json!([texts[r.below(texts.len())]]),
        4 => json!({}),
        _ => json!(texts[r.below(texts.len())]),
    }
}

/// Changes one place of `doc`: drops a key, adds one, or replaces a value somewhere below.
fn mutate(doc: &mut Value, r: &mut Rng) {
    match doc {
        Value::Object(map) if !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[r.below(keys.len())];
            match r.below(6) {
                0 => {
                    map.remove(key);
                }
                1 => {
                    map.insert(["extra", "enable", "path", "host", "tags"][r.below(5)].into(), some_value(r));
                }
                2 => map[key] = some_value(r),
                _ => mutate(&mut map[key], r),
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = r.below(items.len());
            mutate(&mut items[i], r);
        }
        _ => *doc = some_value(r),
    }
}

#[test]
fn the_schema_does_not_refuse_what_check_config_accepts() {
    let schema = Schema::load();
    let seeds: Vec<Value> = shipped_configs().into_iter().map(|(_, doc)| doc).chain([minimal()]).collect();
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let mut accepted = 0;
    for i in 0..20_000 {
        let mut doc = seeds[i % seeds.len()].clone();
        for _ in 0..=r.below(3) {
            mutate(&mut doc, &mut r);
        }
        if config::parse(&doc.to_string()).is_ok() {
            accepted += 1;
            if let Err(why) = schema.accepts(&doc) {
                let array_for_object = why.contains("want object, but got array");
                assert!(array_for_object, "check-config accepts what the schema refuses:\n{doc}\n{why}");
            }
        }
    }
    assert!(accepted > 500, "too few accepted documents to mean anything: {accepted}");
}
