//! The layout rules of ARCHITECTURE.md, enforced: the core crate links nothing that does I/O, no
//! module imports another that imports it back, and no source file outgrows ~500 lines of code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_CODE_LINES: usize = 500;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text before the unit tests (`#[cfg(test)]` at the start of a line).
fn code_part(text: &str) -> &str {
    text.find("\n#[cfg(test)]").map_or(text, |at| &text[..at])
}

/// Lines that are neither blank nor only a comment.
fn code_lines(text: &str) -> usize {
    code_part(text).lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("//")).count()
}

/// The top-level module a file of `src_dir` belongs to (`None` for lib.rs / main.rs).
fn top_module(src_dir: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src_dir).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.trim_end_matches(".rs").to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// Top-level module → the top-level modules its code (tests and comments aside) names through `crate::`.
fn module_graph(src_dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = top_module(src_dir, &file) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        let code: String =
            code_part(&text).lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one, as the path that closes it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    for dir in ["src", "core/src"] {
        let graph = module_graph(&root().join(dir));
        assert!(graph.len() > 5, "{dir}: the module graph was not read: {graph:?}");
        assert_eq!(find_cycle(&graph), None, "{dir}: import cycle between top-level modules");
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).to_string()).or_default().insert((*b).to_string());
            g.entry((*b).to_string()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    let cycle = find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])).unwrap();
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
}

#[test]
fn no_source_file_is_over_the_limit() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("core/src"), &mut files);
    assert!(files.len() > 20, "the sources were not found");
    let over: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = code_lines(&std::fs::read_to_string(f).unwrap());
            (n > MAX_CODE_LINES).then(|| format!("{} ({n} lines of code)", f.strip_prefix(root()).unwrap().display()))
        })
        .collect();
    assert!(over.is_empty(), "over {MAX_CODE_LINES} lines of code, tests aside: {over:?}");
}

#[test]
fn the_core_depends_on_nothing_that_does_io() {
    let manifest = std::fs::read_to_string(root().join("core/Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).expect("core/Cargo.toml has [dependencies]");
    let deps = deps.split("\n[").next().unwrap();
    let names: Vec<&str> =
        deps.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k.trim())).filter(|k| !k.is_empty()).collect();
    assert!(names.contains(&"serde"), "the dependency list was not read: {names:?}");
    for forbidden in ["nix", "duct", "ureq", "tempfile", "walkdir", "libc", "tracing", "tracing-subscriber"] {
        assert!(!names.contains(&forbidden), "persistctl-core depends on {forbidden}: it must stay pure");
    }
    let clippy = std::fs::read_to_string(root().join("core/clippy.toml")).unwrap();
    for call in ["std::fs::read_to_string", "std::process::Command::new", "std::time::Instant::now", "std::env::var"] {
        assert!(clippy.contains(&format!("\"{call}\"")), "core/clippy.toml no longer forbids {call}");
    }
}
