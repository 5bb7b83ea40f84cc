//! The layer order of `harness/src` (ARCHITECTURE.md, "Layers"), held: a
//! module may use modules below it and never one above. A grep over
//! `crate::` paths, comments and `#[cfg(test)] mod tests` left out, is
//! enough: every path into another module of this crate starts that way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bottom to top. The results schema sits low: reports and gates read it,
/// and nothing it holds may change because a trial or a pipeline did.
const LAYERS: &[&str] = &[
    "host",
    "classify",
    "sink",
    "ledger",
    "results",
    "capture",
    "replay",
    "pipeline",
    "experiment",
    "gate",
    "compare",
    "export",
    "cmd",
    "cli",
];

/// Modules the results schema must never import (the issue's own words).
const NOT_UNDER_RESULTS: &[&str] = &["capture", "replay", "pipeline", "experiment"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its comments and its unit-test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file's code names through `crate::`, including
/// those in grouped imports (`use crate::{a::X, b};`).
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // Top-level items of the group, at brace depth 0.
            let mut depth = 0;
            let mut item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        out.insert(ident(&group[k..]));
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(after));
        }
        rest = after;
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == module)
}

#[test]
fn no_module_imports_a_layer_above_it() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            wrong.push(format!(
                "{}: module `{module}` is in no layer (add it to LAYERS and ARCHITECTURE.md)",
                rel.display()
            ));
            continue;
        };
        seen.insert(module.clone());
        for used in uses(&code(&std::fs::read_to_string(f).unwrap())) {
            match layer_of(&used) {
                Some(l) if l > own => wrong.push(format!(
                    "{}: `{module}` imports `{used}`, a higher layer",
                    rel.display()
                )),
                Some(_) => {}
                None => wrong.push(format!(
                    "{}: imports `crate::{used}`, which is in no layer",
                    rel.display()
                )),
            }
            if module == "results" && NOT_UNDER_RESULTS.contains(&used.as_str()) {
                wrong.push(format!(
                    "{}: the results schema imports `{used}`",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layer order broken:\n  {}",
        wrong.join("\n  ")
    );
    // The walk saw the modules it judges (a moved src/ would pass vacuously).
    for m in ["results", "replay", "pipeline", "experiment", "cmd"] {
        assert!(seen.contains(m), "no files of `{m}` were found under src/");
    }
}

#[test]
fn the_scanner_sees_grouped_and_inline_paths() {
    let c = code(
        "use crate::{results::RunResult, replay::{self, X}};\n\
         // use crate::experiment::nothing;\n\
         fn f() { crate::host::monotonic_ns(); }\n\
         #[cfg(test)]\nmod tests { use crate::cli; }\n",
    );
    let u = uses(&c);
    let want: BTreeSet<String> = ["results", "replay", "host"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(u, want);
}
